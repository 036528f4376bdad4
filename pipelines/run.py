"""`vsp run`: submits the compiled deploy pipeline as a PipelineJob, to Vertex AI or to localvertex, and follows it.

One code path: `aiplatform.PipelineJob(...).submit()`; a local run differs only in where the SDK points (and in the
pipeline root, service account and staging bucket it defaults to). Nothing is submitted until the configuration,
the template and the target have been checked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import secrets
import socket
import sys
import tempfile
import time
from pathlib import Path

from google.api_core.exceptions import GoogleAPIError
from tabulate import tabulate

from pipelines.compile import is_registry_path
from pipelines.deploy import PIPELINE_NAME
from vertex_serving.catalog import describe, load_catalog, read_source
from vertex_serving.config import DeployConfig, load_config, load_submission
from vertex_serving.errors import UserError
from vertex_serving.rules import validate

LOCAL_PROJECT = "local-project"
LOCAL_SERVICE_ACCOUNT = "vsp-local-runner@{project}.iam.gserviceaccount.com"
DONE = ("PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED")
MAX_MISSED_POLLS = 5  # consecutive failed polls before a run is given up as unreachable
TASK_DONE = ("SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED", "NOT_TRIGGERED")


@dataclasses.dataclass
class Target:
    """Where a run goes: Vertex AI (empty `api_endpoint`, or the config's) or a localvertex."""

    project: str
    location: str
    api_endpoint: str
    pipeline_root: str
    service_account: str = ""
    network: str = ""
    staging_bucket: str = ""
    local_data_dir: Path | None = None

    @property
    def local(self) -> bool:
        return self.local_data_dir is not None

    def console_url(self, job_name: str) -> str:
        job_id = job_name.rsplit("/", 1)[-1]
        if self.local:
            return f"{self.api_endpoint}/v1/{job_name}"
        return f"https://console.cloud.google.com/vertex-ai/locations/{self.location}/pipelines/runs/{job_id}?project={self.project}"


@dataclasses.dataclass
class Options:
    """What `vsp run` was asked, besides the config."""

    config: Path
    local: bool = False
    template: Path | None = None
    component_image: str = ""
    project: str = ""
    location: str = ""
    pipeline_root: str = ""
    service_account: str = ""
    network: str = ""
    catalog: str | None = None
    data_dir: Path | None = None
    tpu_v5e_cores: int | None = None
    wait: bool = True
    json: bool = False
    verbose: bool = False


def run(options: Options, out=None) -> int:
    """The whole of `vsp run`: check, submit, follow; 0 succeeded, 1 the run failed; bad input raises UserError."""
    out = out or sys.stdout  # looked up per call: callers and tests swap sys.stdout
    config = load_config(options.config)
    if options.catalog:
        config = dataclasses.replace(config, catalog=options.catalog)
    validate(config, load_catalog(config.catalog))  # every rule, before anything is submitted
    config = with_local_paths(config, options.local)
    job_id = f"{PIPELINE_NAME}-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
    target = local_target(config, options, f"gs://{job_id}") if options.local else vertex_target(config, options)
    template = options.template or compile_template(options.component_image, target)
    check_template(template)
    if not target.local:
        check_reachable(target)
    arguments = pipeline_arguments(config, target.api_endpoint, target.staging_bucket) | {"project": target.project}
    job = submit(template, job_id, arguments, target, labels={"vsp-config": _label(options.config.stem)})
    progress = Progress(out, quiet=options.json)
    progress.line(f"run: {job.resource_name}")
    progress.line(f"     {target.console_url(job.resource_name)}")
    log_path = target.local_data_dir / "pipeline-jobs" / job_id / "log.txt" if target.local else None
    if log_path:
        progress.line(f"     task logs: {log_path}")
    if not options.wait:
        if options.json:
            print(json.dumps({"run": job.resource_name, "state": "PIPELINE_STATE_PENDING"}), file=out)
        return 0
    state = follow(job, target, progress, log_path if options.verbose else None)
    try:
        result = results(job, config, target, state)
    except (GoogleAPIError, OSError) as e:  # the target went away after the run ended
        where = "localvertex" if target.local else "Vertex AI"
        raise Unreachable(
            f"{where} stopped answering while the summary of {job.resource_name} was read ({type(e).__name__})"
        ) from None
    if options.json:
        print(json.dumps(result, indent=2, default=str), file=out)
    else:
        print(file=out)
        print(summary_table(result, target), file=out)
    return 0 if state == "PIPELINE_STATE_SUCCEEDED" else 1


def with_local_paths(config: DeployConfig, local: bool) -> DeployConfig:
    """Local files as absolute paths for a local run (its steps run elsewhere); refused for Vertex AI, which cannot
    read this machine's disk."""
    changes = {}
    for name in ("model_dir", "sample_instances_uri"):
        value = getattr(config, name)
        if not value or "://" in value:
            continue
        if not local:
            raise UserError(
                name,
                value,
                "is a path on this machine, which Vertex AI Pipelines cannot read",
                "copy it to gs:// and use that URI",
            )
        changes[name] = str(Path(value).expanduser().resolve())
    return dataclasses.replace(config, **changes)


def local_target(config: DeployConfig, options: Options, default_root: str = "") -> Target:
    """localvertex, started when none runs, with the run's catalog loaded; runs write under `default_root` unless
    the flags or the config name a pipeline root (default: a folder of the staging bucket)."""
    from localvertex.emulator import DEFAULT_DATA_DIR, STAGING_BUCKET, environment

    data_dir = (options.data_dir or DEFAULT_DATA_DIR).expanduser()
    state = ensure_emulator(data_dir, options.tpu_v5e_cores, catalog_file(config.catalog, data_dir))
    os.environ["STORAGE_EMULATOR_HOST"] = environment(state)["STORAGE_EMULATOR_HOST"]
    submission = load_submission(options.config)
    project = options.project or config.project or LOCAL_PROJECT
    # A pipeline root in a bucket that does not exist yet, and a service account: with both, the SDK's bucket helper
    # creates the bucket instead of asking Cloud Resource Manager (unreachable here) whether an existing one is ours.
    return Target(
        project=project,
        location=options.location or config.location,
        api_endpoint=state["api_endpoint"],
        pipeline_root=options.pipeline_root
        or submission.get("pipeline_root")
        or default_root
        or f"gs://{STAGING_BUCKET}/pipeline-runs",
        service_account=options.service_account
        or submission.get("service_account")
        or LOCAL_SERVICE_ACCOUNT.format(project=project),
        network=options.network or submission.get("network", ""),
        staging_bucket=config.staging_bucket or f"gs://{STAGING_BUCKET}",
        local_data_dir=data_dir,
    )


def vertex_target(config: DeployConfig, options: Options) -> Target:
    submission = load_submission(options.config)
    project = options.project or config.project
    if not project:
        raise UserError("project", "", "is required to run on Vertex AI", "set project in the config or pass --project")
    pipeline_root = options.pipeline_root or submission.get("pipeline_root", "")
    if not pipeline_root.startswith("gs://"):
        raise UserError(
            "pipeline_root",
            pipeline_root,
            "is required to run on Vertex AI and must be a Cloud Storage URI",
            "pass --pipeline-root gs://BUCKET/PATH (or set pipeline_root in the config), or run with --local",
        )
    return Target(
        project=project,
        location=options.location or config.location,
        api_endpoint=config.api_endpoint,
        pipeline_root=pipeline_root,
        service_account=options.service_account or submission.get("service_account", ""),
        network=options.network or submission.get("network", ""),
        staging_bucket=config.staging_bucket,
    )


def component_image(image: str, target: Target) -> str:
    """The steps' image for this target: any image locally (unused there), a registry path for Vertex AI."""
    from components import COMPONENT_IMAGE

    image = image or COMPONENT_IMAGE
    if not target.local and not is_registry_path(image):
        raise UserError(
            "component_image",
            image,
            "is not a registry path, so Vertex AI Pipelines could not pull it",
            "build the Dockerfile, push it, and pass --component-image REGION-docker.pkg.dev/PROJECT/REPO/IMAGE:TAG",
        )
    return image


def compile_template(image: str, target: Target) -> Path:
    """The deploy pipeline compiled for this run."""
    from pipelines.compile import compile_pipelines

    (path, *_) = compile_pipelines(Path(tempfile.mkdtemp(prefix="vsp-run-")), component_image(image, target))
    return path


def check_template(path: Path) -> None:
    """A template that kfp cannot load, or that is not this package's deploy pipeline, is refused before submitting."""
    from kfp import components

    try:
        pipeline = components.load_component_from_file(str(path))
    except Exception as e:  # kfp raises several types for files that are not a pipeline spec
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(
            "template",
            str(path),
            f"does not load as a compiled pipeline ({reason})",
            "pass the YAML `vsp compile` wrote",
        ) from None
    missing = {f.name for f in dataclasses.fields(DeployConfig)} - set(pipeline.component_spec.inputs or {})
    if missing:
        raise UserError(
            "template",
            str(path),
            f"lacks the deploy pipeline's parameters {sorted(missing)}",
            "compile it again with this version: vsp compile",
        )


def check_reachable(target: Target, timeout: float = 5.0) -> None:
    """One quick look-up instead of the SDK's minute of retries: a machine with no network fails in seconds."""
    host = (target.api_endpoint or f"https://{target.location}-aiplatform.googleapis.com").split("://")[-1]
    host, _, port = host.partition(":")
    socket.setdefaulttimeout(timeout)
    try:
        socket.create_connection((host, int(port or 443)), timeout=timeout).close()
    except OSError as e:
        raise Unreachable(
            f"cannot reach Vertex AI at {host}:{port or 443} ({e.strerror or e}): check the network, or run with --local"
        ) from None
    finally:
        socket.setdefaulttimeout(None)


class Unreachable(RuntimeError):
    """The target did not answer: the run could not be submitted or followed (exit 1)."""


def submit(template: Path, job_id: str, arguments: dict, target: Target, labels: dict):
    from google.auth import exceptions as google_auth_exceptions
    from google.cloud import aiplatform

    from vertex_serving.sdk import init_vertex

    quiet_sdk()
    init_vertex(target.project, target.location, target.api_endpoint, target.staging_bucket)
    job = aiplatform.PipelineJob(
        display_name=PIPELINE_NAME,
        template_path=str(template),
        job_id=job_id,
        pipeline_root=target.pipeline_root,
        parameter_values=arguments,
        labels=labels,
        enable_caching=False,  # a deployment is a side effect: never skip it because inputs look the same
    )
    try:
        job.submit(service_account=target.service_account or None, network=target.network or None)
    except google_auth_exceptions.DefaultCredentialsError as e:
        raise Unreachable(
            f"no Google Cloud credentials to submit with ({e}): run `gcloud auth application-default login`"
        ) from None
    return job


def quiet_sdk() -> None:
    """The SDK gives each module's logger its own stdout handler at INFO; `vsp run` prints its own lines instead
    (and `--json` output must be JSON alone)."""
    for name in list(logging.Logger.manager.loggerDict):
        if name.startswith("google.cloud.aiplatform"):
            logging.getLogger(name).setLevel(logging.WARNING)


class Progress:
    """One line per task, as each one ends; quiet when the output is JSON."""

    def __init__(self, out, quiet: bool) -> None:
        self.out, self.quiet, self.shown = out, quiet, set()

    def line(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.out, flush=True)

    def tasks(self, details) -> None:
        for task in details[1:]:  # the first is the pipeline's own DAG
            state = task.state.name
            if state in TASK_DONE and task.task_name not in self.shown:
                self.shown.add(task.task_name)
                self.line(f"  {task.task_name:<16} {state:<10} {_seconds(task)}")


def follow(job, target: Target, progress: Progress, stream: Path | None) -> str:
    """Polls the run until it ends; an emulator or service that stops answering ends it with one line."""
    from google.api_core import exceptions

    interval = 1.0 if target.local else 10.0
    offset, misses = 0, 0
    while True:
        if target.local and not _emulator_alive(target.local_data_dir):  # rather than waiting out the SDK's retries
            raise Unreachable(
                f"localvertex stopped answering while {job.resource_name} ran (its process is gone): "
                "`vsp emulator up` starts it again; the run is marked FAILED then"
            )
        try:  # one try per poll, not the SDK's minute of retries: the next polls are the retries
            job._gca_resource = job.api_client.get_pipeline_job(name=job.resource_name, retry=None, timeout=30)
            misses = 0
        except (exceptions.GoogleAPIError, OSError) as e:
            misses += 1
            if misses == MAX_MISSED_POLLS:
                where = "localvertex (`vsp emulator status`)" if target.local else "Vertex AI"
                raise Unreachable(
                    f"{where} stopped answering while {job.resource_name} ran ({type(e).__name__})"
                ) from None
            time.sleep(interval)
            continue
        progress.tasks(list(job.task_details))
        if stream and stream.exists():
            with stream.open() as f:
                f.seek(offset)
                sys.stdout.write(f.read())
                offset = f.tell()
        state = job.state.name
        if state in DONE:
            if job._gca_resource.error.message:
                progress.line(f"run: {state.removeprefix('PIPELINE_STATE_')}: {job._gca_resource.error.message}")
            return state
        time.sleep(interval)


def results(job, config: DeployConfig, target: Target, state: str) -> dict:
    """Run name, state, tasks, model version, endpoint, traffic split, metrics and the smoke-test report."""
    from google.api_core import exceptions
    from google.cloud import aiplatform

    from components.endpoint import find_endpoint

    quiet_sdk()
    found = {
        "run": job.resource_name,
        "state": state,
        "console_url": target.console_url(job.resource_name),
        "error": job._gca_resource.error.message or None,
        "tasks": [
            {"name": t.task_name, "state": t.state.name, "seconds": _seconds(t, raw=True)} for t in job.task_details[1:]
        ],
    }
    outputs = {t.task_name: t.outputs for t in job.task_details}
    model = _first_artifact(outputs.get("upload", {}), "vertex_model")
    found["model_version"] = model.metadata.get("resourceName") if model else None
    endpoint = find_endpoint(config.endpoint_display_name, config.endpoint_network)  # read only: never creates
    found["endpoint"] = endpoint.resource_name if endpoint else None
    if endpoint:
        by_id = {
            d.id: f"{d.model.rsplit('/', 1)[-1].split('@')[0]}@{d.model_version_id}" for d in endpoint.list_models()
        }
        found["traffic_split"] = {by_id.get(k, k): v for k, v in endpoint.traffic_split.items()}
    metrics = _first_artifact(outputs.get("smoke-test", {}), "metrics")
    found["metrics"] = {k: v for k, v in dict(metrics.metadata).items() if k != "display_name"} if metrics else {}
    # The smoke test's report, or the trial's when the run ended there.
    report = _first_artifact(outputs.get("smoke-test", {}), "smoke_report") or _first_artifact(
        outputs.get("trial", {}), "trial_report"
    )
    found["report_uri"] = report.uri if report else None
    found["report"] = _download(report.uri) if report else None
    if found["model_version"]:
        try:
            versions = aiplatform.models.ModelRegistry(found["model_version"].split("@")[0]).list_versions()
            found["model_versions"] = len(versions)
        except exceptions.NotFound:  # the version failed its trial and was deleted with its model
            found["model_versions"] = 0
    return found


def summary_table(result: dict, target: Target) -> str:
    rows = [
        [t["name"], t["state"], f"{t['seconds']:.1f}s" if t["seconds"] is not None else ""] for t in result["tasks"]
    ]
    text = tabulate(rows, headers=["step", "state", "duration"]) + "\n\n"
    facts = [["run", f"{result['run'].rsplit('/', 1)[-1]}: {result['state'].removeprefix('PIPELINE_STATE_')}"]]
    if result.get("model_version"):
        facts.append(["model version", f"{result['model_version']} ({result.get('model_versions')} versions)"])
    if result.get("endpoint"):
        split = ", ".join(f"{k}: {v}%" for k, v in result.get("traffic_split", {}).items())
        facts += [["endpoint", result["endpoint"]], ["traffic split", split or "(none)"]]
    facts += [[k.replace("_", " "), v] for k, v in result["metrics"].items()]
    if result.get("report_uri"):
        facts.append(["report", result["report_uri"]])
    text = tabulate(facts, tablefmt="plain")
    if result.get("endpoint") and target.local:
        url = f"{target.api_endpoint}/v1/{result['endpoint']}:predict"
        text += f"\n\nCall the endpoint:\n  curl -s -X POST {url} -H 'Content-Type: application/json' -d '{{\"instances\": [...]}}'"
        text += "\nlocalvertex keeps running for that: `vsp emulator status` shows it, `vsp emulator down` stops it."
    return text


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
    if not describe(catalog).startswith("TOML text") and not catalog.startswith("gs://"):
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
                f"{wanted} asked: restart it with `vsp emulator down` first to change it",
                file=sys.stderr,
            )
        return state
    print(f"run: starting localvertex on {data_dir}", file=sys.stderr)
    up(Config(data_dir=data_dir, tpu_v5e_cores=tpu_v5e_cores, catalogs=wanted_catalogs), detach=True, out=_Quiet())
    return read_state(data_dir)


class _Quiet:
    """Swallows the emulator's start-up pointers: `vsp emulator status` shows them on demand."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _emulator_alive(data_dir: Path) -> bool:
    from localvertex.emulator import read_state

    return read_state(data_dir) is not None


def _first_artifact(outputs, key: str):
    listed = outputs.get(key) if outputs else None
    return listed.artifacts[0] if listed and listed.artifacts else None


def _download(uri: str) -> str | None:
    from google.cloud import storage

    bucket, _, name = uri.removeprefix("gs://").partition("/")
    try:
        return storage.Client().bucket(bucket).blob(name).download_as_text()
    except Exception:  # the report is a convenience: its URI is in the result either way
        return None


def _seconds(task, raw: bool = False):
    if not task.start_time or not task.end_time:
        return None if raw else ""
    seconds = (task.end_time - task.start_time).total_seconds()
    return round(seconds, 1) if raw else f"{seconds:.1f}s"


def _label(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text.lower())[:63] or "config"
