"""`vsp run --local`: the deploy pipeline through kfp.local against localvertex, ending with a summary.

The pipeline function is the one `compile.py` compiles for Vertex AI Pipelines; only `api_endpoint` and
`STORAGE_EMULATOR_HOST` point elsewhere.
"""

import dataclasses
import hashlib
import logging
import os
import re
import time
from pathlib import Path

from tabulate import tabulate

from vertex_serving.catalog import describe, load_catalog, read_source
from vertex_serving.config import DeployConfig, load_config
from vertex_serving.errors import UserError
from vertex_serving.rules import validate

LOCAL_PROJECT = "local-project"
_TASK = re.compile(r"(Executing task|Task) '([^']+)'(?: finished with status (\w+))?")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class StepClock(logging.Filter):
    """Times each pipeline step from kfp.local's own log lines (a filter: kfp.local replaces the root handlers)."""

    def __init__(self) -> None:
        super().__init__()
        self.started: dict[str, float] = {}
        self.steps: list[tuple[str, str, float]] = []

    def filter(self, record: logging.LogRecord) -> bool:
        found = _TASK.search(_ANSI.sub("", str(record.msg)))
        if not found:
            return True
        name = found[2]
        if found[1] == "Executing task":
            self.started[name] = time.monotonic()
        elif found[3] and name in self.started:
            self.steps.append((name, found[3], time.monotonic() - self.started.pop(name)))
        return True


def pipeline_arguments(config: DeployConfig, api_endpoint: str, staging_bucket: str) -> dict:
    """DeployConfig -> the pipeline's parameters, pointed at `api_endpoint`; a local catalog file travels as text."""
    values = config.to_parameters() | {
        "api_endpoint": api_endpoint,
        "project": config.project or LOCAL_PROJECT,
        "staging_bucket": config.staging_bucket or staging_bucket,
    }
    if config.catalog and not config.catalog.startswith("gs://"):
        values["catalog"] = read_source(config.catalog)  # a path on this machine means nothing to a pipeline step
    return values


def catalog_file(catalog: str, data_dir: Path) -> str | None:
    """A file localvertex can load for the run's catalog: the user's own, or its text kept under `data_dir`."""
    if not catalog:
        return None
    if describe(catalog) != "TOML text" and not catalog.startswith("gs://"):
        return catalog
    text = read_source(catalog)
    path = data_dir / "catalogs" / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def ensure_emulator(data_dir: Path, tpu_v5e_cores: int | None, catalog: str | None = None) -> dict:
    from localvertex.control import up
    from localvertex.emulator import Config, read_state

    state = read_state(data_dir)
    wanted_catalogs = [str(Path(catalog).expanduser().resolve())] if catalog else []
    if state and not set(wanted_catalogs) <= set(state.get("catalogs", [])):
        raise UserError(
            "catalog",
            catalog,
            f"is not loaded by the localvertex running on {data_dir}, so it could not deploy the catalog's images",
            "stop it with `vsp emulator down`; `vsp run --local --catalog FILE` then starts it with the catalog",
        )
    if state:
        wanted = tpu_v5e_cores or 0
        if wanted > state.get("tpu_v5e_cores", 0):
            print(
                f"run: localvertex on {data_dir} has {state.get('tpu_v5e_cores', 0)} TPU v5e cores of quota, "
                f"{wanted} asked: restart it with `vsp emulator down` first to change it"
            )
        return state
    print(f"run: starting localvertex on {data_dir}")
    up(Config(data_dir=data_dir, tpu_v5e_cores=tpu_v5e_cores, catalogs=wanted_catalogs), detach=True)
    return read_state(data_dir)


def run_local(
    config_path: Path,
    data_dir: Path | None = None,
    tpu_v5e_cores: int | None = None,
    pipeline_root: Path | None = None,
    catalog: str | None = None,
) -> int:
    from localvertex.emulator import DEFAULT_DATA_DIR, STAGING_BUCKET, environment

    config = load_config(config_path)
    if catalog:
        config = dataclasses.replace(config, catalog=catalog)
    validate(config, load_catalog(config.catalog))  # the whole configuration, before anything starts
    data_dir = data_dir or DEFAULT_DATA_DIR
    state = ensure_emulator(data_dir, tpu_v5e_cores, catalog_file(config.catalog, data_dir))
    os.environ.update({"STORAGE_EMULATOR_HOST": environment(state)["STORAGE_EMULATOR_HOST"]})
    arguments = pipeline_arguments(config, state["api_endpoint"], f"gs://{STAGING_BUCKET}")
    started = time.monotonic()
    steps, result = run_pipeline(arguments, pipeline_root or data_dir / "pipeline-runs")
    rows = [[n, s, f"{d:.1f}s"] for n, s, d in steps] + [["total", "", f"{time.monotonic() - started:.1f}s"]]
    print()
    print(tabulate(rows, headers=["step", "status", "duration"]))
    print()
    print(summary(config, arguments, result))
    return 0 if steps and all(status == "SUCCESS" for _, status, _ in steps) else 1


def run_pipeline(arguments: dict, root: Path) -> tuple[list, object]:
    """Runs the deploy pipeline through kfp.local; returns each step's (name, status, seconds) and the outputs."""
    import kfp.local

    from pipelines.deploy import build

    deploy_pipeline = build()
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=False)
    clock = StepClock()
    logging.getLogger().addFilter(clock)
    try:
        result = deploy_pipeline(**arguments)
    finally:
        logging.getLogger().removeFilter(clock)
    return clock.steps, result


def summary(config: DeployConfig, arguments: dict, result) -> str:
    """Model version, endpoint, traffic split and smoke-test figures, read back through the SDK."""
    from google.cloud import aiplatform

    from components.endpoint import find_endpoint
    from vertex_serving.sdk import init_vertex

    init_vertex(arguments["project"], arguments["location"], arguments["api_endpoint"])
    rows = []
    models = aiplatform.Model.list(filter=f'display_name="{config.model_display_name}"')
    if models:
        versions = aiplatform.models.ModelRegistry(models[0].resource_name).list_versions()
        rows.append(["model", f"{models[0].resource_name} ({len(versions)} versions)"])
    endpoint = find_endpoint(config.endpoint_display_name, config.endpoint_network)  # read only: never creates
    if endpoint:
        by_id = {d.id: d.model.rsplit("/", 1)[-1] for d in endpoint.list_models()}
        split = ", ".join(f"{by_id.get(k, k)} (DeployedModel {k}): {v}%" for k, v in endpoint.traffic_split.items())
        rows += [["endpoint", endpoint.resource_name], ["traffic split", split or "(none)"]]
    metrics = (getattr(result, "outputs", None) or {}).get("metrics")
    if metrics is not None:
        rows += [[k.replace("_", " "), v] for k, v in metrics.metadata.items() if k != "display_name"]
    text = tabulate(rows, tablefmt="plain")
    if endpoint:
        url = f"{arguments['api_endpoint']}/v1/{endpoint.resource_name}:predict"
        text += f"\n\nCall the endpoint:\n  curl -s -X POST {url} -H 'Content-Type: application/json' -d '{{\"instances\": [...]}}'"
        text += "\nlocalvertex keeps running for that: `vsp emulator status` shows it, `vsp emulator down` stops it."
    return text
