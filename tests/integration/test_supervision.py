"""localvertex supervises its model servers: one killed is restarted on its port; one that keeps dying is marked
failed in the API, and both are logged."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from google.api_core import exceptions
from google.cloud import aiplatform

from tests.integration.localvertex_fixtures import CPU_IMAGE, Emulator
from tests.models import TESTDATA

pytestmark = pytest.mark.integration


def server_pid(deployed_model_id: str) -> int:
    """The model server process of a DeployedModel, found by the AIP_DEPLOYED_MODEL_ID Vertex AI gives it."""
    wanted = f"AIP_DEPLOYED_MODEL_ID={deployed_model_id}".encode()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and wanted in (proc / "environ").read_bytes().split(b"\0"):
                return int(proc.name)
        except OSError:
            continue
    raise AssertionError(f"no model server for DeployedModel {deployed_model_id}")


def until(condition, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if found := condition():
                return found
        except exceptions.GoogleAPICallError:
            pass
        time.sleep(0.5)
    raise AssertionError("timed out")


def test_a_killed_model_server_is_restarted_and_one_that_keeps_dying_is_marked_failed(tmp_path):
    emulator = Emulator(tmp_path / "localvertex", tpu_cores=0, extra_args=("--max-server-restarts", "1")).start()
    try:
        emulator.init_sdk()
        model = aiplatform.Model.upload(
            display_name="supervised",
            artifact_uri=str(TESTDATA / "saved_model_half_plus_two_cpu" / "00000123"),
            serving_container_image_uri=CPU_IMAGE,
        )
        endpoint = aiplatform.Endpoint.create(display_name="supervised")
        model.deploy(endpoint=endpoint, machine_type="n1-standard-4", traffic_percentage=100, sync=True)
        (deployed,) = endpoint.list_models()
        first = server_pid(deployed.id)

        os.kill(first, signal.SIGKILL)
        until(lambda: endpoint.predict(instances=[1.0]).predictions == [2.5])
        assert server_pid(deployed.id) != first
        assert "restarted 1 times" in aiplatform.Endpoint(endpoint.resource_name).list_models()[0].status.message
        log = (emulator.data_dir / "emulator-test.log").read_text()
        assert f"DeployedModel {deployed.id}: its model server exited with code -9" in log

        os.kill(server_pid(deployed.id), signal.SIGKILL)  # a second death: over the limit of 1 restart
        status = until(
            lambda: (
                (m := aiplatform.Endpoint(endpoint.resource_name).list_models()[0].status).message.startswith("FAILED")
                and m
            )
        )
        assert status.available_replica_count == 0 and "exited with code -9" in status.message
        with pytest.raises(exceptions.ServiceUnavailable):
            endpoint.predict(instances=[1.0])
    finally:
        emulator.stop()
