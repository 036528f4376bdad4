"""`vsp`: the command line of vertex-serving-pipelines.

Exit codes: 0 success, 1 the run failed, 2 the input was wrong (each problem printed as one line).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # a quiet terminal: TensorFlow's start-up lines are not ours

import argparse
import dataclasses
import datetime as dt
import json
import sys
from pathlib import Path

from tabulate import tabulate

from vertex_serving.catalog import ACCELERATORS, RUNTIMES, load_catalog
from vertex_serving.config import load_config
from vertex_serving.errors import InvalidConfig, UserError
from vertex_serving.rules import validate

DATA_DIR_HELP = "$XDG_DATA_HOME/localvertex, else ~/.local/share/localvertex"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except InvalidConfig as e:
        for error in e.errors:
            print(f"error: {error}", file=sys.stderr)
        return 2
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # the run could not be submitted or followed: one line, not a traceback
        if type(e).__name__ != "Unreachable":
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        from google.api_core import exceptions

        if not isinstance(e, exceptions.BadRequest):
            raise
        print(f"error: Vertex AI refused it: {e.message}", file=sys.stderr)  # the service's own check of the input
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vsp",
        description="Take a TensorFlow SavedModel to a Vertex AI endpoint on the optimized TensorFlow runtime.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    images = _command(
        commands,
        "images",
        "list the serving images of the runtime catalog and whether each is usable on a date",
        "vsp images --accelerator tpu --as-of 2025-06-01",
    )
    images.add_argument("--accelerator", choices=ACCELERATORS, help="only images for this accelerator")
    images.add_argument("--as-of", type=_date, default=None, help="judge availability on this date (default: today)")
    images.add_argument(
        "--catalog",
        action="append",
        default=[],
        metavar="FILE",
        help="TOML file extending or overriding the catalog (repeatable)",
    )
    images.add_argument("--json", action="store_true", help="machine-readable output")
    images.set_defaults(run=_images)

    check = _command(
        commands,
        "validate",
        "check a deploy configuration and show the image, container args and machine spec it resolves to",
        "vsp validate deploy.yaml",
    )
    check.add_argument(
        "config", metavar="CONFIG", help="YAML or TOML file whose keys are the pipeline's parameter names"
    )
    check.add_argument(
        "--catalog",
        action="append",
        default=[],
        metavar="FILE",
        help="TOML file extending or overriding the catalog (repeatable)",
    )
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(run=_validate)
    _emulator_commands(commands)
    _pipeline_commands(commands)
    _schedule_commands(commands)
    return parser


def _pipeline_commands(commands) -> None:
    run = _command(
        commands,
        "run",
        "submit the deploy pipeline as a PipelineJob to Vertex AI, or with --local to localvertex, and follow it",
        "vsp run --local --config deploy.yaml\n"
        "  vsp run --config deploy.yaml --project my-project --pipeline-root gs://my-bucket/runs \\\n"
        "      --component-image us-docker.pkg.dev/my-project/vsp/vertex-serving-pipelines:0.1.0",
    )
    run.add_argument("--config", type=Path, required=True, help="YAML or TOML file of pipeline parameters")
    run.add_argument("--local", action="store_true", help="submit to localvertex on this machine (started if needed)")
    run.add_argument("--template", type=Path, help="a compiled pipeline YAML to submit (default: compile one now)")
    run.add_argument("--component-image", default="", help="registry path of the steps' image (for Vertex AI)")
    run.add_argument("--project", default="", help="Google Cloud project (default: the config's)")
    run.add_argument("--location", default="", help="region (default: the config's location)")
    run.add_argument("--pipeline-root", default="", help="gs:// folder for the run's artifacts (default: the config's)")
    run.add_argument("--service-account", default="", help="service account the run's steps act as")
    run.add_argument("--network", default="", help="VPC network the run is peered with")
    run.add_argument(
        "--catalog",
        metavar="FILE",
        help="TOML file extending the runtime catalog; the run's validate step and localvertex both read it",
    )
    run.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True, help="follow the run (default)")
    run.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    run.add_argument("-v", "--verbose", action="store_true", help="stream the steps' own output (local runs)")
    run.add_argument(
        "--data-dir",
        type=_data_dir,
        default=None,
        help=f"localvertex state folder (default: {DATA_DIR_HELP})",
    )
    run.add_argument("--tpu-v5e-cores", type=int, help="TPU v5e quota for a localvertex this command starts")
    run.set_defaults(run=_run)
    compile_ = _command(
        commands,
        "compile",
        "compile the pipelines to build/*.yaml for Vertex AI Pipelines",
        "vsp compile --component-image us-docker.pkg.dev/my-project/vsp/vertex-serving-pipelines:0.1.0",
    )
    from pipelines.compile import add_arguments, run

    add_arguments(compile_)
    compile_.set_defaults(run=run)
    demo = _command(
        commands,
        "demo",
        "train a digit classifier and deploy it end to end on localvertex (TPU v5e, emulated)",
        "vsp demo",
    )
    demo.add_argument(
        "--work-dir", type=Path, default=Path("build/demo"), help="where the model and config go (default: build/demo)"
    )
    demo.add_argument(
        "--data-dir",
        type=_data_dir,
        default=None,
        help=f"localvertex state folder (default: {DATA_DIR_HELP})",
    )
    demo.set_defaults(run=_demo)


def _schedule_commands(commands) -> None:
    schedule = commands.add_parser(
        "schedule",
        help="scheduled retraining-to-serving: create, list, pause, resume and delete PipelineJobSchedules",
        description="Scheduled retraining-to-serving as PipelineJobSchedules, on Vertex AI or with --local on localvertex.",
    )
    actions = schedule.add_subparsers(title="actions", metavar="ACTION", required=True)
    create = _command(
        actions,
        "create",
        "schedule the retrain-and-deploy pipeline on a cron",
        'vsp schedule create --local --config retrain.yaml --cron "0 3 * * 1" --timezone Europe/Berlin',
    )
    create.add_argument("--config", type=Path, required=True, help="YAML or TOML file of the pipeline's parameters")
    create.add_argument("--cron", required=True, help='cron expression, e.g. "0 3 * * 1" (Mondays at 03:00)')
    create.add_argument("--timezone", default="", help="IANA time zone of the cron (default: UTC)")
    create.add_argument("--display-name", default="", help="the schedule's name (default: from the config file)")
    create.add_argument("--replace", action="store_true", help="delete earlier schedules of the same display name")
    create.add_argument("--max-run-count", type=int, default=0, help="stop after this many runs (default: no limit)")
    create.add_argument("--max-concurrent-run-count", type=int, default=1, help="runs at once (default: 1)")
    create.add_argument("--allow-queueing", action="store_true", help="queue a run that finds no room, not skip it")
    create.add_argument("--start-time", default="", help="first possible run, RFC 3339 (default: now)")
    create.add_argument("--end-time", default="", help="no run after this, RFC 3339")
    create.add_argument(
        "--template", type=Path, help="a compiled pipeline YAML (default: the example retrain pipeline)"
    )
    create.add_argument("--component-image", default="", help="registry path of the steps' image (for Vertex AI)")
    create.add_argument("--pipeline-root", default="", help="gs:// folder for the runs' artifacts")
    create.add_argument("--service-account", default="", help="service account the runs act as")
    create.add_argument("--network", default="", help="VPC network the runs are peered with")
    create.set_defaults(run=_schedule, action="create")
    for name, help, example in (
        ("list", "list the schedules with their state, next run and last run", "vsp schedule list --local"),
        ("pause", "pause a schedule: it starts no run until resumed", "vsp schedule pause --local retrain-digits"),
        ("resume", "resume a paused schedule", "vsp schedule resume --local --catch-up retrain-digits"),
        ("delete", "delete a schedule; its runs stay listed", "vsp schedule delete --local retrain-digits"),
    ):
        action = _command(actions, name, help, example)
        if name != "list":
            action.add_argument("name", metavar="SCHEDULE", help="display name or resource name")
        if name == "resume":
            action.add_argument("--catch-up", action="store_true", help="start the runs missed while paused")
        action.set_defaults(run=_schedule, action=name)
    for action in (create, *[actions.choices[n] for n in ("list", "pause", "resume", "delete")]):
        action.add_argument("--local", action="store_true", help="on localvertex on this machine")
        action.add_argument("--project", default="", help="Google Cloud project (default: the config's)")
        action.add_argument("--location", default="", help="region (default: the config's, or us-central1)")
        action.add_argument("--json", action="store_true", help="machine-readable output")
        action.add_argument(
            "--data-dir", type=_data_dir, default=None, help=f"localvertex state folder (default: {DATA_DIR_HELP})"
        )


def _schedule(args) -> int:
    from pipelines import schedule

    fields = {f.name for f in dataclasses.fields(schedule.ScheduleOptions)}
    options = schedule.ScheduleOptions(**({"config": None} | {k: v for k, v in vars(args).items() if k in fields}))
    return {
        "create": schedule.create,
        "list": schedule.list_schedules,
        "pause": schedule.pause,
        "resume": schedule.resume,
        "delete": schedule.delete,
    }[args.action](options)


def _run(args) -> int:
    from pipelines.run import Options, run

    fields = {f.name for f in dataclasses.fields(Options)}
    return run(Options(**{k: v for k, v in vars(args).items() if k in fields}))


def _demo(args) -> int:
    from pipelines.demo import main as demo

    return demo(args.work_dir, args.data_dir)


def _emulator_commands(commands) -> None:
    emulator = commands.add_parser(
        "emulator",
        help="run localvertex, the local Vertex AI the pipeline deploys to by default",
        description="Run localvertex: Vertex AI's REST API, a GCS emulator and local model servers on 127.0.0.1.",
    )
    actions = emulator.add_subparsers(title="actions", metavar="ACTION", required=True)
    up = _command(
        actions,
        "up",
        "start localvertex and print what points the aiplatform SDK at it",
        "vsp emulator up --tpu-v5e-cores 8 --detach",
    )
    up.add_argument("--port", type=int, default=0, help="control-plane port (default: a free one)")
    up.add_argument("--storage-port", type=int, default=0, help="GCS emulator port (default: a free one)")
    up.add_argument("--data-dir", type=_data_dir, default=None, help=f"state folder (default: {DATA_DIR_HELP})")
    up.add_argument(
        "--tpu-v5e-cores",
        type=int,
        help='the "Custom model serving TPU v5e cores per region" quota (default 0, as on Vertex AI)',
    )
    up.add_argument(
        "--deploy-timeout", type=float, default=600.0, help="seconds a model server may take to become healthy"
    )
    up.add_argument(
        "--catalog", action="append", default=[], metavar="FILE", help="TOML file extending the runtime catalog"
    )
    up.add_argument("--detach", action="store_true", help="run in the background and return once it answers")
    up.set_defaults(run=_emulator_up)
    for name, help, example, run in (
        ("down", "stop localvertex and its model servers (its state stays)", "vsp emulator down", _emulator_down),
        (
            "status",
            "show endpoints, deployed models, traffic, ports and health",
            "vsp emulator status",
            _emulator_status,
        ),
    ):
        action = _command(actions, name, help, example)
        action.add_argument("--data-dir", type=_data_dir, default=None, help=f"state folder (default: {DATA_DIR_HELP})")
        if name == "status":
            action.add_argument("--json", action="store_true", help="machine-readable output")
        action.set_defaults(run=run)
    logs = _command(
        actions,
        "logs",
        "show a DeployedModel's model-server log: each runtime flag and its effect, the warmup replay, errors",
        "vsp emulator logs 2001 --follow",
    )
    logs.add_argument("deployed_model_id", metavar="DEPLOYED_MODEL_ID", help="as `vsp emulator status` lists it")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing what the server adds (Ctrl-C stops)")
    logs.add_argument("--data-dir", type=_data_dir, default=None, help=f"state folder (default: {DATA_DIR_HELP})")
    logs.set_defaults(run=_emulator_logs)


def _emulator_up(args) -> int:
    from localvertex.control import up
    from localvertex.emulator import Config

    config = Config(
        _default_data_dir(args), args.port, args.storage_port, args.tpu_v5e_cores, args.deploy_timeout, args.catalog
    )
    return up(config, args.detach)


def _emulator_down(args) -> int:
    from localvertex.control import down

    return down(_default_data_dir(args))


def _emulator_logs(args) -> int:
    from pipelines.logs import show_log

    return show_log(_default_data_dir(args), args.deployed_model_id, args.follow)


def _emulator_status(args) -> int:
    from localvertex.control import print_pointers, status

    report = status(_default_data_dir(args))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    state = report["emulator"]
    running = f"runs (pid {state['pid']}, {state['api_endpoint']})" if state else "is not running"
    print(f"localvertex {running}; data in {report['data_dir']}")
    rows = [
        [
            e["display_name"],
            e["name"].rsplit("/", 1)[-1] + (" (private)" if e["private"] else ""),
            d["id"],
            d["model"].rsplit("/", 1)[-1],
            d["machine_type"],
            f"{d['traffic']}%",
            d["port"] or "",
            "yes" if d["healthy"] else "no",
        ]
        for e in report["endpoints"]
        for d in (
            e["deployed_models"]
            or [{"id": "-", "model": "-", "machine_type": "", "traffic": "", "port": "", "healthy": False}]
        )
    ]
    if rows:
        print(
            tabulate(
                rows,
                headers=[
                    "endpoint",
                    "id",
                    "deployed model",
                    "model@version",
                    "machine type",
                    "traffic",
                    "port",
                    "healthy",
                ],
            )
        )
    if state:
        print_pointers(state)
    return 0


def _data_dir(text: str) -> Path:
    return Path(text).expanduser()


def _default_data_dir(args) -> Path:
    """localvertex's own default, imported only when a command needs it (the component image has no localvertex)."""
    from localvertex.emulator import DEFAULT_DATA_DIR

    return args.data_dir or DEFAULT_DATA_DIR


def _command(commands, name: str, help: str, example: str) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        help=help,
        description=help[0].upper() + help[1:] + ".",
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: write YYYY-MM-DD") from None


def _images(args) -> int:
    catalog = load_catalog(*args.catalog)
    as_of = args.as_of or dt.date.today()
    images = catalog.select(args.accelerator)
    if args.json:
        rows = [dataclasses.asdict(i) | {"usable": i.usable(as_of), "status": i.status(as_of)} for i in images]
        print(json.dumps({"as_of": as_of.isoformat(), "images": rows}, default=str, indent=2))
        return 0
    table = [
        [
            i.version,
            i.accelerator,
            i.runtime,
            i.uri,
            i.cuda or "",
            i.end_of_patches or "",
            i.end_of_availability or "",
            i.status(as_of),
        ]
        for i in images
    ]
    headers = [
        "version",
        "accelerator",
        "runtime",
        "image",
        "CUDA",
        "end of patches",
        "end of availability",
        f"on {as_of}",
    ]
    print(tabulate(table, headers=headers))
    for runtime in RUNTIMES:
        usable = [i for i in images if i.runtime == runtime and i.usable(as_of)]
        if usable and all(i.nightly for i in usable):
            print(
                f"\nOnly nightly images (no SLA) of the {runtime} runtime are usable on {as_of}: add the versions "
                "Google published since with --catalog FILE."
            )
    if not any(i.usable(as_of) for i in images):
        print(f"\nNo image is usable on {as_of}: add newer versions with --catalog FILE.")
    return 0


def _validate(args) -> int:
    config = load_config(args.config)
    plan = validate(config, load_catalog(config.catalog, *args.catalog))
    batching = dataclasses.asdict(plan.batching) if plan.batching else None
    if args.json:
        out = {
            "image": plan.image.uri,
            "container_version": plan.image.version,
            "container_args": list(plan.container_args),
            "machine_spec": plan.machine_spec,
            "tpu_chips": plan.tpu_chips,
            "batching": batching,
            "warnings": list(plan.warnings),
        }
        print(json.dumps(out, indent=2))
        return 0
    machine = ", ".join(f"{k}={v}" for k, v in plan.machine_spec.items())
    if plan.tpu_chips:
        machine += f" ({plan.tpu_chips} TPU v5e chip{'s' if plan.tpu_chips > 1 else ''})"
    rows = [
        ["image", plan.image.uri],
        ["container version", f"{plan.image.version} ({plan.image.accelerator}, {plan.image.runtime} runtime)"],
        ["container args", "\n".join(plan.container_args) or "(none)"],
        ["machine spec", machine],
        ["batching", " ".join(f"{k}={v}" for k, v in batching.items() if v is not None) if batching else "off"],
    ]
    print(tabulate(rows, tablefmt="plain"))
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
