"""`vsp run` turns a config into the pipeline's parameters with one codec, pointed at where the run goes."""

from pathlib import Path

from pipelines.run import catalog_file, pipeline_arguments
from tests.models import TESTDATA
from vertex_serving.config import DeployConfig


def test_config_becomes_pipeline_arguments_with_the_local_defaults():
    values = pipeline_arguments(
        DeployConfig(use_tfrt=True, allowed_batch_sizes=(4, 8)), "http://127.0.0.1:1", "gs://stage"
    )
    assert values["use_tfrt"] == "true" and values["allowed_batch_sizes"] == [4, 8]
    assert (values["project"], values["staging_bucket"], values["api_endpoint"]) == (
        "local-project",
        "gs://stage",
        "http://127.0.0.1:1",
    )
    assert DeployConfig.from_parameters(values) == DeployConfig(
        use_tfrt=True,
        allowed_batch_sizes=(4, 8),
        project="local-project",
        staging_bucket="gs://stage",
        api_endpoint="http://127.0.0.1:1",
    )


def test_a_catalog_file_travels_as_its_text(tmp_path):
    (tmp_path / "c.toml").write_text('[optimized."2.17"]\ncpu = "x/y:1"\n')
    values = pipeline_arguments(DeployConfig(catalog=str(tmp_path / "c.toml")), "", "")
    assert values["catalog"] == '[optimized."2.17"]\ncpu = "x/y:1"\n'


def test_catalog_text_is_kept_as_a_file_localvertex_can_load(tmp_path):
    text = '[optimized."2.17"]\ncpu = "x/y:1"\n'
    path = catalog_file(text, tmp_path)
    assert Path(path).read_text() == text and path.startswith(str(tmp_path))
    assert catalog_file(str(tmp_path / "own.toml"), tmp_path) == str(tmp_path / "own.toml")
    assert catalog_file("", tmp_path) is None


def _config(tmp_path, **values) -> Path:
    import yaml

    base = {
        "model_display_name": "m",
        "endpoint_display_name": "e",
        "container_version": "nightly",
        "sample_instances_uri": "gs://my-bucket/samples.jsonl",
    }
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(base | values))
    return path


def vsp_run(capsys, *argv) -> tuple[int, str]:
    from pipelines.cli import main

    code = main(["run", *argv])
    return code, capsys.readouterr().err


REGISTRY_IMAGE = "us-docker.pkg.dev/p/r/vertex-serving-pipelines:1"


def test_vertex_runs_need_a_project_and_a_gs_pipeline_root(capsys, tmp_path):
    config = _config(tmp_path, model_dir="gs://my-bucket/m")
    code, err = vsp_run(capsys, "--config", str(config), "--component-image", REGISTRY_IMAGE)
    assert code == 2 and err.startswith("error: project='' is required to run on Vertex AI")
    code, err = vsp_run(capsys, "--config", str(config), "--project", "p", "--component-image", REGISTRY_IMAGE)
    assert code == 2 and "pipeline_root='' is required to run on Vertex AI" in err


def test_vertex_runs_refuse_an_image_vertex_cannot_pull_and_local_model_paths(capsys, tmp_path):
    where = ["--project", "p", "--pipeline-root", "gs://b/runs"]
    code, err = vsp_run(capsys, "--config", str(_config(tmp_path, model_dir="gs://my-bucket/m")), *where)
    assert code == 2 and "component_image='vertex-serving-pipelines:" in err and "registry path" in err
    local = str(TESTDATA / "saved_model_half_plus_two_cpu" / "00000123")
    config = _config(tmp_path, model_dir=local)
    code, err = vsp_run(capsys, "--config", str(config), *where, "--component-image", REGISTRY_IMAGE)
    assert code == 2 and f"model_dir='{local}' is a path on this machine" in err


def test_a_template_that_does_not_load_is_refused_before_submitting(capsys, tmp_path):
    (tmp_path / "t.yaml").write_text("not: a pipeline\n")
    where = ["--project", "p", "--pipeline-root", "gs://b/runs", "--template", str(tmp_path / "t.yaml")]
    code, err = vsp_run(capsys, "--config", str(_config(tmp_path, model_dir="gs://my-bucket/m")), *where)
    assert code == 2 and f"template='{tmp_path / 't.yaml'}' does not load as a compiled pipeline" in err


def test_an_unreachable_vertex_ai_fails_fast_with_one_line(capsys, tmp_path):
    config = _config(tmp_path, model_dir="gs://my-bucket/m", api_endpoint="https://127.0.0.1:9")
    where = ["--project", "p", "--pipeline-root", "gs://b/runs", "--component-image", REGISTRY_IMAGE]
    code, err = vsp_run(capsys, "--config", str(config), *where)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("error: cannot reach Vertex AI at 127.0.0.1:9") and "--local" in err
