"""Tries the new model version on a short-lived endpoint of its own, before any user can reach it.

Vertex AI routes an endpoint's predictions by its traffic split and has no predict route to a DeployedModel at 0%
(only `:explain` takes a DeployedModel id, and it needs an explanation spec), so an endpoint of its own is the
one place where nobody but the smoke test reaches a new model. The trial deploys there on the production machine
type, one replica, runs the smoke test, and deletes that endpoint whatever happens. A version that fails its
trial is deleted too: a run that fails before the deploy leaves nothing new behind.
"""

from google_cloud_pipeline_components.types.artifact_types import VertexModel
from kfp import dsl
from kfp.dsl.component_decorator import component  # importable inside a running component, unlike dsl.component

from components import COMPONENT_IMAGE

MAX_DISPLAY_NAME = 128  # Vertex AI's limit on an endpoint's display name


def trial_endpoint_name(endpoint_display_name: str) -> str:
    return f"trial-{endpoint_display_name}"[:MAX_DISPLAY_NAME]


def discard_version(model_name: str) -> None:
    """Deletes the model version a failed run uploaded: the whole Model when it was its first version."""
    from google.cloud import aiplatform

    name, _, version = model_name.partition("@")
    registry = aiplatform.models.ModelRegistry(name)
    if len(registry.list_versions()) <= 1:
        aiplatform.Model(name).delete()
    else:
        registry.delete_version(version)


def try_version(
    model_name: str,
    endpoint_display_name: str,
    network: str,
    machine_type: str,
    accelerator_type: str,
    accelerator_count: int,
    reference: dict,
    checks,
    timeout_seconds: float,
    gcp_resources_path: str,
    api_host: str,
    run_label: str,
):
    """The smoke test's findings for `model_name` on a trial endpoint that is gone when this returns."""
    from google.cloud import aiplatform

    from components.deploy import deploy_model
    from components.smoke_test import cancellable, smoke
    from vertex_serving.sdk import open_endpoint

    labels = {"vsp-trial": "true", "vsp-pipeline-run": run_label}
    name = trial_endpoint_name(endpoint_display_name)
    if network:
        created = aiplatform.PrivateEndpoint.create(display_name=name, network=network, labels=labels)
    else:
        created = aiplatform.Endpoint.create(display_name=name, labels=labels)
    endpoint = open_endpoint(created.resource_name)
    found = None
    try:
        with cancellable():
            deploy_model(
                endpoint,
                model_name,
                machine_type,
                accelerator_type,
                accelerator_count,
                1,
                1,
                None if network else {"0": 100},
                timeout_seconds,
                gcp_resources_path,
                api_host,
            )
            found = smoke(endpoint, None, reference, checks, "trial endpoint")
    finally:
        _delete(endpoint)
        if found is None or found.problems:
            discard_version(model_name)
    return found


def _delete(endpoint) -> None:
    """The trial endpoint undeployed and deleted; a failure here is reported, never hidden behind the run's own."""
    try:
        endpoint.delete(force=True)
    except Exception as e:  # the trial's verdict matters more than its clean-up: say what is left
        print(f"trial: could not delete trial endpoint {endpoint.resource_name}: {e}; delete it by hand")


@component(base_image=COMPONENT_IMAGE, install_kfp_package=False)  # the image carries kfp
def trial(
    project: str,
    location: str,
    api_endpoint: str,
    vertex_model: dsl.Input[VertexModel],
    endpoint_display_name: str,
    endpoint_network: str,
    machine_type: str,
    accelerator_type: str,
    accelerator_count: int,
    deploy_timeout_seconds: float,
    reference: dsl.Input[dsl.Dataset],
    smoke_atol: float,
    smoke_rtol: float,
    smoke_min_top1_agreement: float,
    smoke_requests: int,
    smoke_p99_latency_ms: float,
    gcp_resources: dsl.OutputPath(str),
    trial_report: dsl.Output[dsl.Markdown],
    run_name: str = dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
):
    import json
    from pathlib import Path

    from components.smoke_test import Checks, SmokeTestFailed, report
    from components.trial import trial_endpoint_name, try_version
    from components.upload import run_label
    from vertex_serving.sdk import init_vertex

    init_vertex(project, location, api_endpoint)
    model_name = vertex_model.metadata["resourceName"]
    checks = Checks(smoke_atol, smoke_rtol, smoke_min_top1_agreement, smoke_requests, smoke_p99_latency_ms)
    found = try_version(
        model_name,
        endpoint_display_name,
        endpoint_network,
        machine_type,
        accelerator_type,
        accelerator_count,
        json.loads(Path(reference.path).read_text()),
        checks,
        deploy_timeout_seconds,
        gcp_resources,
        api_endpoint or f"https://{location}-aiplatform.googleapis.com",
        run_label(run_name),
    )
    name = trial_endpoint_name(endpoint_display_name)
    Path(trial_report.path).write_text(report([found], name, "(deleted with its endpoint)", model_name, checks))
    if found.problems:
        raise SmokeTestFailed(
            f"smoke test failed for {model_name} on its trial endpoint: {'; '.join(found.problems)}; "
            "no user was served by it, and the version is deleted"
        )
    print(f"trial passed: p50 {found.p50_ms:.1f} ms, p99 {found.p99_ms:.1f} ms, max abs diff {found.max_abs_diff:.3g}")
