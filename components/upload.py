"""Uploads the model to the Model Registry: a new version of the model with the same display name, if any."""

import re

from google_cloud_pipeline_components.types.artifact_types import VertexModel
from kfp import dsl
from kfp.dsl.component_decorator import component  # importable inside a running component, unlike dsl.component

from components import COMPONENT_IMAGE


def run_label(run_name: str) -> str:
    """A pipeline run name as a Vertex label value (lowercase letters, digits, - and _, at most 63)."""
    return re.sub(r"[^a-z0-9_-]", "-", run_name.lower())[:63] or "unknown"


def upload_version(
    display_name: str, artifact_uri: str, image_uri: str, container_args: list, run_name: str, description: str = ""
):
    """Returns the uploaded model version; `parent_model` makes it a version of the existing model.

    A new version of an existing model is not its default until the smoke test has passed it (`make_default`).
    """
    from google.cloud import aiplatform

    existing = aiplatform.Model.list(filter=f'display_name="{display_name}"', order_by="create_time")
    return aiplatform.Model.upload(
        display_name=display_name,
        artifact_uri=artifact_uri,
        serving_container_image_uri=image_uri,
        serving_container_args=list(container_args),
        parent_model=existing[0].resource_name if existing else None,
        is_default_version=not existing,
        labels={"vsp-pipeline-run": run_label(run_name)},
        version_description=description or None,
        sync=True,
    )


@component(base_image=COMPONENT_IMAGE, install_kfp_package=False)  # the image carries kfp
def upload(
    project: str,
    location: str,
    api_endpoint: str,
    staging_bucket: str,
    display_name: str,
    image_uri: str,
    container_args: list,
    model: dsl.Input[dsl.Model],
    vertex_model: dsl.Output[VertexModel],
    version_description: str = "",
    run_name: str = dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
):
    from components.upload import upload_version
    from vertex_serving.sdk import init_vertex

    init_vertex(project, location, api_endpoint, staging_bucket)
    uploaded = upload_version(display_name, model.uri, image_uri, container_args, run_name, version_description)
    vertex_model.metadata["resourceName"] = uploaded.versioned_resource_name
    vertex_model.uri = f"https://{location}-aiplatform.googleapis.com/v1/{uploaded.versioned_resource_name}"
    print(f"upload: {uploaded.versioned_resource_name}")
