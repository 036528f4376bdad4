"""`vsp emulator up | down | status`: start, stop and inspect localvertex, and say how to point code at it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from localvertex.deployer import routes
from localvertex.emulator import STAGING_BUCKET, Config, choose_ports, environment, read_state
from localvertex.store import Store


def up(config: Config, detach: bool, out=None) -> int:
    """Starts the emulator: in the foreground, or detached and returning once it answers."""
    out = out or sys.stdout
    if running := read_state(config.data_dir):
        print(f"localvertex already runs on {config.data_dir} (pid {running['pid']})", file=out)
        print_pointers(running, out)
        return 0
    config.data_dir.mkdir(parents=True, exist_ok=True)
    for name, port in choose_ports(config.data_dir, config.ports()).items():
        setattr(config, name, port)
    if not detach:
        import asyncio

        from localvertex.emulator import serve

        state = {
            "port": config.port,
            "storage_port": config.storage_port,
            "api_endpoint": f"http://127.0.0.1:{config.port}",
            "grpc_endpoint": f"127.0.0.1:{config.grpc_port}",
            "grpc_tls_endpoint": f"127.0.0.1:{config.grpc_tls_port}",
            "ca_bundle": str(config.data_dir.resolve() / "tls" / "ca-bundle.pem"),
        }
        print_pointers(state, out)
        out.flush()
        return asyncio.run(serve(config))
    log = config.data_dir / "logs" / "emulator.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "localvertex"]
    for name, port in config.ports().items():
        args += [f"--{name.replace('_', '-')}", str(port)]
    args += [
        "--data-dir",
        str(config.data_dir),
        "--deploy-timeout",
        str(config.deploy_timeout),
    ]
    if config.tpu_v5e_cores is not None:
        args += ["--tpu-v5e-cores", str(config.tpu_v5e_cores)]
    for catalog in config.catalogs:
        args += ["--catalog", catalog]
    args += ["--max-running-pipeline-jobs", str(config.max_running_pipeline_jobs)]
    args += ["--max-server-restarts", str(config.max_server_restarts)]
    with log.open("ab") as sink:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    state = wait_up(config.data_dir, process, timeout=60)
    print(f"localvertex is up (pid {state['pid']}, data in {config.data_dir}, log {log})", file=out)
    print_pointers(state, out)
    return 0


def wait_up(data_dir: Path, process: subprocess.Popen, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"localvertex exited with code {process.returncode}: see {data_dir / 'logs' / 'emulator.log'}"
            )
        state = read_state(data_dir)
        if state and _answers(state["api_endpoint"]):
            return state
        time.sleep(0.1)
    raise SystemExit(f"localvertex did not answer within {timeout:.0f}s: see {data_dir / 'logs' / 'emulator.log'}")


def down(data_dir: Path, out=None) -> int:
    out = out or sys.stdout
    state = read_state(data_dir)
    if not state:
        print(f"no localvertex runs on {data_dir}", file=out)
        return 0
    os.kill(state["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 60
    while read_state(data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    if read_state(data_dir):
        print(f"localvertex (pid {state['pid']}) did not stop within 60s", file=out)
        return 1
    print(f"localvertex stopped (pid {state['pid']}); its state stays in {data_dir}", file=out)
    return 0


def status(data_dir: Path) -> dict:
    """Endpoints, deployed models, traffic, ports and health, from the state the emulator keeps."""
    state = read_state(data_dir)
    report = {"running": bool(state), "data_dir": str(data_dir), "emulator": state, "endpoints": []}
    if not (data_dir / "localvertex.sqlite").exists():
        return report
    store = Store(data_dir / "localvertex.sqlite")
    servers = store.servers()
    for endpoint in store.list("endpoint", "projects/"):
        deployed = []
        for d in endpoint.deployed_models:
            model = store.get("model", d.model)
            port = servers.get(d.id, (None, None, None))[1]
            health_route = routes(endpoint.name.rsplit("/", 1)[-1], d.id, model.container_spec)[1] if model else ""
            healthy = bool(state and port and _answers(f"http://127.0.0.1:{port}{health_route}"))
            deployed.append(
                {
                    "id": d.id,
                    "model": d.model,
                    "display_name": model.display_name if model else "",
                    "machine_type": d.dedicated_resources.machine_spec.machine_type,
                    "traffic": endpoint.traffic_split.get(d.id, 0),
                    "port": port,
                    "healthy": healthy,
                    "status": d.status.message,
                }
            )
        report["endpoints"].append(
            {
                "name": endpoint.name,
                "display_name": endpoint.display_name,
                "private": bool(endpoint.network),
                "deployed_models": deployed,
            }
        )
    return report


def print_pointers(state: dict, out=None) -> None:
    """The lines that point a user's own code at this emulator: the SDK over REST, and gapic clients over gRPC."""
    out = out or sys.stdout
    for name, value in environment(state).items():
        print(f"export {name}={value}", file=out)
    print(
        "# then, in Python:\n"
        "#   from google.auth.credentials import AnonymousCredentials\n"
        "#   from google.cloud import aiplatform\n"
        f'#   aiplatform.init(project="local-project", location="us-central1", api_transport="rest",\n'
        f'#                   api_endpoint="{state["api_endpoint"]}", credentials=AnonymousCredentials(),\n'
        f'#                   staging_bucket="gs://{STAGING_BUCKET}")',
        file=out,
    )
    if state.get("grpc_endpoint"):
        print(
            "# or a gapic client over gRPC (Model, Endpoint, Prediction, Pipeline and Schedule services):\n"
            "#   import grpc\n"
            "#   from google.cloud.aiplatform import gapic as aip\n"
            "#   from google.cloud.aiplatform_v1.services.model_service.transports import ModelServiceGrpcTransport\n"
            "#   model_service_client = aip.ModelServiceClient(\n"
            f'#       transport=ModelServiceGrpcTransport(channel=grpc.insecure_channel("{state["grpc_endpoint"]}")))',
            file=out,
        )
    if state.get("grpc_tls_endpoint"):
        print(
            "# or gRPC with TLS, as Google's samples and the SDK's default transport open it (trusting the\n"
            "# GRPC_DEFAULT_SSL_ROOTS_FILE_PATH above):\n"
            f'#   model_service_client = aip.ModelServiceClient(client_options={{"api_endpoint": "{state["grpc_tls_endpoint"]}"}},\n'
            "#                                                 credentials=AnonymousCredentials())\n"
            f'#   aiplatform.init(project="local-project", location="us-central1", api_endpoint="{state["grpc_tls_endpoint"]}",\n'
            f'#                   credentials=AnonymousCredentials(), staging_bucket="gs://{STAGING_BUCKET}")',
            file=out,
        )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status < 500
    except urllib.error.HTTPError as e:
        return e.code < 500
    except OSError:
        return False
