"""A killed localvertex comes back on the same data directory with the same endpoints, models and split."""

from __future__ import annotations

import collections
import time
import urllib.request

import pytest
from google.cloud import aiplatform

from localvertex.control import status
from tests.integration.localvertex_fixtures import TPU_IMAGE, Emulator
from tests.models import tagged_sum

pytestmark = pytest.mark.integration
ROW = {"a": [1.0, 2.0, 3.0], "tag": "x"}  # sum 14


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tagged_sum(tmp_path_factory.mktemp("models") / "tagged")


def test_a_restarted_emulator_serves_the_same_models_and_split(tmp_path, model_dir):
    emulator = Emulator(tmp_path / "restart", tpu_cores=8).start()
    try:
        emulator.init_sdk()
        endpoint = aiplatform.Endpoint.create(display_name="survivor")
        v1 = aiplatform.Model.upload(
            display_name="survivor", artifact_uri=str(model_dir), serving_container_image_uri=TPU_IMAGE
        )
        v1.deploy(endpoint=endpoint, machine_type="ct5lp-hightpu-1t", traffic_percentage=100)
        v2 = aiplatform.Model.upload(
            display_name="survivor",
            parent_model=v1.resource_name,
            artifact_uri=str(model_dir),
            serving_container_image_uri=TPU_IMAGE,
        )
        v2.deploy(endpoint=endpoint, machine_type="ct5lp-hightpu-1t", traffic_percentage=30)
        split = aiplatform.Endpoint(endpoint.resource_name).traffic_split
        ports = [d["port"] for e in status(emulator.data_dir)["endpoints"] for d in e["deployed_models"]]
        emulator.kill()
        for port in ports:  # the model servers die with the emulator: no orphans
            _wait_closed(port)
        emulator.start()
        emulator.init_sdk()
        restarted = aiplatform.Endpoint(endpoint.resource_name)
        assert restarted.traffic_split == split
        _wait_all_healthy(emulator.data_dir)
        assert restarted.predict(instances=[ROW]).predictions[0]["sum"] == 14.0
        shares = collections.Counter(restarted.predict(instances=[ROW]).deployed_model_id for _ in range(100))
        assert set(shares) == set(split)
    finally:
        emulator.stop()


def _wait_all_healthy(data_dir, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deployed = [d for e in status(data_dir)["endpoints"] for d in e["deployed_models"]]
        if deployed and all(d["healthy"] for d in deployed):
            return
        time.sleep(0.5)
    raise AssertionError(f"deployed models not healthy after a restart: {deployed}")


def _wait_closed(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1)
        except OSError:
            return
        time.sleep(0.2)
    raise AssertionError(f"a model server still answers on port {port}")


def test_a_deploy_cut_short_by_a_crash_ends_with_an_error_after_the_restart(tmp_path, model_dir):
    from google.api_core import exceptions
    from google.cloud.aiplatform_v1 import types

    emulator = Emulator(tmp_path / "crash", tpu_cores=8).start()
    try:
        emulator.init_sdk()
        endpoint = aiplatform.Endpoint.create(display_name="crashed")
        model = aiplatform.Model.upload(
            display_name="crashed", artifact_uri=str(model_dir), serving_container_image_uri=TPU_IMAGE
        )
        deployed = types.DeployedModel(
            model=model.resource_name,
            dedicated_resources=types.DedicatedResources(
                machine_spec=types.MachineSpec(machine_type="ct5lp-hightpu-1t"), min_replica_count=1
            ),
        )
        operation = endpoint.api_client.deploy_model(
            endpoint=endpoint.resource_name, deployed_model=deployed, traffic_split={"0": 100}
        )
        emulator.kill()  # while the model server is still loading
        emulator.start()
        emulator.init_sdk()
        with pytest.raises(exceptions.GoogleAPICallError, match="localvertex stopped while this operation ran"):
            operation.result(timeout=60)
        assert aiplatform.Endpoint(endpoint.resource_name).traffic_split == {}
    finally:
        emulator.stop()
