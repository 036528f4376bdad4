"""Checks the whole configuration first, so a bad one fails the run before anything is created or billed."""

from typing import NamedTuple

from kfp.dsl.component_decorator import component  # importable inside a running component, unlike dsl.component

from components import COMPONENT_IMAGE


class Resolved(NamedTuple):
    image_uri: str
    container_args: list
    machine_type: str
    batching_config: str
    warmup_batch_sizes: list


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
    return Resolved(
        plan.image.uri,
        list(plan.container_args),
        plan.machine_spec["machine_type"],
        plan.batching.to_text() if plan.batching else "",
        sizes,
    )


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
) -> NamedTuple(
    "Resolved",
    [
        ("image_uri", str),
        ("container_args", list),
        ("machine_type", str),
        ("batching_config", str),
        ("warmup_batch_sizes", list),
    ],
):
    values = dict(locals())
    from components.validate import resolve

    return resolve(values)
