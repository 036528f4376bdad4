"""Starts a model server process the way Vertex AI starts a serving container, and waits until it is healthy."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

# What a process needs to run at all; everything else it gets is Vertex AI's serving-container contract (AIP_*) and
# what the model's containerSpec names. The emulator's own environment (secrets included) is not passed on.
PROCESS_BASICS = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "VIRTUAL_ENV", "STORAGE_EMULATOR_HOST")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ModelServerProcess:
    """A running `python -m localvertex.modelserver`; its stdout and stderr are appended to `log_path`."""

    process: subprocess.Popen
    port: int
    predict_route: str
    health_route: str
    log_path: Path
    env: dict = field(default_factory=dict)
    log_start: int = 0  # where this start's output begins in a log kept across starts

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + self.health_route, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_healthy(self, timeout: float, poll: float = 0.02) -> None:
        """Returns once health answers 200; raises with the server's own reason if it exits or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"model server exited with code {self.process.returncode}: {self.reason()}")
            if self.healthy():
                return
            time.sleep(poll)
        self.stop()
        raise TimeoutError(f"model server not healthy after {timeout:.0f}s: {self.reason()}")

    def reason(self) -> str:
        """The server's last error line, which is what a failed deploy should report."""
        with self.log_path.open("rb") as log:
            log.seek(self.log_start)
            text = log.read().decode(errors="replace")
        lines = [line for line in text.splitlines() if line.strip()]
        failures = [line for line in lines if line.startswith("modelserver:")]
        return (failures or lines or ["no output"])[-1]

    def stop(self, timeout: float = 10) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def end_with_parent(signum: int = signal.SIGKILL):
    """A `preexec_fn`: the child gets `signum` when the process that started it dies (Linux's PR_SET_PDEATHSIG).

    SIGKILL by default, so no orphan outlives its emulator however the emulator died; a child that must clean up
    after itself first (a pipeline runner stopping its task) asks for SIGTERM.
    """
    import ctypes

    def arrange() -> None:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signum)

    return arrange


def start_model_server(
    storage_uri: str,
    args: list[str] = (),
    *,
    log_path: Path,
    port: int | None = None,
    predict_route: str = "/predict",
    health_route: str = "/health",
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
    die_with_parent: bool = False,
) -> ModelServerProcess:
    """Starts a serving container's process with Vertex AI's environment; does not wait for health.

    `command` replaces the TF model server (a custom container tried locally); `die_with_parent` ends the process
    when the caller dies, so a killed emulator leaves no orphan servers behind (Linux only).
    """
    port = port or free_port()
    environment = {
        **{k: os.environ[k] for k in PROCESS_BASICS if k in os.environ},
        "AIP_HTTP_PORT": str(port),
        "AIP_PREDICT_ROUTE": predict_route,
        "AIP_HEALTH_ROUTE": health_route,
        "AIP_STORAGE_URI": storage_uri,
        "AIP_MODE": "PREDICTION",
        "AIP_FRAMEWORK": "CUSTOM_CONTAINER",
        **(env or {}),
    }
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:  # appended: a restarted server's log follows the one that died
        start = log.tell()
        process = subprocess.Popen(
            [*(command or [sys.executable, "-m", "localvertex.modelserver"]), *args],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=end_with_parent() if die_with_parent and sys.platform == "linux" else None,
        )
    return ModelServerProcess(process, port, predict_route, health_route, log_path, environment, start)
