"""Deploys the model version to the endpoint with no traffic yet, within a deploy timeout.

The new DeployedModel takes its share only when the smoke test promotes it, so a run that is cancelled or fails
here leaves no model taking traffic. As GCPC does, the deploy operation is written to `gcp_resources` before the
wait, so a cancelled run can be traced to its operation. The split before the deploy and the split asked for are
the step's outputs: the smoke test promotes to the one and restores the other.
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
    target_traffic_split: str


def deploy_version(
    model_name: str,
    endpoint_name: str,
    machine_type: str,
    accelerator_type: str,
    accelerator_count: int,
    min_replica_count: int,
    max_replica_count: int,
    traffic_percentage: int,
    timeout_seconds: float,
    gcp_resources_path: str,
    api_host: str,
) -> Deployed:
    from google.cloud import aiplatform
    from google.cloud.aiplatform_v1 import types

    from vertex_serving.sdk import open_endpoint

    endpoint = open_endpoint(endpoint_name)
    previous = dict(endpoint.traffic_split)
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
    # As the SDK does: the first model of an endpoint takes all traffic, whatever traffic_percentage says.
    share = traffic_percentage if previous else 100
    target = {} if endpoint.network else aiplatform.Endpoint._allocate_traffic(previous, share)
    # Deployed with 0%: "0" is the model being deployed; an empty split leaves the endpoint's as it is.
    hold = {**previous, "0": 0} if previous and not endpoint.network else None
    operation = endpoint.api_client.deploy_model(
        endpoint=endpoint.resource_name, deployed_model=deployed, traffic_split=hold
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
    new_id = response.deployed_model.id
    target = {new_id if k == "0" else k: v for k, v in target.items()}
    return Deployed(new_id, json.dumps(previous), json.dumps(target))


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
    deploy_timeout_seconds: float,
    gcp_resources: dsl.OutputPath(str),
) -> NamedTuple(
    "Deployed", [("deployed_model_id", str), ("previous_traffic_split", str), ("target_traffic_split", str)]
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
        deploy_timeout_seconds,
        gcp_resources,
        host,
    )
    print(
        f"deploy: DeployedModel {result.deployed_model_id} at 0%; traffic before: {result.previous_traffic_split}, "
        f"after a passed smoke test: {result.target_traffic_split}"
    )
    return result
