"""What localvertex and its model servers refuse or keep to themselves: other origins, non-JSON posts, other
interfaces, the emulator's secrets, world-readable state and leftover copies of models."""

from __future__ import annotations

import json
import os
import socket
import stat
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from localvertex.emulator import _free
from localvertex.modelserver.launch import start_model_server
from tests.integration.localvertex_fixtures import LOCATION, PROJECT
from tests.models import TESTDATA

pytestmark = pytest.mark.integration
HALF_PLUS_TWO = TESTDATA / "saved_model_half_plus_two_cpu"


def post(emulator, path: str, body: bytes, headers: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"{emulator.state['api_endpoint']}/v1/{path}", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


ENDPOINTS = f"projects/{PROJECT}/locations/{LOCATION}/endpoints"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Type": "text/plain"}, 400),  # a form or a plain fetch from any web page, with no preflight
        ({"Content-Type": "application/json", "Origin": "http://evil.example"}, 403),
        ({"Content-Type": "application/json", "Host": "evil.example"}, 403),  # DNS rebinding
    ],
)
def test_a_state_change_from_a_web_page_is_refused_and_creates_nothing(emulator, headers, status):
    code, body = post(emulator, ENDPOINTS, b'{"displayName": "from-a-web-page"}', headers)
    assert code == status and body["error"]["code"] == status
    listing = urllib.request.urlopen(f"{emulator.state['api_endpoint']}/v1/{ENDPOINTS}", timeout=30).read()
    assert b"from-a-web-page" not in listing


def test_a_local_json_call_still_works(emulator):
    code, body = post(emulator, ENDPOINTS, b'{"displayName": "local-ok"}', {"Content-Type": "application/json"})
    assert code == 200 and body["done"] is True


def test_the_state_folder_and_its_files_are_the_users_alone(emulator):
    assert stat.S_IMODE(emulator.data_dir.stat().st_mode) & 0o077 == 0
    for path in (emulator.data_dir / "localvertex.sqlite", emulator.data_dir / "emulator.json"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_a_port_with_connections_in_time_wait_is_kept(tmp_path):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp's and the GCS emulator's servers do
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server side closes first: its end of the connection sits in TIME_WAIT
    client.close()
    listener.close()
    assert _free(port) == port


def test_a_model_server_refuses_to_listen_beyond_loopback(tmp_path):
    server = start_model_server(str(HALF_PLUS_TWO), ["--host=0.0.0.0"], log_path=tmp_path / "server.log")
    assert server.process.wait(120) == 2
    assert "--host='0.0.0.0' is not a loopback address" in server.reason()


def test_a_model_server_gets_only_the_container_contract_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EMULATOR_SECRET_TOKEN", "s3cr3t")
    server = start_model_server(str(HALF_PLUS_TWO), [], log_path=tmp_path / "server.log", env={"MODEL_SETTING": "1"})
    try:
        server.wait_healthy(180)
        environ = Path(f"/proc/{server.process.pid}/environ").read_bytes().split(b"\0")
        names = {line.split(b"=", 1)[0].decode() for line in environ if line}
        assert "EMULATOR_SECRET_TOKEN" not in names and {"AIP_HTTP_PORT", "MODEL_SETTING"} <= names
    finally:
        server.stop()


def test_a_model_server_leaves_no_copy_of_a_gs_model_behind(emulator, tmp_path):
    from google.cloud import storage

    bucket = storage.Client().bucket("localvertex-staging")
    for path in HALF_PLUS_TWO.rglob("*"):
        if path.is_file():
            bucket.blob(f"safety/{path.relative_to(HALF_PLUS_TWO).as_posix()}").upload_from_filename(str(path))
    env = {"TMPDIR": str(tmp_path), "STORAGE_EMULATOR_HOST": os.environ["STORAGE_EMULATOR_HOST"]}
    server = start_model_server("gs://localvertex-staging/safety", [], log_path=tmp_path / "server.log", env=env)
    server.wait_healthy(180)
    assert list(tmp_path.glob("modelserver-*"))  # the copy it serves from
    server.stop()
    assert not list(tmp_path.glob("modelserver-*"))


@pytest.fixture(scope="module")
def half_plus_two(emulator):
    from google.cloud import aiplatform

    from tests.integration.localvertex_fixtures import CPU_IMAGE

    model = aiplatform.Model.upload(
        display_name="safety-half-plus-two",
        artifact_uri=str(HALF_PLUS_TWO / "00000123"),
        serving_container_image_uri=CPU_IMAGE,
    )
    endpoint = aiplatform.Endpoint.create(display_name="safety")
    model.deploy(endpoint=endpoint, machine_type="n1-standard-4", traffic_percentage=100, sync=True)
    yield endpoint
    endpoint.undeploy_all()


def test_a_prediction_is_forwarded_as_sent_so_a_compact_body_under_the_limit_passes(emulator, half_plus_two):
    body = b'{"instances":[' + b",".join([b"1"] * 700_000) + b"]}"  # 1.4 MB; re-encoded with spaces it is 2.1 MB
    assert 1_300_000 < len(body) < 1_500_000
    code, answer = post(emulator, f"{half_plus_two.resource_name}:predict", body, {"Content-Type": "application/json"})
    assert code == 200 and len(answer["predictions"]) == 700_000 and answer["predictions"][0] == 2.5


def test_json_nested_too_deeply_is_a_400_not_a_500(emulator, half_plus_two):
    body = b'{"instances":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    code, answer = post(emulator, f"{half_plus_two.resource_name}:predict", body, {"Content-Type": "application/json"})
    assert code == 400 and answer["error"]["status"] == "INVALID_ARGUMENT"


def test_a_body_over_the_limit_gets_vertex_s_json_error(emulator, half_plus_two):
    body = b'{"instances":[' + b",".join([b"1"] * 10_000_000) + b"]}"  # 20 MB
    code, answer = post(emulator, f"{half_plus_two.resource_name}:predict", body, {"Content-Type": "application/json"})
    assert code == 400 and "Request payload size exceeds the limit" in answer["error"]["message"]
