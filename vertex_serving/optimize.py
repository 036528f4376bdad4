"""Measured optimization: the optimized runtime's flags tried on the user's own model, kept only where they pay.

Vertex AI's "Optimized TensorFlow runtime" page asks to test precompilation and compression before production:
XLA helps some models and batch sizes and slows others, and compression costs accuracy. Each candidate is loaded
with the same TF Serving library the model server uses, its warmup records are replayed, and then the candidates are
timed interleaved (A B A B ..., several rounds, medians) at the batch sizes the warmup file holds, which are the
ones production sends. A flag is kept only where it is at least `min_speedup` faster at every one of those batch
sizes and the outputs stay within the smoke test's tolerances.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vertex_serving.catalog import Catalog
from vertex_serving.config import DeployConfig
from vertex_serving.errors import InvalidConfig
from vertex_serving.options import RuntimeOptions
from vertex_serving.rules import validate

TUNABLE = ("allow_precompilation", "allow_compression", "disable_optimizer")
PLAIN = "plain"
ROUNDS = 5
ROUND_SECONDS = 0.1  # per candidate and batch size in each round; calls are at least MIN_CALLS, at most MAX_CALLS
MIN_CALLS, MAX_CALLS = 3, 50
NO_BF16 = (
    "allow_compression: not tried, this CPU has no bfloat16 support (avx512_bf16 or amx_bf16), so it has no effect here"
)


@dataclass(frozen=True)
class Candidate:
    """One set of the tunable flags, as the rules resolve it (its options and container args)."""

    flags: frozenset[str]
    options: RuntimeOptions
    container_args: tuple[str, ...]

    @property
    def name(self) -> str:
        return name_of(self.flags)


def name_of(flags: frozenset[str]) -> str:
    return " + ".join(f for f in TUNABLE if f in flags) or PLAIN


def configured_flags(options: RuntimeOptions) -> frozenset[str]:
    return frozenset(f for f in TUNABLE if getattr(options, f))


def candidates(config: DeployConfig, catalog: Catalog, bf16: bool) -> tuple[list[Candidate], list[str]]:
    """The configured flags and every combination of the tunable flags that the rules accept and that has an effect
    here; returns them (plain first) with notes on what was not tried and why."""
    notes = []
    tried = [f for f in TUNABLE if f != "allow_compression" or bf16]
    if not bf16:
        notes.append(NO_BF16)
    found: dict[frozenset[str], Candidate] = {}
    wanted = [frozenset(c) for n in range(len(tried) + 1) for c in itertools.combinations(tried, n)]
    wanted.append(frozenset(f for f in TUNABLE if getattr(config, f)))  # what the user wrote, tried whatever it is
    for flags in wanted:
        try:
            plan = validate(dataclasses.replace(config, **{f: f in flags for f in TUNABLE}), catalog)
        except InvalidConfig as e:
            if not ("disable_optimizer" in flags and len(flags) > 1):  # that one contradicts itself: no news
                notes.append(f"{name_of(flags)}: not tried, the rules refuse it ({e.errors[0]})")
            continue
        actual = configured_flags(plan.options)  # tpu_mode='preconverted' turns disable_optimizer on by itself
        found.setdefault(actual, Candidate(actual, plan.options, plan.container_args))
    return sorted(found.values(), key=lambda c: (len(c.flags), c.name != PLAIN, c.name)), notes


# Measuring -----------------------------------------------------------------------------------------------------


@dataclass
class Measured:
    """A candidate's numbers: latency per batch size (ms), throughput at the largest (instances/s), its predictions
    on the reference instances (TF Serving's row format), or the error that stopped it."""

    name: str
    load_seconds: float = 0.0
    warmup_seconds: float = 0.0
    p50_ms: dict[int, float] = field(default_factory=dict)
    p99_ms: dict[int, float] = field(default_factory=dict)
    throughput: float = 0.0
    predictions: list | None = None
    error: str = ""


def measure(
    model_dir: Path,
    options: Mapping[str, RuntimeOptions],
    instances: list,
    rounds: int = ROUNDS,
    round_seconds: float = ROUND_SECONDS,
) -> tuple[list[int], list[Measured]]:
    """Batch sizes measured and each candidate's numbers, measured in a fresh process.

    A fresh process, because XLA reads its CPU flag once, when TensorFlow first starts in a process; started with its
    own command (not multiprocessing's spawn), so that it never re-runs the caller's main module.
    """
    import pickle
    import subprocess
    import sys

    request = pickle.dumps((str(model_dir), dict(options), instances, rounds, round_seconds))
    done = subprocess.run(
        [sys.executable, "-c", "import vertex_serving.optimize as o; o._measure_main()"],
        input=request,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"measuring the candidates failed: {lines[-1] if lines else done.returncode}")
    return pickle.loads(done.stdout)


def _measure_main() -> None:
    """The measuring process: arguments in on stdin, results out on stdout (both pickled, between our processes)."""
    import pickle
    import sys

    arguments = pickle.loads(sys.stdin.buffer.read())
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # stdout carries the results alone, whatever else prints
    out.write(pickle.dumps(_measure(*arguments)))


def _measure(model_dir: str, options: dict, instances: list, rounds: int, round_seconds: float):
    from vertex_serving.tfserving.servable import enable_xla_on_cpu

    if any(o.allow_precompilation for o in options.values()):
        enable_xla_on_cpu()  # before TensorFlow starts in this process
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from vertex_serving.tfserving.errors import ServingError
    from vertex_serving.tfserving.servable import Servable
    from vertex_serving.tfserving.tensors import format_predict, parse_predict
    from vertex_serving.tfserving.warmup import read_warmup_records, replay

    records = read_warmup_records(Path(model_dir))
    requests: dict[int, tuple[str, dict]] = {}
    replay(records, lambda name, feeds: requests.setdefault(_batch(feeds), (name, feeds)))
    results = {name: Measured(name) for name in options}
    loaded = {}
    for name, option in options.items():
        try:
            started = time.perf_counter()
            servable = Servable(Path(model_dir), 1, option)
            results[name].load_seconds = time.perf_counter() - started
            started = time.perf_counter()
            replay(records, lambda sig, feeds, s=servable: s.signature(sig).run(feeds))
            results[name].warmup_seconds = time.perf_counter() - started
            signature = servable.signature(None)
            request = parse_predict({"instances": instances}, signature)
            outputs = format_predict(signature.run(request.feeds), False)["predictions"]
            results[name].predictions = json.loads(json.dumps(outputs, default=lambda a: np.asarray(a).tolist()))
            loaded[name] = servable
        except ServingError as e:
            results[name].error = e.message
        except Exception as e:  # a candidate that breaks the model is a finding, not a crash of the step
            results[name].error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    if not requests and loaded:  # no warmup file: the reference instances, one batch
        signature = next(iter(loaded.values())).signature(None)
        request = parse_predict({"instances": instances}, signature)
        requests[request.batch_size or 1] = (signature.name, request.feeds)
    sizes = sorted(requests)

    def call(servable, size: int) -> float:
        name, feeds = requests[size]
        started = time.perf_counter()
        servable.signature(name).run(feeds)
        return time.perf_counter() - started

    first = next(iter(loaded.values()), None)
    calls = {s: _calls(min(call(first, s) for _ in range(3)), round_seconds) for s in sizes} if first else {}
    per_round: dict[tuple[str, int], list[float]] = {}
    every: dict[tuple[str, int], list[float]] = {}
    names = list(loaded)
    for number in range(rounds):
        shift = number % len(names) if names else 0
        for name in names[shift:] + names[:shift]:  # interleaved, and each candidate takes its turn going first
            for size in sizes:
                times = [call(loaded[name], size) for _ in range(calls[size])]
                per_round.setdefault((name, size), []).append(statistics.median(times))
                every.setdefault((name, size), []).extend(times)
    for name in names:
        found = results[name]
        found.p50_ms = {s: statistics.median(per_round[name, s]) * 1e3 for s in sizes}
        found.p99_ms = {s: float(np.percentile(every[name, s], 99)) * 1e3 for s in sizes}
        found.throughput = sizes[-1] / (found.p50_ms[sizes[-1]] / 1e3) if sizes else 0.0
        loaded[name].close()
    return sizes, list(results.values())


def _batch(feeds: dict) -> int:
    first = next(iter(feeds.values()))
    return int(first.shape[0]) if getattr(first, "ndim", 0) else 1


def _calls(latency: float, round_seconds: float) -> int:
    return max(MIN_CALLS, min(MAX_CALLS, int(round_seconds / max(latency, 1e-6))))


# Choosing ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    """What choosing needs of one candidate: its flags, its latencies, and whether its outputs stayed in tolerance."""

    flags: frozenset[str]
    p50_ms: Mapping[int, float]
    p99_ms: Mapping[int, float] = field(default_factory=dict)
    throughput: float = 0.0
    max_abs_diff: float = 0.0
    top1_agreement: float | None = None
    accuracy_problems: tuple[str, ...] = ()
    error: str = ""
    warmup_seconds: float = 0.0  # replaying the warmup file: where XLA compiles

    @property
    def name(self) -> str:
        return name_of(self.flags)

    @property
    def usable(self) -> bool:
        return not self.error and not self.accuracy_problems


@dataclass(frozen=True)
class Decision:
    chosen: frozenset[str]
    reasons: Mapping[str, str]  # candidate name -> its verdict with the reason
    speedups: Mapping[str, Mapping[int, float]]  # candidate name -> plain's p50 / its p50, per batch size

    @property
    def chosen_name(self) -> str:
        return name_of(self.chosen)


def choose(trials: Sequence[Trial], configured: frozenset[str], min_speedup: float, speed_measurable: bool = True):
    """The fastest candidate that is at least `min_speedup` faster than plain and than each of its own subsets at
    every batch size, within tolerance; plain when none is. Where speed cannot be measured, the configured flags."""
    by_flags = {t.flags: t for t in trials}
    plain = by_flags.get(frozenset())
    speedups = {
        t.name: {s: plain.p50_ms[s] / t.p50_ms[s] for s in plain.p50_ms if t.p50_ms.get(s)}
        for t in trials
        if plain is not None and not plain.error and not t.error
    }
    reasons: dict[str, str] = {}
    for t in trials:
        if t.error:
            reasons[t.name] = f"failed: {t.error}"
        elif t.accuracy_problems:
            reasons[t.name] = "outside tolerance: " + "; ".join(t.accuracy_problems)
    if not speed_measurable:
        for t in trials:
            reasons.setdefault(t.name, "within tolerance on this CPU; its speed on the target cannot be measured here")
        kept = reasons.get(name_of(configured), "not measured")
        reasons[name_of(configured)] = f"chosen: the configured flags are kept ({kept})"
        return Decision(configured, reasons, speedups)
    if plain is None or plain.error:
        why = plain.error if plain is not None else "it was not measured"
        reasons[PLAIN] = f"failed: {why}"
        reasons[name_of(configured)] = f"chosen: the configured flags, as nothing can be compared with plain ({why})"
        return Decision(configured, reasons, speedups)
    qualified = []
    for t in trials:
        if not t.flags or t.name in reasons:
            continue
        slowest = _slowest(plain, t)
        if slowest[1] < min_speedup:
            reasons[t.name] = (
                f"not kept: {slowest[1]:.2f}x plain at batch {slowest[0]}, below min_speedup={min_speedup:g}"
            )
            continue
        subsets = [by_flags[s] for s in by_flags if s and s < t.flags and by_flags[s].usable]
        weak = [(s, _slowest(s, t)) for s in subsets if _slowest(s, t)[1] < min_speedup]
        if weak:
            subset, (size, ratio) = weak[0]
            extra = ", ".join(sorted(t.flags - subset.flags))
            reasons[t.name] = (
                f"not kept: {extra} adds only {ratio:.2f}x over {subset.name} at batch {size}, "
                f"below min_speedup={min_speedup:g}"
            )
            continue
        qualified.append(t)
    winner = max(qualified, key=lambda t: _mean_speedup(plain, t), default=plain)
    for t in qualified:
        if t is not winner:
            reasons[t.name] = f"faster within tolerance, but {winner.name} is faster still"
    if winner is plain:
        reasons[PLAIN] = f"chosen: no other candidate is {min_speedup:g}x faster at every batch size within tolerance"
    else:
        slowest = _slowest(plain, winner)
        reasons[winner.name] = (
            f"chosen: at least {slowest[1]:.2f}x plain at every batch size (batch {slowest[0]}), within tolerance"
        )
        reasons.setdefault(PLAIN, f"not chosen: {winner.name} is faster")
    return Decision(winner.flags, reasons, speedups)


def _slowest(base: Trial, t: Trial) -> tuple[int, float]:
    """The batch size where `t` gains least over `base`, and that ratio of latencies."""
    ratios = {s: base.p50_ms[s] / t.p50_ms[s] for s in base.p50_ms if t.p50_ms.get(s)}
    size = min(ratios, key=ratios.get)
    return size, ratios[size]


def _mean_speedup(base: Trial, t: Trial) -> float:
    ratios = [base.p50_ms[s] / t.p50_ms[s] for s in base.p50_ms if t.p50_ms.get(s)]
    return math.exp(statistics.fmean(math.log(r) for r in ratios)) if ratios else 1.0


# Reporting -----------------------------------------------------------------------------------------------------


def report(
    trials: Sequence[Trial],
    decision: Decision,
    sizes: Sequence[int],
    where: Sequence[str],
    configured_args: Sequence[str],
    chosen_args: Sequence[str],
) -> str:
    """The step's Markdown report: where it measured, one row per candidate, and the decision with its reasons."""
    configured = configured_flags_of(configured_args)
    largest = sizes[-1] if sizes else None
    head = [
        "candidate",
        *[f"p50 / p99 ms @{s}" for s in sizes],
        f"inst/s @{largest}",
        "warmup s",
        "max abs diff",
        "top-1",
        "verdict",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in trials:
        mark = " (configured)" if t.flags == configured else ""
        cells = [f"`{t.name}`{mark}"]
        cells += [f"{t.p50_ms[s]:.3f} / {t.p99_ms.get(s, 0.0):.3f}" if s in t.p50_ms else "-" for s in sizes]
        cells.append(f"{t.throughput:.0f}" if t.throughput else "-")
        cells.append("-" if t.error else f"{t.warmup_seconds:.2f}")
        cells.append("-" if t.error else f"{t.max_abs_diff:.3g}")
        cells.append("n/a" if t.top1_agreement is None else f"{t.top1_agreement:.1%}")
        cells.append(decision.reasons.get(t.name, "").replace("|", "/"))
        lines.append("| " + " | ".join(cells) + " |")
    changed = list(configured_args) != list(chosen_args)
    summary = f"Chosen: `{decision.chosen_name}`; container args {_args(chosen_args)}" + (
        f" instead of the configured {_args(configured_args)}." if changed else ", as configured."
    )
    where_lines = "\n".join(f"- {line}" for line in where)
    return f"# Optimization measured\n\n{summary}\n\n{where_lines}\n\n" + "\n".join(lines) + "\n"


def record(decision: Decision, chosen_args: Sequence[str], sizes: Sequence[int]) -> str:
    """One line for the model version's description: what was chosen and why the others were not, for the next run."""
    why = []
    for name, reason in decision.reasons.items():
        if name == PLAIN or reason.startswith("chosen"):
            continue
        verdict, _, detail = reason.partition(": ")
        short = detail.split(", below")[0] if verdict == "not kept" else verdict.split(",")[0]
        why.append(f"{name}: {short}")
    return (
        f"vsp-optimize: chose {decision.chosen_name} args={' '.join(chosen_args) or '(none)'} "
        f"batch={','.join(map(str, sizes))}" + (f" ({'; '.join(why)})" if why else "")
    )


def configured_flags_of(container_args: Sequence[str]) -> frozenset[str]:
    from vertex_serving.options import parse_container_args

    return configured_flags(parse_container_args(list(container_args))[0])


def _args(args: Sequence[str]) -> str:
    return " ".join(f"`{a}`" for a in args) if args else "(none)"


# The optimized runtime's log ------------------------------------------------------------------------------------

_OPTIMIZATION_LINE_MARKS = (
    *(f"{flag}=" for flag in (*TUNABLE, "use_tfrt", "saved_model_tags")),
    "converter_options_string:",
    "server-side batching:",
    "warmup requests replayed",
    "Cloud TPU v5e emulated",
)


def optimization_lines(log_text: str) -> list[str]:
    """The lines of a model server's log that tell what the runtime did with its flags and its warmup file."""
    return [line.strip() for line in log_text.splitlines() if any(mark in line for mark in _OPTIMIZATION_LINE_MARKS)]


def log_filter(project: str, location: str, endpoint_id: str, deployed_model_id: str) -> str:
    """The Cloud Logging filter for one DeployedModel's serving-container logs on Vertex AI."""
    return (
        'resource.type="aiplatform.googleapis.com/Endpoint" '
        f'AND resource.labels.endpoint_id="{endpoint_id}" AND resource.labels.location="{location}" '
        f'AND labels.deployed_model_id="{deployed_model_id}"'
        + (
            f' AND logName="projects/{project}/logs/aiplatform.googleapis.com%2Fprediction_container"'
            if project
            else ""
        )
    )
