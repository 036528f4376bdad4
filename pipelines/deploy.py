"""The deploy pipeline: SavedModel -> warmed, smoke-tested model version taking traffic on a Vertex AI endpoint.

validate -> convert -> warmup -> optimize -> upload -> trial -> endpoint -> deploy -> smoke test: the optimize
step gives upload its container args (as configured, or measured); the new version is smoke-tested on an endpoint
of its own before the production endpoint is even looked up, then promoted there in steps, smoke-tested at each.
Every parameter of the optimized runtime is a pipeline parameter; `api_endpoint` (empty = Vertex AI) is the only
thing that differs between a run on Vertex AI and a local run against localvertex.
"""

import inspect
from typing import NamedTuple

from kfp import dsl
from kfp.dsl.component_decorator import component

from components import COMPONENT_IMAGE
from components.convert import convert
from components.deploy import deploy
from components.endpoint import endpoint
from components.optimize import optimize
from components.smoke_test import smoke_test
from components.trial import trial
from components.upload import upload
from components.validate import validate_config
from components.warmup import warmup
from vertex_serving.config import DeployConfig

PIPELINE_NAME = "vertex-serving-deploy"
STEPS = (validate_config, convert, warmup, upload, trial, endpoint, deploy, smoke_test, optimize)


class Outputs(NamedTuple):
    """What a run leaves for the Vertex AI UI: the smoke test's Metrics and Markdown report."""

    metrics: dsl.Metrics
    report: dsl.Markdown


def signature() -> inspect.Signature:
    """The pipeline's parameters are DeployConfig's: same names, pipeline types and defaults."""
    return inspect.Signature(
        [
            inspect.Parameter(
                name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=inspect.Parameter.empty if required else default,
                annotation=kind,
            )
            for name, kind, default, required in DeployConfig.parameters()
        ],
        return_annotation=Outputs,
    )


def on_image(step, image: str):
    """The step declared to run in `image`: kfp binds a component's image when the component is declared."""
    return component(base_image=image, install_kfp_package=False)(step.python_func)


def build(component_image: str = COMPONENT_IMAGE):
    """The deploy pipeline whose steps run in `component_image` on Vertex AI Pipelines."""
    validate_config, convert, warmup, upload, trial, endpoint, deploy, smoke_test, optimize = (
        on_image(step, component_image) for step in STEPS
    )
    names = list(signature().parameters)

    def deploy_pipeline(*values) -> Outputs:
        p = dict(zip(names, values, strict=True))
        where = {"project": p["project"], "location": p["location"], "api_endpoint": p["api_endpoint"]}
        checked = validate_config(**p).set_display_name("validate")
        converted = convert(
            model_dir=p["model_dir"],
            tpu_mode=p["tpu_mode"],
            tpu_function_alias=p["tpu_function_alias"],
            sample_instances_uri=p["sample_instances_uri"],
            batching_config=checked.outputs["batching_config"],
        ).set_display_name("convert")
        warmed = warmup(
            model=converted.outputs["model"],
            reference=converted.outputs["reference"],
            batch_sizes=checked.outputs["warmup_batch_sizes"],
        ).set_display_name("warmup")
        chosen = optimized(optimize, checked, converted, warmed)
        uploaded = upload(
            **where,
            staging_bucket=p["staging_bucket"],
            display_name=p["model_display_name"],
            version_description=chosen["version_description"],
            image_uri=checked.outputs["image_uri"],
            container_args=chosen["container_args"],
            model=warmed.outputs["warmed_model"],
        ).set_display_name("upload")
        smoke = {
            "reference": converted.outputs["reference"],
            "smoke_atol": p["smoke_atol"],
            "smoke_rtol": p["smoke_rtol"],
            "smoke_min_top1_agreement": p["smoke_min_top1_agreement"],
            "smoke_requests": p["smoke_requests"],
            "smoke_p99_latency_ms": p["smoke_p99_latency_ms"],
        }
        tried = trial(
            **where,
            **smoke,
            vertex_model=uploaded.outputs["vertex_model"],
            endpoint_display_name=p["endpoint_display_name"],
            endpoint_network=p["endpoint_network"],
            machine_type=checked.outputs["machine_type"],
            accelerator_type=p["accelerator_type"],
            accelerator_count=p["accelerator_count"],
            deploy_timeout_seconds=p["deploy_timeout_seconds"],
        ).set_display_name("trial")
        # After the model has passed its trial: a run that fails earlier creates no endpoint.
        found = (
            endpoint(**where, display_name=p["endpoint_display_name"], network=p["endpoint_network"])
            .after(tried)
            .set_display_name("endpoint")
        )
        deployed = deploy(
            **where,
            vertex_model=uploaded.outputs["vertex_model"],
            vertex_endpoint=found.outputs["vertex_endpoint"],
            machine_type=checked.outputs["machine_type"],
            accelerator_type=p["accelerator_type"],
            accelerator_count=p["accelerator_count"],
            min_replica_count=p["min_replica_count"],
            max_replica_count=p["max_replica_count"],
            traffic_percentage=p["traffic_percentage"],
            canary_percentage=p["canary_percentage"],
            deploy_timeout_seconds=p["deploy_timeout_seconds"],
        ).set_display_name("deploy")
        smoked = smoke_test(
            **where,
            **smoke,
            vertex_endpoint=found.outputs["vertex_endpoint"],
            vertex_model=uploaded.outputs["vertex_model"],
            deployed_model_id=deployed.outputs["deployed_model_id"],
            previous_traffic_split=deployed.outputs["previous_traffic_split"],
            canary_traffic_split=deployed.outputs["canary_traffic_split"],
            target_traffic_split=deployed.outputs["target_traffic_split"],
            undeploy_zero_traffic=p["undeploy_zero_traffic"],
        ).set_display_name("smoke-test")
        return Outputs(metrics=smoked.outputs["metrics"], report=smoked.outputs["smoke_report"])

    deploy_pipeline.__signature__ = signature()
    return dsl.pipeline(
        name=PIPELINE_NAME,
        description="Deploy a TensorFlow SavedModel to a Vertex AI endpoint on the optimized TensorFlow runtime.",
    )(deploy_pipeline)


def optimized(optimize, checked, converted, warmed) -> dict:
    """The optimize step on the deployment's kind of machine: its vCPUs and memory, and its GPU when it has one.

    A task's accelerator cannot be switched off by a parameter, so a GPU deployment runs the step in its own branch;
    the upload step takes the container args and version description of whichever branch ran (one source of args).
    """
    # The machine is the step's input too: its report names it, and kfp hands a branch only the values a task reads.
    machine = {k: checked.outputs[f"optimize_{k}"] for k in ("cpu_limit", "memory_limit", "accelerator_type")}
    inputs = {
        "config": checked.outputs["config"],
        "container_args": checked.outputs["container_args"],
        "model": warmed.outputs["warmed_model"],
        "reference": converted.outputs["reference"],
        **machine,
    }
    with dsl.If(machine["accelerator_type"] == "", name="optimize-on-cpu"):
        on_cpu = (
            optimize(**inputs)
            .set_cpu_limit(machine["cpu_limit"])
            .set_memory_limit(machine["memory_limit"])
            .set_display_name("optimize")
        )
    with dsl.Else(name="optimize-on-gpu"):
        on_gpu = (
            optimize(**inputs)
            .set_cpu_limit(machine["cpu_limit"])
            .set_memory_limit(machine["memory_limit"])
            .set_accelerator_type(machine["accelerator_type"])
            .set_accelerator_limit(1)
            .set_display_name("optimize")
        )
    return {
        name: dsl.OneOf(on_cpu.outputs[name], on_gpu.outputs[name])
        for name in ("container_args", "version_description")
    }
