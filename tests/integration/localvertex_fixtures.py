"""A real localvertex process on 127.0.0.1 and the unmodified aiplatform SDK pointed at it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from google.auth.credentials import AnonymousCredentials

PROJECT, LOCATION = "test-project", "us-central1"
TPU_IMAGE = "us-docker.pkg.dev/vertex-ai-restricted/prediction/tf_opt-tpu.nightly:latest"
CPU_IMAGE = "us-docker.pkg.dev/vertex-ai-restricted/prediction/tf_opt-cpu.nightly:latest"


@dataclass
class Emulator:
    data_dir: Path
    tpu_cores: int
    process: subprocess.Popen | None = None
    state: dict | None = None
    extra_args: tuple[str, ...] = ()

    def start(self) -> Emulator:
        log = self.data_dir / "emulator-test.log"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as sink:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "localvertex",
                    "--data-dir",
                    str(self.data_dir),
                    "--tpu-v5e-cores",
                    str(self.tpu_cores),
                    "--deploy-timeout",
                    "180",
                    *self.extra_args,
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        state_file = self.data_dir / "emulator.json"
        while time.monotonic() < deadline:
            if state_file.exists() and json.loads(state_file.read_text())["pid"] == self.process.pid:
                self.state = json.loads(state_file.read_text())
                return self
            assert self.process.poll() is None, log.read_text()
            time.sleep(0.1)
        raise TimeoutError(log.read_text())

    def kill(self) -> None:
        """As a crash would: no clean shutdown."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        (self.data_dir / "emulator.json").unlink(missing_ok=True)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)

    def init_sdk(self) -> None:
        from google.cloud import aiplatform

        os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{self.state['storage_port']}"
        aiplatform.init(
            project=PROJECT,
            location=LOCATION,
            api_transport="rest",
            api_endpoint=self.state["api_endpoint"],
            credentials=AnonymousCredentials(),
            staging_bucket="gs://localvertex-staging",
        )


def stage(folder: Path, prefix: str, bucket: str = "localvertex-staging") -> str:
    """Copies a local folder to the GCS emulator, as a user stages a model; returns its gs:// URI."""
    from google.cloud import storage

    target = storage.Client().bucket(bucket)
    for path in folder.rglob("*"):
        if path.is_file():
            target.blob(f"{prefix}/{path.relative_to(folder).as_posix()}").upload_from_filename(str(path))
    return f"gs://{bucket}/{prefix}"


def rest_client(client_class, emulator: Emulator):
    """A gapic client over REST, pointed at localvertex as the SDK points it."""
    return client_class(
        client_options={"api_endpoint": emulator.state["api_endpoint"]},
        transport="rest",
        credentials=AnonymousCredentials(),
    )
