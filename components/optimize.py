"""Tries the optimized runtime's flags on the model and keeps only those that make it faster within tolerance.

With `optimization: measure`, each candidate (plain, XLA precompilation, bfloat16 compression where this CPU has
it, the optimizer off, their combinations, and the configured flags) is measured on the warmed model's own
warmup records and compared with the reference predictions under the smoke test's tolerances; the chosen flags'
container args go to the upload step, and the decision is written in the model version's description. With
`as_configured` (the default) the validate step's container args pass through unchanged.
"""

import os
from pathlib import Path
from typing import NamedTuple

from kfp import dsl
from kfp.dsl.component_decorator import component  # importable inside a running component, unlike dsl.component

from components import COMPONENT_IMAGE


class Optimized(NamedTuple):
    container_args: list
    version_description: str
    report: str
    metrics: dict
    trials: list = []  # what was measured (vertex_serving.optimize.Trial), and what was decided from it
    decision: object = None


def optimize_model(
    config,
    container_args: list,
    model_dir: Path,
    reference: dict,
    resources: dict | None = None,
    rounds: int | None = None,
    round_seconds: float | None = None,
) -> Optimized:
    """The container args to deploy, the version description that records why, a Markdown report and metrics."""
    from components.smoke_test import compare
    from vertex_serving import optimize as core
    from vertex_serving.catalog import EXTEND_WITH_PARAMETER, load_catalog
    from vertex_serving.tfserving.servable import cpu_has_bf16

    if config.optimization != "measure":
        text = (
            "# Optimization as configured\n\n`optimization: as_configured`: the container args are deployed as "
            f"written: {core._args(container_args)}. Set `optimization: measure` to try the runtime's flags on this "
            "model and keep only those that make it faster within the smoke test's tolerances.\n"
        )
        return Optimized(list(container_args), config.version_description, text, {})
    catalog = load_catalog(config.catalog, extend_hint=EXTEND_WITH_PARAMETER)
    bf16 = cpu_has_bf16()
    found, notes = core.candidates(config, catalog, bf16)
    options = {c.name: c.options for c in found}
    measuring = {k: v for k, v in (("rounds", rounds), ("round_seconds", round_seconds)) if v is not None}
    sizes, measured = core.measure(model_dir, options, reference["instances"], **measuring)
    trials = [_trial(c, m, reference, config, compare) for c, m in zip(found, measured, strict=True)]
    configured = core.configured_flags_of(container_args)
    tpu = config.accelerator == "tpu"
    decision = core.choose(trials, configured, config.min_speedup, speed_measurable=not tpu)
    chosen = next(c for c in found if c.flags == decision.chosen)
    chosen_args = list(chosen.container_args)
    where = _where(config, resources or {}, bf16, rounds or core.ROUNDS) + notes
    text = core.report(trials, decision, sizes, where, container_args, chosen_args)
    line = core.record(decision, chosen_args, sizes)
    description = f"{config.version_description}\n{line}" if config.version_description else line
    return Optimized(chosen_args, description, text, _metrics(trials, decision, configured, sizes), trials, decision)


def _trial(candidate, measured, reference: dict, config, compare):
    from vertex_serving.optimize import Trial

    if measured.error:
        return Trial(candidate.flags, {}, error=measured.error)
    found = compare(
        reference["predictions"],
        measured.predictions,
        config.smoke_atol,
        config.smoke_rtol,
        config.smoke_min_top1_agreement,
    )
    return Trial(
        candidate.flags,
        measured.p50_ms,
        measured.p99_ms,
        measured.throughput,
        found.max_abs_diff,
        found.top1_agreement,
        tuple(found.problems),
    )


def _where(config, resources: dict, bf16: bool, rounds: int) -> list[str]:
    """What the numbers are worth: the machine they were measured on, against the deployment's."""
    machine = config.machine_type or "the default machine type"
    asked = ", ".join(f"{k} {v}" for k, v in resources.items() if v) or "no particular machine"
    lines = [
        f"measured in this step on {len(os.sched_getaffinity(0))} CPUs (bfloat16: {'yes' if bf16 else 'no'}); "
        f"the step asked for {asked} to match the deployment on {machine}",
        f"candidates interleaved over {rounds} rounds; p50 is the median of the rounds' medians, throughput is one "
        "client at the largest batch size; latencies of the serving signature, without HTTP",
        f"tolerances: smoke_atol={config.smoke_atol:g}, smoke_rtol={config.smoke_rtol:g}, "
        f"smoke_min_top1_agreement={config.smoke_min_top1_agreement:g}; min_speedup={config.min_speedup:g}",
        "server-side batching is deployed as configured; it is not a candidate here",
    ]
    if config.accelerator == "tpu":
        lines.insert(
            0,
            f"**{machine} is a Cloud TPU: TPU speed cannot be measured here.** The numbers below are this CPU's; "
            "they only check that each candidate's outputs stay within tolerance, and the configured flags are kept",
        )
    elif config.accelerator == "gpu":
        lines.insert(0, f"GPU deployment: the step asked Vertex AI Pipelines for a {config.accelerator_type}")
    return lines


def _metrics(trials, decision, configured: frozenset, sizes) -> dict:
    """The chosen candidate's p50 per batch size and its speedup over the configured flags, for the Vertex AI UI."""
    by_flags = {t.flags: t for t in trials}
    chosen, asked = by_flags.get(decision.chosen), by_flags.get(configured)
    found = {"candidates": len(trials), "flags_changed": int(decision.chosen != configured)}
    for size in sizes:
        if chosen and size in chosen.p50_ms:
            found[f"chosen_p50_ms_batch_{size}"] = round(chosen.p50_ms[size], 4)
        if chosen and asked and size in chosen.p50_ms and size in asked.p50_ms:
            found[f"speedup_over_configured_batch_{size}"] = round(asked.p50_ms[size] / chosen.p50_ms[size], 4)
    return found


@component(base_image=COMPONENT_IMAGE, install_kfp_package=False)  # the image carries kfp
def optimize(
    config: str,
    container_args: list,
    cpu_limit: str,
    memory_limit: str,
    accelerator_type: str,
    model: dsl.Input[dsl.Model],
    reference: dsl.Input[dsl.Dataset],
    metrics: dsl.Output[dsl.Metrics],
    optimize_report: dsl.Output[dsl.Markdown],
) -> NamedTuple("Optimized", [("container_args", list), ("version_description", str)]):
    import json
    from pathlib import Path

    from components.optimize import optimize_model
    from vertex_serving.config import DeployConfig

    found = optimize_model(
        DeployConfig.from_parameters(json.loads(config)),
        container_args,
        Path(model.path),
        json.loads(Path(reference.path).read_text()),
        {"cpu": cpu_limit, "memory": memory_limit, "accelerator": accelerator_type},
    )
    for name, value in found.metrics.items():
        metrics.log_metric(name, value)
    Path(optimize_report.path).write_text(found.report)
    print(f"optimize: container args {found.container_args}")
    return found.container_args, found.version_description
