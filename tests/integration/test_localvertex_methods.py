"""The calls SDK users make after the core flow, against a real localvertex: updates, aliases, version deletes,
replica counts, explanations, operations, dedicated and private endpoints, and the refusals Vertex AI makes."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from google.api_core import exceptions
from google.cloud import aiplatform
from google.cloud.aiplatform import gapic as aip
from google.cloud.aiplatform_v1 import types
from google.longrunning import operations_pb2
from google.protobuf import duration_pb2, field_mask_pb2

from tests.integration.localvertex_fixtures import CPU_IMAGE, LOCATION, PROJECT, TPU_IMAGE, rest_client, stage
from tests.models import tagged_sum

pytestmark = pytest.mark.integration
ROW = {"a": [1.0, 2.0, 3.0], "tag": "x"}  # sum 14
SHAPLEY = {"sampled_shapley_attribution": {"path_count": 10}}
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
METADATA = {"inputs": {"a": {}}, "outputs": {"sum": {"output_tensor_name": "sum"}}}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tagged_sum(tmp_path_factory.mktemp("models") / "tagged", alias="tpu_func")


@pytest.fixture(scope="module")
def explained(emulator, model_dir):
    """A model that explains itself with Sampled Shapley, deployed with all the traffic of a public endpoint."""
    model = aiplatform.Model.upload(
        display_name="explained",
        artifact_uri=str(model_dir),
        serving_container_image_uri=CPU_IMAGE,
        explanation_parameters=aiplatform.explain.ExplanationParameters(SHAPLEY),
        explanation_metadata=aiplatform.explain.ExplanationMetadata(METADATA),
    )
    endpoint = aiplatform.Endpoint.create(display_name="methods")
    model.deploy(endpoint=endpoint, machine_type="n1-standard-4", traffic_percentage=100)
    yield model, aiplatform.Endpoint(endpoint.resource_name)
    endpoint.undeploy_all()


def test_an_endpoint_s_display_name_description_and_labels_are_updated(emulator):
    endpoint = aiplatform.Endpoint.create(display_name="before", labels={"team": "a"})
    endpoint.update(display_name="after", description="serves digits", labels={"team": "b"})
    again = aiplatform.Endpoint(endpoint.resource_name)
    assert (again.display_name, again.gca_resource.description, again.labels) == (
        "after",
        "serves digits",
        {"team": "b"},
    )


def test_the_long_running_update_changes_the_client_connection_config_only(emulator):
    endpoint = aiplatform.Endpoint.create(display_name="long-running")
    config = types.ClientConnectionConfig(inference_timeout=duration_pb2.Duration(seconds=30))
    updated = endpoint.api_client.update_endpoint_long_running(
        endpoint=types.Endpoint(name=endpoint.resource_name, client_connection_config=config)
    ).result()
    assert updated.client_connection_config.inference_timeout == dt.timedelta(seconds=30)
    assert aiplatform.Endpoint(endpoint.resource_name).display_name == "long-running"
    with pytest.raises(exceptions.BadRequest, match="only clientConnectionConfig"):
        endpoint.api_client.update_endpoint_long_running(
            endpoint=types.Endpoint(name=endpoint.resource_name, display_name="renamed")
        )


def test_a_model_and_its_versions_are_updated(emulator, model_dir):
    first = aiplatform.Model.upload(
        display_name="updatable", artifact_uri=str(model_dir), serving_container_image_uri=CPU_IMAGE
    )
    aiplatform.Model.upload(
        display_name="updatable",
        parent_model=first.resource_name,
        artifact_uri=str(model_dir),
        serving_container_image_uri=CPU_IMAGE,
    )
    aiplatform.Model(first.resource_name).update(
        display_name="renamed", description="digits classifier", labels={"stage": "dev"}
    )
    aiplatform.models.ModelRegistry(first.resource_name).update_version(
        "1", version_description="first try", labels={"stage": "old"}
    )
    one = aiplatform.Model(first.resource_name, version="1")
    two = aiplatform.Model(first.resource_name, version="2")
    assert one.display_name == two.display_name == "renamed"  # the model's own fields, shared by its versions
    assert one.description == two.description == "digits classifier"
    assert (one.version_description, one.labels, two.labels) == ("first try", {"stage": "old"}, {"stage": "dev"})


def test_aliases_are_added_moved_and_removed_and_default_moves(emulator, model_dir):
    first = aiplatform.Model.upload(
        display_name="aliased", artifact_uri=str(model_dir), serving_container_image_uri=CPU_IMAGE
    )
    aiplatform.Model.upload(
        display_name="aliased",
        parent_model=first.resource_name,
        artifact_uri=str(model_dir),
        serving_container_image_uri=CPU_IMAGE,
    )
    registry = aiplatform.models.ModelRegistry(first.resource_name)

    def aliases(version: str) -> set[str]:
        return set(registry.get_version_info(version).version_aliases)

    registry.add_version_aliases(["prod", "golden"], version="1")
    assert aliases("1") == {"prod", "golden"} and aliases("2") == {"default"}
    registry.add_version_aliases(["prod"], version="2")  # an alias names one version: it moves
    assert aliases("1") == {"golden"} and aliases("2") == {"default", "prod"}
    registry.add_version_aliases(["default"], version="1")
    assert aiplatform.Model(first.resource_name).version_id == "1"
    assert [m.version_id for m in aiplatform.Model.list(filter='display_name="aliased"')] == ["1"]
    registry.remove_version_aliases(["prod"], version="2")
    assert aliases("2") == set()
    assert aiplatform.Model(first.resource_name, version="golden").version_id == "1"
    with pytest.raises(exceptions.BadRequest, match="default alias cannot be removed"):
        registry.remove_version_aliases(["default"], version="1")
    with pytest.raises(exceptions.BadRequest, match="'2'"):
        registry.add_version_aliases(["2"], version="1")


def test_a_version_is_deleted_only_once_it_is_undeployed(emulator, model_dir, explained):
    model, endpoint = explained
    extra = aiplatform.Model.upload(
        display_name="explained",
        parent_model=model.resource_name,
        is_default_version=False,
        artifact_uri=str(model_dir),
        serving_container_image_uri=CPU_IMAGE,
    )
    extra.deploy(endpoint=endpoint, machine_type="n1-standard-4", traffic_percentage=0)
    registry = aiplatform.models.ModelRegistry(model.resource_name)
    with pytest.raises(exceptions.BadRequest, match="undeploy it first"):
        registry.delete_version(extra.version_id)
    endpoint = aiplatform.Endpoint(endpoint.resource_name)
    extra_id = next(d.id for d in endpoint.list_models() if d.model_version_id == extra.version_id)
    endpoint.undeploy(deployed_model_id=extra_id)
    registry.delete_version(extra.version_id)
    with pytest.raises(exceptions.NotFound):
        aiplatform.Model(model.resource_name, version=extra.version_id)
    with pytest.raises(exceptions.BadRequest, match="only version .* delete the model instead"):
        registry.delete_version("1")


def test_a_deployed_model_is_named_after_its_model_when_no_name_is_given(explained):
    _, endpoint = explained
    assert endpoint.list_models()[0].display_name == "explained"


def test_explain_gives_sampled_shapley_attributions(explained):
    _, endpoint = explained
    response = endpoint.explain(instances=[ROW, {"a": [0.0, 0.0, 2.0], "tag": "y"}])
    assert [p["sum"] for p in response.predictions] == [14.0, 6.0]
    first, second = (e.attributions[0] for e in response.explanations)
    assert list(first.feature_attributions["a"]) == pytest.approx([1.0, 4.0, 9.0])
    assert list(second.feature_attributions["a"]) == pytest.approx([0.0, 0.0, 6.0])
    assert (first.baseline_output_value, first.instance_output_value, first.output_name) == (0.0, 14.0, "sum")
    assert response.deployed_model_id == endpoint.list_models()[0].id  # the one with all the traffic


def test_an_explanation_override_brings_its_own_baselines_and_is_checked(emulator, explained):
    _, endpoint = explained
    client = rest_client(aip.PredictionServiceClient, emulator)

    def explain(override: dict):
        body = {"endpoint": endpoint.resource_name, "instances": [ROW], "explanationSpecOverride": override}
        return client.explain(request=types.ExplainRequest.from_json(json.dumps(body)))

    attribution = explain({"metadata": {"inputs": {"a": {"inputBaselines": [[1.0, 1.0, 1.0]]}}}}).explanations[0]
    assert list(attribution.attributions[0].feature_attributions["a"]) == pytest.approx([0.0, 2.0, 6.0])
    assert attribution.attributions[0].baseline_output_value == 6.0
    with pytest.raises(exceptions.BadRequest, match="Sampled Shapley only"):
        explain({"parameters": {"integratedGradientsAttribution": {"stepCount": 50}}})


def test_explaining_with_another_method_is_refused_on_the_optimized_runtime(emulator, model_dir):
    with pytest.raises(exceptions.BadRequest, match="optimized TensorFlow runtime.*Sampled Shapley"):
        aiplatform.Model.upload(
            display_name="integrated",
            artifact_uri=str(model_dir),
            serving_container_image_uri=CPU_IMAGE,
            explanation_parameters=aiplatform.explain.ExplanationParameters(
                {"integrated_gradients_attribution": {"step_count": 50}}
            ),
            explanation_metadata=aiplatform.explain.ExplanationMetadata(METADATA),
        )


def test_a_model_without_an_explanation_spec_is_not_explained(emulator, model_dir, explained):
    model, endpoint = explained
    assert endpoint.predict(instances=[ROW]).predictions[0]["sum"] == 14.0
    plain = aiplatform.Model.upload(
        display_name="plain", artifact_uri=str(model_dir), serving_container_image_uri=CPU_IMAGE
    )
    other = aiplatform.Endpoint.create(display_name="plain")
    plain.deploy(endpoint=other, machine_type="n1-standard-4", traffic_percentage=100)
    try:
        with pytest.raises(exceptions.BadRequest, match="no explanation spec"):
            other.explain(instances=[ROW])
    finally:
        other.undeploy_all()


def test_an_upload_without_a_saved_model_is_refused(emulator, tmp_path):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "weights.h5").write_bytes(b"keras weights, not a SavedModel")
    with pytest.raises(exceptions.BadRequest, match="is expected to contain exactly one of"):
        aiplatform.Model.upload(
            display_name="no-graph", artifact_uri=str(folder), serving_container_image_uri=CPU_IMAGE
        )


def test_an_unknown_machine_type_is_refused(emulator, model_dir):
    model = aiplatform.Model.upload(
        display_name="typo", artifact_uri=str(model_dir), serving_container_image_uri=CPU_IMAGE
    )
    endpoint = aiplatform.Endpoint.create(display_name="typo")
    with pytest.raises(exceptions.BadRequest, match='Machine type "n1-standrd-4" is not supported'):
        model.deploy(endpoint=endpoint, machine_type="n1-standrd-4")
    assert aiplatform.Endpoint(endpoint.resource_name).list_models() == []


def test_replica_counts_change_within_the_tpu_quota_and_operations_can_be_waited_for(emulator, model_dir):
    model = aiplatform.Model.upload(
        display_name="replicas", artifact_uri=str(model_dir), serving_container_image_uri=TPU_IMAGE
    )
    endpoint = aiplatform.Endpoint.create(display_name="replicas")
    client = endpoint.api_client
    machine = types.MachineSpec(machine_type="ct5lp-hightpu-1t")
    deploying = client.deploy_model(
        endpoint=endpoint.resource_name,
        deployed_model=types.DeployedModel(
            model=model.resource_name,
            dedicated_resources=types.DedicatedResources(machine_spec=machine, min_replica_count=1),
        ),
        traffic_split={"0": 100},
    )
    waited = client.wait_operation(
        request=operations_pb2.WaitOperationRequest(
            name=deploying.operation.name, timeout=duration_pb2.Duration(seconds=300)
        )
    )
    assert waited.done and not waited.HasField("error")
    deployed_id = deploying.result().deployed_model.id

    def mutate(**replicas):
        changed = types.DeployedModel(id=deployed_id, dedicated_resources=types.DedicatedResources(**replicas))
        mask = field_mask_pb2.FieldMask(paths=[f"dedicated_resources.{name}" for name in replicas])
        return client.mutate_deployed_model(
            endpoint=endpoint.resource_name, deployed_model=changed, update_mask=mask
        ).result()

    assert mutate(max_replica_count=4).deployed_model.dedicated_resources.max_replica_count == 4
    with pytest.raises(exceptions.ResourceExhausted, match="Custom model serving TPU v5e cores per region"):
        mutate(min_replica_count=9, max_replica_count=9)
    resources = aiplatform.Endpoint(endpoint.resource_name).list_models()[0].dedicated_resources
    assert (resources.min_replica_count, resources.max_replica_count) == (1, 4)
    endpoint.undeploy_all()

    listed = client.list_operations(request=operations_pb2.ListOperationsRequest(name=endpoint.resource_name))
    kinds = [o.metadata.type_url.rsplit(".", 1)[-1] for o in listed.operations]
    assert kinds == [
        "CreateEndpointOperationMetadata",
        "DeployModelOperationMetadata",
        "MutateDeployedModelOperationMetadata",
        "MutateDeployedModelOperationMetadata",  # the one the quota failed
        "UndeployModelOperationMetadata",
    ]
    assert all(o.done for o in listed.operations) and listed.operations[3].error.code == 8
    assert listed.operations[1].name == deploying.operation.name
    deployed = types.DeployModelOperationMetadata.deserialize(listed.operations[1].metadata.value).generic_metadata
    assert deployed.create_time.year >= 2024 and deployed.update_time > deployed.create_time


def test_an_upload_operation_carries_its_create_and_update_times(emulator, model_dir):
    client = rest_client(aip.ModelServiceClient, emulator)
    uploading = client.upload_model(
        parent=PARENT,
        model=types.Model(
            display_name="timed",
            artifact_uri=stage(model_dir, "timed"),
            container_spec=types.ModelContainerSpec(image_uri=CPU_IMAGE),
        ),
    )
    assert uploading.result().model_version_id == "1"
    metadata = uploading.metadata.generic_metadata
    assert metadata.create_time.year >= 2024 and metadata.update_time >= metadata.create_time


def test_a_dedicated_endpoint_is_reached_at_its_dns_name(emulator, model_dir, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emulator.state["ca_bundle"])  # trusts localvertex's TLS certificate
    model = aiplatform.Model.upload(
        display_name="dedicated", artifact_uri=str(model_dir), serving_container_image_uri=CPU_IMAGE
    )
    endpoint = aiplatform.Endpoint.create(display_name="dedicated", dedicated_endpoint_enabled=True)
    assert endpoint.dedicated_endpoint_enabled and endpoint.dedicated_endpoint_dns.startswith("127.0.0.1:")
    model.deploy(endpoint=endpoint, machine_type="n1-standard-4", traffic_percentage=100)
    endpoint = aiplatform.Endpoint(endpoint.resource_name)
    try:
        prediction = endpoint.predict(instances=[ROW])
        assert prediction.predictions[0]["sum"] == 14.0 and prediction.deployed_model_id
        raw = endpoint.raw_predict(
            body=b'{"instances": [{"a": [1, 1, 1], "tag": "r"}]}', headers={"Content-Type": "application/json"}
        )
        assert raw.status_code == 200 and raw.json()["predictions"][0]["sum"] == 6.0
        assert raw.headers["X-Vertex-AI-Deployed-Model-Id"] == prediction.deployed_model_id
        through_raw = endpoint.predict(instances=[ROW], use_raw_predict=True)
        assert through_raw.predictions[0]["sum"] == 14.0 and through_raw.model_version_id == "1"
        shared = rest_client(aip.PredictionServiceClient, emulator)
        with pytest.raises(exceptions.BadRequest, match="dedicated dns name"):
            shared.predict(endpoint=endpoint.resource_name, instances=[ROW])
    finally:
        endpoint.undeploy_all()


def test_a_private_endpoint_takes_one_model_so_force_delete_works(emulator, model_dir):
    model = aiplatform.Model.upload(
        display_name="psa", artifact_uri=str(model_dir), serving_container_image_uri=CPU_IMAGE
    )
    endpoint = aiplatform.PrivateEndpoint.create(display_name="psa", network="projects/123/global/networks/default")
    model.deploy(endpoint=endpoint, machine_type="n1-standard-4")
    with pytest.raises(exceptions.BadRequest, match="private endpoint serves one model"):
        model.deploy(endpoint=endpoint, machine_type="n1-standard-4")
    endpoint = aiplatform.PrivateEndpoint(endpoint.resource_name)
    assert len(endpoint.list_models()) == 1
    endpoint.delete(force=True)
    with pytest.raises(exceptions.NotFound):
        aiplatform.PrivateEndpoint(endpoint.resource_name)
