"""Real model-server processes on 127.0.0.1, stopped in teardown."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from localvertex.modelserver.launch import start_model_server


class Client:
    def __init__(self, server):
        self.server = server

    def post(self, path: str, body) -> tuple[int, dict]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(
            self.server.url + path, data=data, headers={"Content-Type": "application/json"}
        )
        return self._send(request)

    def get(self, path: str) -> tuple[int, dict]:
        return self._send(urllib.request.Request(self.server.url + path))

    def text(self, path: str) -> str:
        with urllib.request.urlopen(self.server.url + path, timeout=30) as response:
            return response.read().decode()

    @staticmethod
    def _send(request) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    """Starts a model server and waits for health; every server started is stopped at the end of the module."""
    started = []

    def start(model: str, *args: str, env: dict | None = None, wait: bool = True):
        log = tmp_path_factory.mktemp("modelserver") / "server.log"
        server = start_model_server(str(model), list(args), log_path=log, env=env)
        started.append(server)
        if wait:
            server.wait_healthy(180)
        return server

    yield start
    for server in started:
        server.stop()
