"""Checks the whole configuration first, so a bad one fails the run before anything is created or billed."""

import json
from typing import NamedTuple

from kfp.dsl.component_decorator import component  # importable inside a running component, unlike dsl.component

from components import COMPONENT_IMAGE

# What the optimize step asks for where it has no deployment machine to copy (as_configured, TPU, an unknown size).
STEP_RESOURCES = ("1", "2G")
MEASURE_RESOURCES = ("4", "16G")


class Resolved(NamedTuple):
    image_uri: str
    container_args: list
    machine_type: str
    batching_config: str
    warmup_batch_sizes: list
    # The checked parameters (JSON), and the machine the optimize step asks for: the deployment's vCPUs, memory and
    # GPU, so that what it measures is what the deployment will see.
    config: str = "{}"
    optimize_cpu_limit: str = STEP_RESOURCES[0]
    optimize_memory_limit: str = STEP_RESOURCES[1]
    optimize_accelerator_type: str = ""


def resolve(values: dict) -> Resolved:
    """Pipeline parameter values -> what the later steps need; raises InvalidConfig listing every problem."""
    from vertex_serving.catalog import EXTEND_WITH_PARAMETER, load_catalog
    from vertex_serving.config import DeployConfig
    from vertex_serving.rules import validate

    config = DeployConfig.from_parameters(values)
    plan = validate(config, load_catalog(config.catalog, extend_hint=EXTEND_WITH_PARAMETER))
    for warning in plan.warnings:
        print(f"warning: {warning}")
    sizes = list(plan.batching.batch_sizes()) if plan.batching else [1]
    cpu, memory, gpu = optimize_resources(config, plan.machine_spec["machine_type"])
    return Resolved(
        plan.image.uri,
        list(plan.container_args),
        plan.machine_spec["machine_type"],
        plan.batching.to_text() if plan.batching else "",
        sizes,
        json.dumps(config.to_parameters(), sort_keys=True),
        cpu,
        memory,
        gpu,
    )


def optimize_resources(config, machine_type: str) -> tuple[str, str, str]:
    """(CPU limit, memory limit, GPU type) for the optimize step: the deployment machine's, when it measures."""
    from vertex_serving.catalog import EXTEND_WITH_PARAMETER, load_catalog

    if config.optimization != "measure":
        return (*STEP_RESOURCES, "")
    gpu = config.accelerator_type if config.accelerator == "gpu" else ""
    size = load_catalog(config.catalog, extend_hint=EXTEND_WITH_PARAMETER).machine_resources(machine_type)
    if config.accelerator == "tpu" or size is None:
        return (*MEASURE_RESOURCES, gpu)
    vcpus, memory_gb = size
    return str(vcpus), f"{memory_gb:g}G", gpu


# The inputs are DeployConfig's fields, in the pipeline's types (a test holds them equal): kfp reads a step's
# inputs from its source, so they are written out here.
@component(base_image=COMPONENT_IMAGE, install_kfp_package=False)  # the image carries kfp
def validate_config(
    project: str,
    model_dir: str,
    model_display_name: str,
    version_description: str,
    endpoint_display_name: str,
    location: str,
    api_endpoint: str,
    staging_bucket: str,
    catalog: str,
    container_version: str,
    accelerator: str,
    runtime: str,
    allow_precompilation: bool,
    allow_compression: bool,
    use_tfrt: str,
    disable_optimizer: bool,
    tpu_mode: str,
    tpu_function_alias: str,
    allowed_batch_sizes: list,
    max_batch_size: int,
    batch_timeout_micros: int,
    explanation_method: str,
    allow_unavailable_image: bool,
    as_of: str,
    machine_type: str,
    accelerator_type: str,
    accelerator_count: int,
    min_replica_count: int,
    max_replica_count: int,
    endpoint_network: str,
    traffic_percentage: int,
    canary_percentage: int,
    deploy_timeout_seconds: float,
    undeploy_zero_traffic: bool,
    sample_instances_uri: str,
    smoke_atol: float,
    smoke_rtol: float,
    smoke_min_top1_agreement: float,
    smoke_requests: int,
    smoke_p99_latency_ms: float,
    optimization: str,
    min_speedup: float,
) -> NamedTuple(
    "Resolved",
    [
        ("image_uri", str),
        ("container_args", list),
        ("machine_type", str),
        ("batching_config", str),
        ("warmup_batch_sizes", list),
        ("config", str),
        ("optimize_cpu_limit", str),
        ("optimize_memory_limit", str),
        ("optimize_accelerator_type", str),
    ],
):
    values = dict(locals())
    from components.validate import resolve

    return resolve(values)
