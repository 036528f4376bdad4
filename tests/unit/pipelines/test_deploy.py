"""The deploy pipeline's parameters are DeployConfig's, and every one of them reaches the validate step."""

import inspect

from kfp import compiler

from pipelines.deploy import build, signature
from vertex_serving.config import DeployConfig


def test_the_pipeline_signature_is_the_config():
    fields = {name: (kind, default, required) for name, kind, default, required in DeployConfig.parameters()}
    params = signature().parameters
    assert set(params) == set(fields)
    for name, p in params.items():
        kind, default, required = fields[name]
        assert p.annotation is kind
        assert p.default is (inspect.Parameter.empty if required else p.default) and (required or p.default == default)


def test_every_parameter_reaches_the_validate_step(tmp_path):
    compiler.Compiler().compile(build(), str(tmp_path / "p.yaml"))
    import yaml

    spec = yaml.safe_load((tmp_path / "p.yaml").read_text())
    pipeline_inputs = set(spec["root"]["inputDefinitions"]["parameters"])
    task = spec["root"]["dag"]["tasks"]["validate-config"]
    wired = {
        name: value["componentInputParameter"]
        for name, value in task["inputs"]["parameters"].items()
        if "componentInputParameter" in value
    }
    assert pipeline_inputs == {f.name for f in __import__("dataclasses").fields(DeployConfig)}
    assert wired == {name: name for name in pipeline_inputs}


def test_required_parameters_have_no_default_in_the_compiled_pipeline(tmp_path):
    compiler.Compiler().compile(build(), str(tmp_path / "p.yaml"))
    import yaml

    params = yaml.safe_load((tmp_path / "p.yaml").read_text())["root"]["inputDefinitions"]["parameters"]
    required = {name for name, spec in params.items() if not spec.get("isOptional")}
    assert required == {"project", "model_dir", "model_display_name", "endpoint_display_name"}
