"""`vsp`: the command line of vertex-serving-pipelines.

Exit codes: 0 success, 1 the run failed, 2 the input was wrong (each problem printed as one line).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys

from tabulate import tabulate

from pipelines.catalog import ACCELERATORS, load_catalog
from pipelines.config import load_config
from pipelines.errors import InvalidConfig, UserError
from pipelines.validate import validate


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
    return parser


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
    usable = [i for i in images if i.usable(as_of)]
    if usable and all(i.nightly for i in usable):
        print(
            f"\nOnly nightly images (no SLA) are usable on {as_of}: add the versions Google published since with --catalog FILE."
        )
    elif not usable:
        print(f"\nNo image is usable on {as_of}: add newer versions with --catalog FILE.")
    return 0


def _validate(args) -> int:
    plan = validate(load_config(args.config), load_catalog(*args.catalog))
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
