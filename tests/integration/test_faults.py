"""The fault suite: model servers and localvertex killed with SIGKILL under a client that keeps predicting.

Whatever is killed, every answer a client gets is right, every refusal is a clean 503, no call hangs, nothing
deployed is lost, and the ports a user exported stay valid.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from google.api_core import exceptions
from google.cloud import aiplatform

from tests.integration.localvertex_fixtures import CPU_IMAGE, Emulator
from tests.integration.test_supervision import server_pid, until
from tests.models import TESTDATA

pytestmark = pytest.mark.integration
HALF_PLUS_TWO = TESTDATA / "saved_model_half_plus_two_cpu" / "00000123"


class Client(threading.Thread):
    """A user predicting in a loop with a deadline per call; keeps every answer and every error."""

    def __init__(self, endpoint_name: str):
        super().__init__(daemon=True)
        self.endpoint = aiplatform.Endpoint(endpoint_name)
        self.answers, self.errors, self.stop = [], [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                self.answers.append(self.endpoint.predict(instances=[1.0, 3.0], timeout=30).predictions)
            except exceptions.GoogleAPICallError as e:
                self.errors.append(e)
                time.sleep(0.05)
            except Exception as e:  # the emulator itself is down: the connection is refused
                self.errors.append(e)
                time.sleep(0.05)

    def finish(self) -> None:
        self.stop.set()
        self.join(60)
        assert not self.is_alive(), "a prediction hung"


def _pid_or_none(deployed_model_id: str) -> int | None:
    try:
        return server_pid(deployed_model_id)
    except AssertionError:  # between its death and its restart
        return None


@pytest.fixture()
def deployed(tmp_path):
    emulator = Emulator(tmp_path / "localvertex", tpu_cores=0).start()
    try:
        emulator.init_sdk()
        model = aiplatform.Model.upload(
            display_name="faults", artifact_uri=str(HALF_PLUS_TWO), serving_container_image_uri=CPU_IMAGE
        )
        endpoint = aiplatform.Endpoint.create(display_name="faults")
        model.deploy(endpoint=endpoint, machine_type="n1-standard-2", traffic_percentage=100)
        yield emulator, endpoint
    finally:
        emulator.stop()


def test_a_model_server_killed_under_load_is_restarted_and_no_answer_is_wrong(deployed):
    emulator, endpoint = deployed
    (model,) = endpoint.list_models()
    client = Client(endpoint.resource_name)
    client.start()
    until(lambda: client.answers)
    for _ in range(2):
        killed = server_pid(model.id)
        os.kill(killed, signal.SIGKILL)
        until(lambda killed=killed: _pid_or_none(model.id) not in (None, killed))
        seen = len(client.answers)
        until(lambda seen=seen: len(client.answers) > seen + 5)  # answering again after the restart
    client.finish()
    assert all(a == [2.5, 3.5] for a in client.answers)
    assert all(isinstance(e, exceptions.ServiceUnavailable) for e in client.errors), client.errors[:3]
    assert "restarted 2 times" in aiplatform.Endpoint(endpoint.resource_name).list_models()[0].status.message


def test_a_killed_emulator_comes_back_on_the_same_ports_and_a_client_on_the_old_url_recovers(deployed):
    emulator, endpoint = deployed
    before = dict(emulator.state)
    split = dict(endpoint.traffic_split)
    client = Client(endpoint.resource_name)  # keeps the URL and port it was given, as an exported variable does
    client.start()
    until(lambda: client.answers)
    emulator.kill()
    time.sleep(1)
    emulator.start()
    assert {k: emulator.state[k] for k in ("api_endpoint", "storage_port")} == {
        k: before[k] for k in ("api_endpoint", "storage_port")
    }
    seen = len(client.answers)
    until(lambda: len(client.answers) > seen + 5, timeout=180)
    client.finish()
    assert all(a == [2.5, 3.5] for a in client.answers)
    restarted = aiplatform.Endpoint(endpoint.resource_name)
    assert restarted.traffic_split == split and [d.id for d in restarted.list_models()] == list(split)


def test_a_model_server_killed_while_its_deploy_runs_still_ends_the_operation(deployed):
    from google.cloud.aiplatform_v1 import types

    emulator, endpoint = deployed
    model = aiplatform.Model.list(filter='display_name="faults"')[0]
    request = types.DeployedModel(
        model=model.resource_name,
        dedicated_resources=types.DedicatedResources(
            machine_spec=types.MachineSpec(machine_type="n1-standard-2"), min_replica_count=1
        ),
    )
    before = {d.id for d in endpoint.list_models()}
    operation = endpoint.api_client.deploy_model(
        endpoint=endpoint.resource_name, deployed_model=request, traffic_split={**endpoint.traffic_split, "0": 0}
    )
    new_id = until(lambda: ({d.id for d in aiplatform.Endpoint(endpoint.resource_name).list_models()} - before) or None)
    (new_id,) = new_id
    os.kill(until(lambda: _pid_or_none(new_id)), signal.SIGKILL)  # while it loads or just after
    try:
        response = operation.result(timeout=240)  # ends, one way or the other: never hangs
    except exceptions.GoogleAPICallError as e:
        assert "exited" in str(e) or "model server" in str(e), e
        assert {d.id for d in aiplatform.Endpoint(endpoint.resource_name).list_models()} == before
    else:  # restarted by the supervisor: it serves, and has no traffic it was not given
        assert response.deployed_model.id == new_id
        assert aiplatform.Endpoint(endpoint.resource_name).traffic_split.get(new_id, 0) == 0
