"""Finds the endpoint by display name, or creates it: a re-run never makes a second one."""

from google_cloud_pipeline_components.types.artifact_types import VertexEndpoint
from kfp import dsl
from kfp.dsl.component_decorator import component  # importable inside a running component, unlike dsl.component

from components import COMPONENT_IMAGE


def find_endpoint(display_name: str, network: str = ""):
    """The oldest endpoint with this display name (public, or private on `network`), or None."""
    from google.cloud import aiplatform

    kind = aiplatform.PrivateEndpoint if network else aiplatform.Endpoint
    found = kind.list(filter=f'display_name="{display_name}"', order_by="create_time")
    if network:
        found = [e for e in found if e.network == network]
    if len(found) > 1:
        print(
            f"endpoint: {len(found)} endpoints are named {display_name!r}; using the oldest, {found[0].resource_name}"
        )
    return found[0] if found else None


def get_or_create_endpoint(display_name: str, network: str = ""):
    """The endpoint `find_endpoint` finds, else a new one."""
    from google.cloud import aiplatform

    found = find_endpoint(display_name, network)
    if found:
        return found
    if network:
        return aiplatform.PrivateEndpoint.create(display_name=display_name, network=network)
    return aiplatform.Endpoint.create(display_name=display_name)


@component(base_image=COMPONENT_IMAGE, install_kfp_package=False)  # the image carries kfp
def endpoint(
    project: str,
    location: str,
    api_endpoint: str,
    display_name: str,
    network: str,
    vertex_endpoint: dsl.Output[VertexEndpoint],
):
    from components.endpoint import get_or_create_endpoint
    from vertex_serving.sdk import init_vertex

    init_vertex(project, location, api_endpoint)
    found = get_or_create_endpoint(display_name, network)
    vertex_endpoint.metadata["resourceName"] = found.resource_name
    vertex_endpoint.uri = f"https://{location}-aiplatform.googleapis.com/v1/{found.resource_name}"
    print(f"endpoint: {found.resource_name}")
