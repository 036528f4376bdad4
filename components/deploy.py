"""Deploys the model version to the endpoint with no traffic yet, within a deploy timeout.

The new DeployedModel takes its share only when the smoke test promotes it, so a run that is cancelled or fails
here leaves no model taking traffic. As GCPC does, the deploy operation is written to `gcp_resources` before the
wait, so a cancelled run can be traced to its operation. The split before the deploy and the splits of the canary
step and of the target share are the step's outputs: the smoke test promotes through the last two, and restores
the first on a failure.
"""

import json
from typing import NamedTuple

from google_cloud_pipeline_components.types.artifact_types import VertexEndpoint, VertexModel
from kfp import dsl
from kfp.dsl.component_decorator import component  # importable inside a running component, unlike dsl.component

from components import COMPONENT_IMAGE
from vertex_serving.errors import UserError


class Deployed(NamedTuple):
    deployed_model_id: str
    previous_traffic_split: str
    canary_traffic_split: str
    target_traffic_split: str


def deploy_model(
    endpoint,
    model_name: str,
    machine_type: str,
    accelerator_type: str,
    accelerator_count: int,
    min_replica_count: int,
    max_replica_count: int,
    traffic_split: dict | None,
    timeout_seconds: float,
    gcp_resources_path: str,
    api_host: str,
) -> str:
    """Deploys `model_name` to `endpoint` with `traffic_split` ("0" names the new model); returns its id."""
    from google.cloud.aiplatform_v1 import types

    spec = types.MachineSpec(machine_type=machine_type)
    if accelerator_type:
        spec.accelerator_type, spec.accelerator_count = types.AcceleratorType[accelerator_type], accelerator_count
    deployed = types.DeployedModel(
        model=model_name,
        display_name=model_name.rsplit("/", 1)[-1],
        dedicated_resources=types.DedicatedResources(
            machine_spec=spec, min_replica_count=min_replica_count, max_replica_count=max_replica_count
        ),
    )
    operation = endpoint.api_client.deploy_model(
        endpoint=endpoint.resource_name, deployed_model=deployed, traffic_split=traffic_split
    )
    resources = {
        "resources": [{"resourceType": "DeployModelLro", "resourceUri": f"{api_host}/v1/{operation.operation.name}"}]
    }
    with open(gcp_resources_path, "w") as f:
        json.dump(resources, f)
    try:
        response = operation.result(timeout=timeout_seconds)
    except TimeoutError:
        raise UserError(
            "deploy_timeout_seconds",
            timeout_seconds,
            f"passed before operation {operation.operation.name} finished",
            "raise deploy_timeout_seconds, or check the model server's start-up",
        ) from None
    return response.deployed_model.id


def promotion_splits(previous: dict, traffic_percentage: int, canary_percentage: int) -> tuple[dict, dict]:
    """The canary split ({} when there is no canary step) and the target split; "0" names the new model.

    As the SDK does, the first model of an endpoint takes all traffic, so it has no canary step either.
    """
    from google.cloud import aiplatform

    if not previous:
        return {}, {"0": 100}
    target = aiplatform.Endpoint._allocate_traffic(previous, traffic_percentage)
    if not 0 < canary_percentage < traffic_percentage:
        return {}, target
    return aiplatform.Endpoint._allocate_traffic(previous, canary_percentage), target


def deploy_version(
    model_name: str,
    endpoint_name: str,
    machine_type: str,
    accelerator_type: str,
    accelerator_count: int,
    min_replica_count: int,
    max_replica_count: int,
    traffic_percentage: int,
    canary_percentage: int,
    timeout_seconds: float,
    gcp_resources_path: str,
    api_host: str,
) -> Deployed:
    from vertex_serving.sdk import open_endpoint

    endpoint = open_endpoint(endpoint_name)
    previous = dict(endpoint.traffic_split)
    canary, target = promotion_splits(previous, traffic_percentage, canary_percentage)
    if endpoint.network:  # a private endpoint has no traffic split
        canary, target = {}, {}
    # Deployed with 0%: an empty split leaves the endpoint's as it is.
    hold = {**previous, "0": 0} if previous and not endpoint.network else None
    new_id = deploy_model(
        endpoint,
        model_name,
        machine_type,
        accelerator_type,
        accelerator_count,
        min_replica_count,
        max_replica_count,
        hold,
        timeout_seconds,
        gcp_resources_path,
        api_host,
    )
    canary, target = ({new_id if k == "0" else k: v for k, v in s.items()} for s in (canary, target))
    return Deployed(new_id, json.dumps(previous), json.dumps(canary), json.dumps(target))


@component(base_image=COMPONENT_IMAGE, install_kfp_package=False)  # the image carries kfp
def deploy(
    project: str,
    location: str,
    api_endpoint: str,
    vertex_model: dsl.Input[VertexModel],
    vertex_endpoint: dsl.Input[VertexEndpoint],
    machine_type: str,
    accelerator_type: str,
    accelerator_count: int,
    min_replica_count: int,
    max_replica_count: int,
    traffic_percentage: int,
    canary_percentage: int,
    deploy_timeout_seconds: float,
    gcp_resources: dsl.OutputPath(str),
) -> NamedTuple(
    "Deployed",
    [
        ("deployed_model_id", str),
        ("previous_traffic_split", str),
        ("canary_traffic_split", str),
        ("target_traffic_split", str),
    ],
):
    from components.deploy import deploy_version
    from vertex_serving.sdk import init_vertex

    init_vertex(project, location, api_endpoint)
    host = api_endpoint or f"https://{location}-aiplatform.googleapis.com"
    result = deploy_version(
        vertex_model.metadata["resourceName"],
        vertex_endpoint.metadata["resourceName"],
        machine_type,
        accelerator_type,
        accelerator_count,
        min_replica_count,
        max_replica_count,
        traffic_percentage,
        canary_percentage,
        deploy_timeout_seconds,
        gcp_resources,
        host,
    )
    print(
        f"deploy: DeployedModel {result.deployed_model_id} at 0%; traffic before: {result.previous_traffic_split}, "
        f"canary step: {result.canary_traffic_split}, target: {result.target_traffic_split}"
    )
    return result
