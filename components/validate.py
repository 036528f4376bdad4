"""Checks the whole configuration first, so a bad one fails the run before anything is created or billed."""

from typing import NamedTuple

from kfp.dsl.component_decorator import component  # importable inside a running component, unlike dsl.component

from components.image import COMPONENT_IMAGE


class Resolved(NamedTuple):
    image_uri: str
    container_args: list
    machine_type: str
    batching_config: str
    warmup_batch_sizes: list


def resolve(values: dict) -> Resolved:
    """Pipeline parameter values -> what the later steps need; raises InvalidConfig listing every problem."""
    from pipelines.catalog import load_catalog
    from pipelines.config import DeployConfig
    from pipelines.validate import validate

    values = dict(values)
    values["use_tfrt"] = {"": None, "true": True, "false": False}.get(
        str(values.get("use_tfrt", "")).lower(), values.get("use_tfrt")
    )
    # Pipeline list parameters travel as protobuf Values, whose numbers are doubles.
    sizes = values.get("allowed_batch_sizes") or []
    values["allowed_batch_sizes"] = [int(s) if isinstance(s, float) and s.is_integer() else s for s in sizes]
    plan = validate(DeployConfig.from_mapping(values), load_catalog())
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


@component(base_image=COMPONENT_IMAGE)
def validate_config(
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
    staging_bucket: str,
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
