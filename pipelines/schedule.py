"""`vsp schedule`: scheduled retraining-to-serving, as `aiplatform.PipelineJobSchedule`s on Vertex AI or localvertex.

`create` compiles the example retrain pipeline (or takes `--template`), checks the config against its parameters,
and creates the schedule; `list`, `pause`, `resume` and `delete` act on schedules by display name or resource name.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
import tempfile
import zoneinfo
from pathlib import Path

from tabulate import tabulate

from pipelines.run import Options, component_image, local_target, quiet_sdk, vertex_target
from vertex_serving.catalog import load_catalog
from vertex_serving.config import SUBMISSION_KEYS, DeployConfig, read_config_file
from vertex_serving.errors import InvalidConfig, UserError
from vertex_serving.rules import validate

_DEPLOY_FIELDS = {f.name for f in dataclasses.fields(DeployConfig)}
TRAINED_MODEL = "gs://the-trainer/model"  # stands for the model each run trains, in checks made before it exists


@dataclasses.dataclass
class ScheduleOptions(Options):
    cron: str = ""
    timezone: str = ""
    display_name: str = ""
    replace: bool = False
    max_run_count: int = 0
    max_concurrent_run_count: int = 1
    allow_queueing: bool = False
    start_time: str = ""
    end_time: str = ""
    name: str = ""
    catch_up: bool = False


def create(options: ScheduleOptions, out=None) -> int:
    out = out or sys.stdout
    from google.cloud import aiplatform

    from pipelines import retrain
    from vertex_serving.sdk import init_vertex

    values = read_config_file(options.config)
    cron = cron_with_zone(options.cron, options.timezone)
    config = DeployConfig.from_mapping({k: v for k, v in values.items() if k in _DEPLOY_FIELDS})
    # The deploy stage's rules, before anything is scheduled; the trainer's model takes model_dir's place.
    validate(dataclasses.replace(config, model_dir=config.model_dir or TRAINED_MODEL), load_catalog(config.catalog))
    target = local_target(config, options) if options.local else vertex_target(config, options)
    template = options.template or _compile_retrain(options, target)
    parameters = parameter_values(template, values, target)
    quiet_sdk()
    init_vertex(target.project, target.location, target.api_endpoint, target.staging_bucket)
    display_name = options.display_name or f"{retrain.PIPELINE_NAME}-{options.config.stem}"
    if options.replace:
        for old in _find(display_name):
            old.delete()
    job = aiplatform.PipelineJob(
        display_name=display_name,
        template_path=str(template),
        pipeline_root=target.pipeline_root,
        parameter_values=parameters,
        enable_caching=False,
    )
    schedule = aiplatform.PipelineJobSchedule(pipeline_job=job, display_name=display_name)
    schedule.create(
        cron=cron,
        max_run_count=options.max_run_count or None,
        max_concurrent_run_count=options.max_concurrent_run_count,
        allow_queueing=options.allow_queueing,
        start_time=options.start_time or None,
        end_time=options.end_time or None,
        service_account=target.service_account or None,
        network=target.network or None,
    )
    return _show([schedule], options, out)


def list_schedules(options: ScheduleOptions, out=None) -> int:
    out = out or sys.stdout
    _connect(options)
    return _show(_find(None), options, out)


def pause(options: ScheduleOptions, out=None) -> int:
    out = out or sys.stdout
    _connect(options)
    found = _one(options.name)
    found.pause()
    return _show([found], options, out)


def resume(options: ScheduleOptions, out=None) -> int:
    out = out or sys.stdout
    _connect(options)
    found = _one(options.name)
    found.resume(catch_up=options.catch_up)
    return _show([found], options, out)


def delete(options: ScheduleOptions, out=None) -> int:
    out = out or sys.stdout
    _connect(options)
    found = _one(options.name)
    found.delete()
    if options.json:
        print(json.dumps({"deleted": found.resource_name}), file=out)
    else:
        print(f"deleted {found.resource_name}; its runs stay listed", file=out)
    return 0


def cron_with_zone(cron: str, timezone: str) -> str:
    """`TZ=<zone> <cron>`, the form Vertex AI reads; the zone is checked here, the expression by the service."""
    if not cron.strip():
        raise UserError("cron", cron, "is empty", 'write five fields, e.g. "0 3 * * 1" for Mondays at 03:00')
    if not timezone:
        return cron.strip()
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise UserError("timezone", timezone, "is not an IANA time zone", "write e.g. Europe/Berlin or UTC") from None
    return f"TZ={timezone} {cron.strip()}"


def _compile_retrain(options: ScheduleOptions, target) -> Path:
    from kfp import compiler

    from pipelines import retrain

    path = Path(tempfile.mkdtemp(prefix="vsp-schedule-")) / f"{retrain.PIPELINE_NAME}.yaml"
    image = component_image(options.component_image, target)
    compiler.Compiler().compile(retrain.example(image), str(path))
    return path


def parameter_values(template: Path, values: dict, target) -> dict:
    """The config's values for the template's parameters; a key it does not take is refused by name."""
    from kfp import components

    from pipelines.run import pipeline_arguments

    inputs = components.load_component_from_file(str(template)).component_spec.inputs or {}
    given = {k: v for k, v in values.items() if k not in SUBMISSION_KEYS}
    errors = [
        UserError(key, value, "is not a parameter of the scheduled pipeline", f"use one of {', '.join(sorted(inputs))}")
        for key, value in given.items()
        if key not in inputs
    ]
    if errors:
        raise InvalidConfig(errors)
    config = DeployConfig.from_mapping({k: v for k, v in given.items() if k in _DEPLOY_FIELDS})
    encoded = pipeline_arguments(config, target.api_endpoint, target.staging_bucket) | {"project": target.project}
    return {k: v for k, v in encoded.items() if k in inputs} | {
        k: v for k, v in given.items() if k not in _DEPLOY_FIELDS
    }


def _connect(options: ScheduleOptions) -> None:
    from vertex_serving.sdk import init_vertex

    quiet_sdk()
    if options.local:
        import os

        from localvertex.emulator import DEFAULT_DATA_DIR, environment, read_state

        state = read_state((options.data_dir or DEFAULT_DATA_DIR).expanduser())
        if not state:
            raise UserError("local", True, "finds no localvertex running", "start it with `vsp emulator up --detach`")
        os.environ["STORAGE_EMULATOR_HOST"] = environment(state)["STORAGE_EMULATOR_HOST"]
        init_vertex(options.project or "local-project", options.location or "us-central1", state["api_endpoint"])
    else:
        if not options.project:
            raise UserError("project", "", "is required for Vertex AI", "pass --project, or --local")
        init_vertex(options.project, options.location or "us-central1")


def _find(display_name: str | None) -> list:
    from google.cloud import aiplatform

    found = aiplatform.PipelineJobSchedule.list(
        filter=f'display_name="{display_name}"' if display_name else None, order_by="create_time"
    )
    return list(found)


def _one(name: str):
    from google.cloud import aiplatform

    if "/schedules/" in name:
        return aiplatform.PipelineJobSchedule.get(name)
    found = _find(name)
    if len(found) != 1:
        raise UserError(
            "schedule",
            name,
            f"matches {len(found)} schedules",
            "give its display name or resource name (vsp schedule list)",
        )
    return found[0]


def _show(schedules: list, options: ScheduleOptions, out) -> int:
    from google.cloud import aiplatform

    rows = []
    for schedule in schedules:
        resource = aiplatform.PipelineJobSchedule.get(schedule.resource_name).gca_resource
        last = resource.last_scheduled_run_response.run_response
        last_state = ""
        if last.startswith("projects/"):
            last_state = aiplatform.PipelineJob.get(last).state.name.removeprefix("PIPELINE_STATE_")
        rows.append(
            {
                "name": resource.name,
                "display_name": resource.display_name,
                "cron": resource.cron,
                "state": resource.state.name,
                "next_run_time": _time(resource.next_run_time),
                "started_run_count": resource.started_run_count,
                "last_run": last or None,
                "last_run_state": last_state or None,
            }
        )
    if options.json:
        print(json.dumps(rows, indent=2), file=out)
        return 0
    table = [
        [
            r["display_name"],
            r["name"].rsplit("/", 1)[-1],
            r["cron"],
            r["state"],
            r["next_run_time"] or "",
            r["started_run_count"],
            r["last_run_state"] or "",
        ]
        for r in rows
    ]
    print(tabulate(table, headers=["schedule", "id", "cron", "state", "next run", "runs", "last run"]), file=out)
    return 0


def _time(value) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""
