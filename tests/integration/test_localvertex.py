"""The unmodified aiplatform SDK against a real localvertex on 127.0.0.1: the full flow, its errors, a restart."""

from __future__ import annotations

import collections
import time

import pytest
from google.api_core import exceptions
from google.cloud import aiplatform, storage
from google.cloud.aiplatform_v1 import types

from localvertex.control import status
from tests.integration.localvertex_fixtures import CPU_IMAGE, TPU_IMAGE
from tests.models import tagged_sum

pytestmark = pytest.mark.integration
ROW = {"a": [1.0, 2.0, 3.0], "tag": "x"}  # sum 14


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tagged_sum(tmp_path_factory.mktemp("models") / "tagged", alias="tpu_func")


@pytest.fixture(scope="module")
def tpu_model(emulator, model_dir):
    return aiplatform.Model.upload(
        display_name="tagged", artifact_uri=str(model_dir), serving_container_image_uri=TPU_IMAGE
    )


def test_full_flow_with_a_canary_version(emulator, model_dir):
    control_plane, started = 0.0, time.monotonic()

    def timed(step):
        nonlocal control_plane
        began = time.monotonic()
        result = step()
        control_plane += time.monotonic() - began
        return result

    endpoint = timed(lambda: aiplatform.Endpoint.create(display_name="flow"))
    v1 = timed(
        lambda: aiplatform.Model.upload(
            display_name="flow-model", artifact_uri=str(model_dir), serving_container_image_uri=TPU_IMAGE
        )
    )
    assert v1.uri.startswith("gs://localvertex-staging/")
    v1.deploy(
        endpoint=endpoint, machine_type="ct5lp-hightpu-1t", traffic_percentage=100, min_replica_count=1, sync=True
    )
    prediction = timed(lambda: endpoint.predict(instances=[ROW, {"a": [0.0, 0.0, 1.0], "tag": "y"}]))
    assert [p["sum"] for p in prediction.predictions] == [14.0, 3.0] and prediction.model_version_id == "1"
    first_id = prediction.deployed_model_id

    v2 = timed(
        lambda: aiplatform.Model.upload(
            display_name="flow-model",
            parent_model=v1.resource_name,
            artifact_uri=str(model_dir),
            serving_container_image_uri=TPU_IMAGE,
        )
    )
    assert v2.resource_name == v1.resource_name and v2.version_id == "2" and "default" in v2.version_aliases
    v2.deploy(endpoint=endpoint, machine_type="ct5lp-hightpu-1t", traffic_percentage=20, sync=True)
    endpoint = aiplatform.Endpoint(endpoint.resource_name)
    second_id = next(k for k in endpoint.traffic_split if k != first_id)
    assert endpoint.traffic_split == {first_id: 80, second_id: 20}

    predicting = time.monotonic()
    shares = collections.Counter(endpoint.predict(instances=[ROW]).deployed_model_id for _ in range(500))
    predictions = time.monotonic() - predicting
    assert abs(shares[second_id] / 500 - 0.20) < 0.06 and shares[first_id] + shares[second_id] == 500

    timed(lambda: endpoint.undeploy(deployed_model_id=first_id))
    endpoint = aiplatform.Endpoint(endpoint.resource_name)
    assert endpoint.traffic_split == {second_id: 100} and [m.id for m in endpoint.list_models()] == [second_id]
    assert timed(lambda: endpoint.predict(instances=[ROW])).deployed_model_id == second_id
    timed(lambda: endpoint.undeploy_all())
    timed(lambda: endpoint.delete())
    timed(lambda: v1.delete())
    with pytest.raises(exceptions.NotFound):
        aiplatform.Model(v1.resource_name)
    print(
        f"\ncontrol plane {control_plane:.2f}s, 500 predictions {predictions:.2f}s, all {time.monotonic() - started:.2f}s "
        "(the rest: model loading and the SDK's polling)"
    )


def test_unknown_model_and_endpoint_are_not_found(emulator):
    with pytest.raises(exceptions.NotFound, match="Model"):
        aiplatform.Model("projects/test-project/locations/us-central1/models/424242")
    endpoint = aiplatform.Endpoint(
        "projects/test-project/locations/us-central1/endpoints/424242"
    )  # the SDK reads lazily
    with pytest.raises(exceptions.NotFound, match="Endpoint"):
        endpoint.predict(instances=[ROW])


def test_a_tpu_machine_type_refuses_a_cpu_image(emulator, model_dir):
    cpu = aiplatform.Model.upload(
        display_name="cpu-model", artifact_uri=str(model_dir), serving_container_image_uri=CPU_IMAGE
    )
    endpoint = aiplatform.Endpoint.create(display_name="tpu-cpu")
    with pytest.raises(exceptions.BadRequest, match="needs a TPU serving image"):
        cpu.deploy(endpoint=endpoint, machine_type="ct5lp-hightpu-1t")
    assert aiplatform.Endpoint(endpoint.resource_name).traffic_split == {}


def test_a_tpu_machine_type_refuses_an_accelerator_count(emulator, tpu_model):
    endpoint = aiplatform.Endpoint.create(display_name="tpu-accel")
    with pytest.raises(exceptions.BadRequest, match="TPU built in"):
        tpu_model.deploy(
            endpoint=endpoint, machine_type="ct5lp-hightpu-4t", accelerator_type="NVIDIA_TESLA_T4", accelerator_count=1
        )


def test_the_tpu_quota_is_enforced_and_says_how_to_raise_it(emulator, tpu_model):
    endpoint = aiplatform.Endpoint.create(display_name="quota")
    with pytest.raises(exceptions.ResourceExhausted, match="Custom model serving TPU v5e cores per region") as e:
        tpu_model.deploy(endpoint=endpoint, machine_type="ct5lp-hightpu-8t", min_replica_count=2)
    assert "--tpu-v5e-cores" in str(e.value) and "limit 8" in str(e.value)


def test_a_model_that_fails_to_load_fails_the_deploy_and_leaves_nothing(emulator, tmp_path, tpu_model):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    model = aiplatform.Model.upload(
        display_name="broken", artifact_uri=str(broken), serving_container_image_uri=TPU_IMAGE
    )
    endpoint = aiplatform.Endpoint.create(display_name="broken")
    tpu_model.deploy(endpoint=endpoint, machine_type="ct5lp-hightpu-1t", traffic_percentage=100)
    before = aiplatform.Endpoint(endpoint.resource_name).traffic_split
    with pytest.raises(exceptions.FailedPrecondition, match="Model server failed to start"):
        model.deploy(endpoint=endpoint, machine_type="ct5lp-hightpu-1t", traffic_percentage=50)
    after = aiplatform.Endpoint(endpoint.resource_name)
    assert after.traffic_split == before and len(after.list_models()) == 1
    assert after.predict(instances=[ROW]).predictions[0]["sum"] == 14.0
    running = [d for e in status(emulator.data_dir)["endpoints"] for d in e["deployed_models"]]
    assert all(d["healthy"] for d in running)
    after.undeploy_all()


def test_an_endpoint_with_deployed_models_cannot_be_deleted(emulator, tpu_model):
    endpoint = aiplatform.Endpoint.create(display_name="busy")
    tpu_model.deploy(endpoint=endpoint, machine_type="ct5lp-hightpu-1t")
    with pytest.raises(exceptions.BadRequest, match="undeploy them first"):
        endpoint.delete()
    endpoint.undeploy_all()
    endpoint.delete()


def test_a_traffic_split_must_sum_to_100(emulator, tpu_model):
    endpoint = aiplatform.Endpoint.create(display_name="split")
    tpu_model.deploy(endpoint=endpoint, machine_type="ct5lp-hightpu-1t")
    existing = next(iter(aiplatform.Endpoint(endpoint.resource_name).traffic_split))
    deployed = types.DeployedModel(
        model=tpu_model.versioned_resource_name,
        dedicated_resources=types.DedicatedResources(
            machine_spec=types.MachineSpec(machine_type="ct5lp-hightpu-1t"), min_replica_count=1
        ),
    )
    with pytest.raises(
        exceptions.BadRequest, match="sum to 100"
    ):  # the SDK's GAPIC client: deploy() checks sums itself
        endpoint.api_client.deploy_model(
            endpoint=endpoint.resource_name, deployed_model=deployed, traffic_split={"0": 50, existing: 30}
        )
    assert aiplatform.Endpoint(endpoint.resource_name).traffic_split == {existing: 100}
    endpoint.undeploy_all()


def test_an_image_that_cannot_run_locally_is_named(emulator, model_dir):
    custom = aiplatform.Model.upload(
        display_name="custom", artifact_uri=str(model_dir), serving_container_image_uri="example.com/team/server:1"
    )
    endpoint = aiplatform.Endpoint.create(display_name="custom")
    with pytest.raises(exceptions.FailedPrecondition, match="example.com/team/server:1 cannot run locally"):
        custom.deploy(endpoint=endpoint, machine_type="n1-standard-4")


def test_a_missing_gs_artifact_fails_the_upload(emulator):
    with pytest.raises(exceptions.NotFound, match="gs://localvertex-staging/nothing-here"):
        aiplatform.Model.upload(
            display_name="ghost",
            artifact_uri="gs://localvertex-staging/nothing-here",
            serving_container_image_uri=CPU_IMAGE,
        )


def test_models_are_listed_by_display_name_with_their_versions(emulator, model_dir):
    first = aiplatform.Model.upload(
        display_name="listed", artifact_uri=str(model_dir), serving_container_image_uri=CPU_IMAGE
    )
    aiplatform.Model.upload(
        display_name="listed",
        parent_model=first.resource_name,
        artifact_uri=str(model_dir),
        serving_container_image_uri=CPU_IMAGE,
    )
    found = aiplatform.Model.list(filter='display_name="listed"')
    assert [(m.resource_name, m.version_id) for m in found] == [(first.resource_name, "2")]
    versions = aiplatform.models.ModelRegistry(first.resource_name).list_versions()
    assert sorted(v.version_id for v in versions) == ["1", "2"]
    assert aiplatform.Model(first.resource_name, version="1").version_id == "1"


def test_a_private_endpoint_serves_through_its_predict_http_uri(emulator, model_dir):
    model = aiplatform.Model.upload(
        display_name="private", artifact_uri=str(model_dir), serving_container_image_uri=CPU_IMAGE
    )
    endpoint = aiplatform.PrivateEndpoint.create(display_name="private", network="projects/123/global/networks/default")
    model.deploy(endpoint=endpoint, machine_type="n1-standard-4")
    endpoint = aiplatform.PrivateEndpoint(endpoint.resource_name)
    assert endpoint.predict_http_uri.startswith("http://127.0.0.1:")
    assert endpoint.predict(instances=[ROW]).predictions[0]["sum"] == 14.0
    raw = endpoint.raw_predict(
        body=b'{"instances": [{"a": [1, 1, 1], "tag": "r"}]}', headers={"Content-Type": "application/json"}
    )
    assert raw.status == 200 and b'"sum":6.0' in raw.data
    assert [e.resource_name for e in aiplatform.PrivateEndpoint.list()] == [endpoint.resource_name]
    assert endpoint.resource_name not in [e.resource_name for e in aiplatform.Endpoint.list()]
    endpoint.undeploy_all()


def test_staged_artifacts_land_in_the_gcs_emulator(emulator, tpu_model):
    bucket, _, prefix = tpu_model.uri.removeprefix("gs://").partition("/")
    names = [b.name for b in storage.Client().list_blobs(bucket, prefix=prefix)]
    assert any(n.endswith("saved_model.pb") for n in names)


def test_versions_left_without_traffic_can_be_retired(emulator, model_dir):
    from components.smoke_test import retire_zero_traffic

    endpoint = aiplatform.Endpoint.create(display_name="retire")
    v1 = aiplatform.Model.upload(
        display_name="retire", artifact_uri=str(model_dir), serving_container_image_uri=CPU_IMAGE
    )
    v1.deploy(endpoint=endpoint, machine_type="n1-standard-4")
    v2 = aiplatform.Model.upload(
        display_name="retire",
        parent_model=v1.resource_name,
        artifact_uri=str(model_dir),
        serving_container_image_uri=CPU_IMAGE,
    )
    v2.deploy(endpoint=endpoint, machine_type="n1-standard-4", traffic_percentage=100)
    endpoint = aiplatform.Endpoint(endpoint.resource_name)
    new_id = next(k for k, v in endpoint.traffic_split.items() if v == 100)
    old_id = next(d.id for d in endpoint.list_models() if d.id != new_id)
    assert retire_zero_traffic(endpoint.resource_name, v2.versioned_resource_name, new_id) == [old_id]
    endpoint = aiplatform.Endpoint(endpoint.resource_name)
    assert [d.id for d in endpoint.list_models()] == [new_id] and endpoint.traffic_split == {new_id: 100}
    endpoint.undeploy_all()
