"""The running emulator: Vertex AI's control plane, a GCS emulator, and one model server per DeployedModel.

Everything binds to 127.0.0.1. State lives under the data directory (SQLite, the GCS emulator's objects, logs),
so a restarted emulator serves the same endpoints with the same models and traffic split.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from localvertex import deployer as deployer_module
from localvertex import grpc_transport, rpc, tls
from localvertex.api import Api
from localvertex.deployer import Deployer, now, status_message
from localvertex.logs import LogEntries
from localvertex.modelserver.launch import free_port
from localvertex.pipeline_jobs import PipelineJobs
from localvertex.rest import Rest
from localvertex.schedules import Schedules
from localvertex.store import Store
from vertex_serving.catalog import load_catalog

EXTEND_LOCALLY = "restart localvertex with the catalog: `vsp emulator down`, then `vsp emulator up --catalog FILE`"

log = logging.getLogger("localvertex")
DEFAULT_DATA_DIR = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "localvertex"
STATE_FILE = "emulator.json"
RESTART_WINDOW = 600.0  # seconds over which a model server's restarts are counted
STAGING_BUCKET = "localvertex-staging"  # created on start, so Model.upload can stage local artifacts
CONFIG_FILE = "localvertex.toml"
PORTS = ("port", "storage_port", "grpc_port", "grpc_tls_port", "dedicated_port")


@dataclass
class Config:
    data_dir: Path = DEFAULT_DATA_DIR
    port: int = 0
    storage_port: int = 0
    tpu_v5e_cores: int | None = None
    deploy_timeout: float = 600.0
    catalogs: list[str] = field(default_factory=list)
    max_running_pipeline_jobs: int = 1  # a pipeline run's steps load TensorFlow: one at a time on 2 cores
    max_server_restarts: int = 5  # within RESTART_WINDOW, before a DeployedModel is marked failed
    grpc_port: int = 0
    grpc_tls_port: int = 0  # gRPC with TLS: what gapic clients and the SDK's default transport open
    dedicated_port: int = 0  # the https listener that dedicated endpoints' DNS names point to

    def ports(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in PORTS}

    def file_settings(self) -> dict:
        """`localvertex.toml` in the data directory: `tpu_v5e_cores`, and `[images]` mapping URIs to commands."""
        path = self.data_dir / CONFIG_FILE
        return tomllib.loads(path.read_text()) if path.exists() else {}


def read_state(data_dir: Path) -> dict | None:
    """The running emulator's pid and ports, or None when none runs on this data directory."""
    path = data_dir / STATE_FILE
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    try:
        os.kill(state["pid"], 0)
    except (ProcessLookupError, PermissionError):
        return None
    return state


def environment(state: dict) -> dict[str, str]:
    """What points a user's own code at this emulator; the CA bundle lets https reach dedicated endpoints and gRPC
    reach localvertex with TLS."""
    found = {
        "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{state['storage_port']}",
        "LOCALVERTEX_API_ENDPOINT": state["api_endpoint"],
    }
    if state.get("grpc_endpoint"):
        found["LOCALVERTEX_GRPC_ENDPOINT"] = state["grpc_endpoint"]
    if state.get("ca_bundle"):  # certifi's public authorities and localvertex's own
        found["REQUESTS_CA_BUNDLE"] = found["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = state["ca_bundle"]
    return found


async def serve(config: Config, ready: asyncio.Event | None = None) -> int:
    from gcp_storage_emulator.server import create_server

    os.umask(0o077)  # state, logs and staged models are the user's alone; model servers and runs inherit it
    data_dir = config.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    if read_state(data_dir):
        raise SystemExit(
            f"localvertex: an emulator already runs on {data_dir}: `vsp emulator down --data-dir {data_dir}` first"
        )
    settings = config.file_settings()
    catalogs = [str(Path(c).expanduser().resolve()) for c in config.catalogs]
    ports = choose_ports(data_dir, config.ports())
    port, storage_port, grpc_port, dedicated_port = (
        ports[k] for k in ("port", "storage_port", "grpc_port", "dedicated_port")
    )
    certificates = tls.certificates(data_dir / "tls")
    storage = create_server(
        "127.0.0.1", storage_port, in_memory=False, data_dir=str(data_dir / "gcs"), default_bucket=STAGING_BUCKET
    )
    storage.start()
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{storage_port}"
    store = Store(data_dir / "localvertex.sqlite")
    end_interrupted_operations(store)
    shutil.rmtree(data_dir / "tmp", ignore_errors=True)  # model servers' scratch files from before a crash
    cores = config.tpu_v5e_cores if config.tpu_v5e_cores is not None else int(settings.get("tpu_v5e_cores", 0))
    deployer = Deployer(
        deployer_module.Settings(
            data_dir=data_dir,
            catalog=load_catalog(*catalogs, extend_hint=EXTEND_LOCALLY),
            storage_emulator_host=os.environ["STORAGE_EMULATOR_HOST"],
            tpu_v5e_cores=cores,
            images={k: list(v) for k, v in settings.get("images", {}).items()},
            deploy_timeout=config.deploy_timeout,
        )
    )
    pipeline_jobs = PipelineJobs(store, data_dir, os.environ["STORAGE_EMULATOR_HOST"], config.max_running_pipeline_jobs)
    pipeline_jobs.recover()
    schedules = Schedules(store, pipeline_jobs)
    schedules.recover()
    api = Api(store, deployer, dedicated_dns=f"127.0.0.1:{dedicated_port}")
    await api.open()
    methods = rpc.methods(api, pipeline_jobs, schedules)
    logs = LogEntries(data_dir)
    app = Rest(methods).app(extra=[("POST", "/v2/entries:list", logs.entries_list)])  # Cloud Logging's, for logs
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    predictions = [m for m in methods if m.service == "PredictionService"]
    dedicated = web.AppRunner(Rest(predictions, dedicated=True).app(), access_log=None, handle_signals=False)
    await dedicated.setup()
    await web.TCPSite(dedicated, "127.0.0.1", dedicated_port, ssl_context=certificates.server_context()).start()
    grpc_server = await grpc_transport.serve(methods, grpc_port, ports["grpc_tls_port"], certificates)
    state = {
        "pid": os.getpid(),
        **ports,
        "api_endpoint": f"http://127.0.0.1:{port}",
        "grpc_endpoint": f"127.0.0.1:{grpc_port}",
        "grpc_tls_endpoint": f"127.0.0.1:{ports['grpc_tls_port']}",
        "ca_bundle": str(certificates.bundle),
        "tpu_v5e_cores": cores,
        "catalogs": catalogs,
    }
    (data_dir / STATE_FILE).write_text(json.dumps(state))
    log.info(
        "localvertex on http://127.0.0.1:%d (gRPC 127.0.0.1:%d, with TLS 127.0.0.1:%d, dedicated endpoints "
        "https://127.0.0.1:%d), storage on http://127.0.0.1:%d, data in %s, TPU v5e cores %d",
        port,
        grpc_port,
        ports["grpc_tls_port"],
        dedicated_port,
        storage_port,
        data_dir,
        cores,
    )
    restoring = asyncio.ensure_future(restore(store, deployer))
    queue = asyncio.ensure_future(pipeline_jobs.serve())
    supervising = asyncio.ensure_future(supervise(store, deployer, config.max_server_restarts))
    clock = asyncio.ensure_future(schedules.serve())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if ready:
        ready.set()
    await stop.wait()
    log.info("stopping")
    restoring.cancel()
    queue.cancel()
    supervising.cancel()
    clock.cancel()
    await grpc_server.stop(1.0)
    await runner.cleanup()
    await dedicated.cleanup()
    await api.close()
    pipeline_jobs.stop_all()
    deployer.stop_all()
    storage.stop()
    (data_dir / STATE_FILE).unlink(missing_ok=True)
    return 0


def end_interrupted_operations(store: Store) -> None:
    """An operation still pending at start was cut short by a crash: it ends with an error, so no caller waits on it
    forever. (A deploy adds its DeployedModel only when it completes, so nothing of it is left to undo.)"""
    with store.transaction():
        for operation in store.list("operation", "projects/"):
            if "name" in operation and not operation.get("done", False):  # JSON leaves out done: false
                operation.update(
                    done=True,
                    error={"code": 14, "message": "localvertex stopped while this operation ran: try it again"},
                )
                operation.pop("response", None)
                store.put("operation", operation["name"], operation)


async def restore(store: Store, deployer: Deployer) -> None:
    """Starts the servers of every DeployedModel again, all at once, on their old ports when free."""
    servers = store.servers()
    jobs = [
        _restore(store, deployer, endpoint.name, deployed, servers.get(deployed.id, (None, None, None))[1])
        for endpoint in store.list("endpoint", "projects/")
        for deployed in endpoint.deployed_models
    ]
    await asyncio.gather(*jobs)


async def supervise(store: Store, deployer: Deployer, max_restarts: int) -> None:
    """A model server that dies on its own is restarted, with a backoff, on its port; one that keeps dying
    (`max_restarts` times within RESTART_WINDOW) marks its DeployedModel failed. Each step is logged."""
    restarts: dict[str, list[float]] = {}
    recovering: set[str] = set()
    while True:
        await asyncio.sleep(0.5)
        for deployed_id, server in list(deployer.servers.items()):
            if server.process.poll() is None or deployed_id in recovering:
                continue
            deployer.servers.pop(deployed_id, None)
            found = _deployed(store, deployed_id)
            if found is None:  # undeployed meanwhile
                continue
            recent = [t for t in restarts.get(deployed_id, []) if time.monotonic() - t < RESTART_WINDOW]
            reason = f"its model server exited with code {server.process.returncode}: {server.reason()}"
            if len(recent) >= max_restarts:
                log.error("DeployedModel %s failed: %s; it was restarted %d times", deployed_id, reason, len(recent))
                _set_status(store, found[0].name, deployed_id, f"FAILED: {reason} ({len(recent)} restarts)", 0)
                continue
            restarts[deployed_id] = [*recent, time.monotonic()]
            delay = min(2.0 ** len(recent), 30.0)
            log.warning(
                "DeployedModel %s: %s; restarting it in %.0fs (restart %d of %d)",
                deployed_id,
                reason,
                delay,
                len(recent) + 1,
                max_restarts,
            )
            recovering.add(deployed_id)
            task = asyncio.ensure_future(_restart(store, deployer, *found, server.port, delay, len(recent) + 1))
            task.add_done_callback(lambda _, d=deployed_id: recovering.discard(d))


async def _restart(store: Store, deployer: Deployer, endpoint, deployed, port: int, delay: float, count: int):
    await asyncio.sleep(delay)
    if _deployed(store, deployed.id) is None:
        return
    await _restore(store, deployer, endpoint.name, deployed, port, note=f"restarted {count} times")


def _deployed(store: Store, deployed_id: str):
    """The endpoint and DeployedModel of an id, or None once it is undeployed."""
    for endpoint in store.list("endpoint", "projects/"):
        for deployed in endpoint.deployed_models:
            if deployed.id == deployed_id:
                return endpoint, deployed
    return None


def _set_status(store: Store, endpoint_name: str, deployed_id: str, message: str, replicas: int) -> None:
    with store.transaction():
        endpoint = store.get("endpoint", endpoint_name)
        for d in endpoint.deployed_models:
            if d.id == deployed_id:
                d.status = type(d.status)(message=message, last_update_time=now(), available_replica_count=replicas)
        store.put("endpoint", endpoint.name, endpoint)


async def _restore(
    store: Store, deployer: Deployer, endpoint_name: str, deployed, old_port: int | None, note: str = ""
) -> None:
    spec = deployed.dedicated_resources.machine_spec
    try:
        server = await deployer.start(
            endpoint_name, deployed.id, store.get("model", deployed.model), spec, port=_free(old_port)
        )
    except Exception as e:  # one broken model must not keep the others down; supervise tries it again
        log.warning("DeployedModel %s did not come back: %s", deployed.id, e)
        return
    with store.transaction():
        current = store.get("endpoint", endpoint_name)
        for d in current.deployed_models:
            if d.id == deployed.id:
                message = status_message(spec, server, deployer.settings.catalog)
                d.status = type(d.status)(
                    message=f"{message} ({note})" if note else message,
                    last_update_time=now(),
                    available_replica_count=1,
                )
                if current.network:
                    d.private_endpoints.predict_http_uri = server.url + server.predict_route
                    d.private_endpoints.health_http_uri = server.url + server.health_route
        store.put("endpoint", current.name, current)
        store.set_server(deployed.id, endpoint_name, server.port, str(server.log_path))
    log.info("DeployedModel %s serves again on %s", deployed.id, server.url)


def choose_ports(data_dir: Path, asked: dict[str, int]) -> dict[str, int]:
    """Each of PORTS as asked, else the last run's when still free (so exported settings stay valid), else a free
    one: REST, storage, gRPC, gRPC with TLS, and the dedicated endpoints' https listener."""
    remembered = data_dir / "ports.json"
    last = json.loads(remembered.read_text()) if remembered.exists() else {}
    chosen: dict[str, int] = {}
    for key in PORTS:
        found = asked.get(key) or _free(last.get(key)) or free_port()
        while not asked.get(key) and found in chosen.values():
            found = free_port()
        chosen[key] = found
    remembered.write_text(json.dumps(chosen))
    return chosen


def _free(port: int | None) -> int | None:
    import socket

    if not port:
        return None
    with socket.socket() as s:
        # As the servers bind it: a port whose old connections sit in TIME_WAIT is free to them, so to this probe.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return None
    return port


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m localvertex", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--storage-port", type=int, default=0)
    parser.add_argument("--grpc-port", type=int, default=0)
    parser.add_argument("--grpc-tls-port", type=int, default=0)
    parser.add_argument("--dedicated-port", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--tpu-v5e-cores", type=int)
    parser.add_argument("--deploy-timeout", type=float, default=600.0)
    parser.add_argument("--catalog", action="append", default=[])
    parser.add_argument("--max-running-pipeline-jobs", type=int, default=1)
    parser.add_argument("--max-server-restarts", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
    config = Config(
        args.data_dir,
        args.port,
        args.storage_port,
        args.tpu_v5e_cores,
        args.deploy_timeout,
        args.catalog,
        args.max_running_pipeline_jobs,
        args.max_server_restarts,
        args.grpc_port,
        args.grpc_tls_port,
        args.dedicated_port,
    )
    return asyncio.run(serve(config))
