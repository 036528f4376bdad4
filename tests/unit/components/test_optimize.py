"""The optimize step: as_configured passes the validate step's args through untouched; the DAG's upload takes the
args of whichever optimize branch ran, and that branch asks for the deployment's machine."""

import dataclasses

import yaml
from kfp import compiler

from components.optimize import optimize_model
from components.validate import resolve
from pipelines.deploy import build
from tests.models import TESTDATA
from vertex_serving.config import DeployConfig

CONFIG = DeployConfig(
    project="my-project",
    model_dir=str(TESTDATA / "saved_model_half_plus_two_cpu" / "00000123"),
    model_display_name="m",
    endpoint_display_name="e",
    container_version="nightly",
    allow_precompilation=True,
    use_tfrt=False,
    version_description="vsp-gate: accuracy=0.9 run=r",
)


def test_as_configured_deploys_the_validate_steps_args_and_description_unchanged(tmp_path):
    args = resolve(CONFIG.to_parameters()).container_args
    assert args == ["--allow_precompilation=true", "--use_tfrt=false"]
    found = optimize_model(CONFIG, args, tmp_path / "never-read", {"instances": [], "predictions": []})
    assert found.container_args == args and found.version_description == CONFIG.version_description
    assert found.metrics == {} and "as_configured" in found.report and "--allow_precompilation=true" in found.report


def test_measure_asks_for_the_deployment_machine_and_as_configured_for_a_small_one():
    measure = resolve(dataclasses.replace(CONFIG, optimization="measure", machine_type="n1-highmem-8").to_parameters())
    assert (measure.optimize_cpu_limit, measure.optimize_memory_limit, measure.optimize_accelerator_type) == (
        "8",
        "52G",
        "",
    )
    default = resolve(CONFIG.to_parameters())
    assert (default.optimize_cpu_limit, default.optimize_memory_limit) == ("1", "2G")
    gpu = dataclasses.replace(
        CONFIG,
        optimization="measure",
        accelerator="gpu",
        machine_type="a2-highgpu-1g",
        accelerator_type="NVIDIA_TESLA_A100",
        accelerator_count=1,
    )
    resolved = resolve(gpu.to_parameters())
    assert (resolved.optimize_cpu_limit, resolved.optimize_memory_limit) == ("12", "85G")
    assert resolved.optimize_accelerator_type == "NVIDIA_TESLA_A100"


def test_the_upload_step_takes_its_args_from_the_optimize_step_only(tmp_path):
    compiler.Compiler().compile(build(), str(tmp_path / "p.yaml"))
    spec = yaml.safe_load((tmp_path / "p.yaml").read_text())
    tasks = spec["root"]["dag"]["tasks"]
    upload = tasks["upload"]["inputs"]["parameters"]
    branches = upload["container_args"]["taskOutputParameter"]["producerTask"]
    assert branches == upload["version_description"]["taskOutputParameter"]["producerTask"]
    selectors = spec["components"][f"comp-{branches}"]["dag"]["outputs"]["parameters"]
    chosen = selectors[upload["container_args"]["taskOutputParameter"]["outputParameterKey"]]
    assert [s["outputParameterKey"] for s in chosen["valueFromOneof"]["parameterSelectors"]] == [
        "pipelinechannel--optimize-container_args",
        "pipelinechannel--optimize-2-container_args",
    ]
    executors = spec["deploymentSpec"]["executors"]
    cpu, gpu = executors["exec-optimize"]["container"], executors["exec-optimize-2"]["container"]
    assert "accelerator" not in cpu["resources"] and "optimize_cpu_limit" in cpu["resources"]["resourceCpuLimit"]
    assert "optimize_accelerator_type" in gpu["resources"]["accelerator"]["resourceType"]
