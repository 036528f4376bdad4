"""The deploy pipeline: SavedModel -> warmed, smoke-tested model version taking traffic on a Vertex AI endpoint.

validate -> convert -> warmup -> upload -> deploy -> smoke test, with the endpoint found or created beside them.
Every parameter of the optimized runtime is a pipeline parameter; `api_endpoint` (empty = Vertex AI) is the only
thing that differs between a run on Vertex AI and a local run against localvertex.
"""

from typing import NamedTuple

from kfp import dsl

from components.convert import convert
from components.deploy import deploy
from components.endpoint import endpoint
from components.smoke_test import smoke_test
from components.upload import upload
from components.validate import validate_config
from components.warmup import warmup

PIPELINE_NAME = "vertex-serving-deploy"


class Outputs(NamedTuple):
    """What a run leaves for the Vertex AI UI: the smoke test's Metrics and Markdown report."""

    metrics: dsl.Metrics
    report: dsl.Markdown


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Deploy a TensorFlow SavedModel to a Vertex AI endpoint on the optimized TensorFlow runtime.",
)
def deploy_pipeline(
    project: str,
    model_dir: str,
    model_display_name: str,
    endpoint_display_name: str,
    location: str = "us-central1",
    api_endpoint: str = "",
    staging_bucket: str = "",
    container_version: str = "",
    accelerator: str = "cpu",
    runtime: str = "optimized",
    allow_precompilation: bool = False,
    allow_compression: bool = False,
    use_tfrt: str = "",
    disable_optimizer: bool = False,
    tpu_mode: str = "",
    tpu_function_alias: str = "",
    allowed_batch_sizes: list = [],  # noqa: B006 - kfp reads the default from the signature
    max_batch_size: int = 0,
    batch_timeout_micros: int = 0,
    explanation_method: str = "",
    allow_unavailable_image: bool = False,
    as_of: str = "",
    machine_type: str = "",
    accelerator_type: str = "",
    accelerator_count: int = 0,
    min_replica_count: int = 1,
    max_replica_count: int = 1,
    endpoint_network: str = "",
    traffic_percentage: int = 100,
    deploy_timeout_seconds: float = 1800.0,
    sample_instances_uri: str = "",
    smoke_atol: float = 1e-4,
    smoke_rtol: float = 1e-3,
    smoke_min_top1_agreement: float = 0.99,
    smoke_requests: int = 50,
    smoke_p99_latency_ms: float = 0.0,
    undeploy_zero_traffic: bool = False,
) -> Outputs:
    where = {"project": project, "location": location, "api_endpoint": api_endpoint}
    checked = validate_config(
        container_version=container_version,
        accelerator=accelerator,
        runtime=runtime,
        allow_precompilation=allow_precompilation,
        allow_compression=allow_compression,
        use_tfrt=use_tfrt,
        disable_optimizer=disable_optimizer,
        tpu_mode=tpu_mode,
        tpu_function_alias=tpu_function_alias,
        allowed_batch_sizes=allowed_batch_sizes,
        max_batch_size=max_batch_size,
        batch_timeout_micros=batch_timeout_micros,
        explanation_method=explanation_method,
        allow_unavailable_image=allow_unavailable_image,
        as_of=as_of,
        machine_type=machine_type,
        accelerator_type=accelerator_type,
        accelerator_count=accelerator_count,
        min_replica_count=min_replica_count,
        max_replica_count=max_replica_count,
        endpoint_network=endpoint_network,
        traffic_percentage=traffic_percentage,
        staging_bucket=staging_bucket,
        smoke_atol=smoke_atol,
        smoke_rtol=smoke_rtol,
        smoke_min_top1_agreement=smoke_min_top1_agreement,
        smoke_requests=smoke_requests,
        smoke_p99_latency_ms=smoke_p99_latency_ms,
    ).set_display_name("validate")
    converted = convert(
        model_dir=model_dir,
        tpu_mode=tpu_mode,
        tpu_function_alias=tpu_function_alias,
        sample_instances_uri=sample_instances_uri,
        batching_config=checked.outputs["batching_config"],
    ).set_display_name("convert")
    warmed = warmup(
        model=converted.outputs["model"],
        reference=converted.outputs["reference"],
        batch_sizes=checked.outputs["warmup_batch_sizes"],
    ).set_display_name("warmup")
    uploaded = upload(
        **where,
        staging_bucket=staging_bucket,
        display_name=model_display_name,
        image_uri=checked.outputs["image_uri"],
        container_args=checked.outputs["container_args"],
        model=warmed.outputs["warmed_model"],
    ).set_display_name("upload")
    found = (
        endpoint(**where, display_name=endpoint_display_name, network=endpoint_network)
        .after(checked)
        .set_display_name("endpoint")
    )
    deployed = deploy(
        **where,
        vertex_model=uploaded.outputs["vertex_model"],
        vertex_endpoint=found.outputs["vertex_endpoint"],
        machine_type=checked.outputs["machine_type"],
        accelerator_type=accelerator_type,
        accelerator_count=accelerator_count,
        min_replica_count=min_replica_count,
        max_replica_count=max_replica_count,
        traffic_percentage=traffic_percentage,
        deploy_timeout_seconds=deploy_timeout_seconds,
    ).set_display_name("deploy")
    smoked = smoke_test(
        **where,
        vertex_endpoint=found.outputs["vertex_endpoint"],
        vertex_model=uploaded.outputs["vertex_model"],
        deployed_model_id=deployed.outputs["deployed_model_id"],
        previous_traffic_split=deployed.outputs["previous_traffic_split"],
        reference=converted.outputs["reference"],
        smoke_atol=smoke_atol,
        smoke_rtol=smoke_rtol,
        smoke_min_top1_agreement=smoke_min_top1_agreement,
        smoke_requests=smoke_requests,
        smoke_p99_latency_ms=smoke_p99_latency_ms,
        undeploy_zero_traffic=undeploy_zero_traffic,
    ).set_display_name("smoke-test")
    return Outputs(metrics=smoked.outputs["metrics"], report=smoked.outputs["smoke_report"])
