"""Promotes the new model in steps, the canary share and then its target share, smoke-testing it at each.

The model already passed its trial on an endpoint of its own; the deploy step left it at 0% here. At each step
the sample instances go through the endpoint, only the new model's answers count, and they are compared with the
reference predictions within the tolerances and the p99 latency budget. On a failure, or when the run is
cancelled (SIGTERM), the previous traffic split is restored and the new DeployedModel undeployed in one call.
"""

import contextlib
import signal
import statistics
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from google_cloud_pipeline_components.types.artifact_types import VertexEndpoint, VertexModel
from kfp import dsl
from kfp.dsl.component_decorator import component  # importable inside a running component, unlike dsl.component

from components import COMPONENT_IMAGE

MAX_TRIES = 200  # requests to wait for a canary with a small share of traffic


class SmokeTestFailed(RuntimeError):
    """The new model disagreed with its reference or was too slow; it has been taken out of the endpoint."""


class Cancelled(BaseException):
    """The run was cancelled (SIGTERM) while the new model was being tried: not an Exception, so nothing swallows it."""


@contextlib.contextmanager
def cancellable():
    """SIGTERM, which cancels a task on Vertex AI Pipelines and on localvertex, raises Cancelled here."""

    def cancel(signum, frame):
        raise Cancelled("the run was cancelled")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, cancel)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class Findings:
    max_abs_diff: float = 0.0
    top1_agreement: float | None = None
    first_request_ms: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    problems: list = field(default_factory=list)
    stage: str = ""


def compare(reference: list, predictions: list, atol: float, rtol: float, min_top1: float) -> Findings:
    """Numbers within atol + rtol * |reference|; for class scores (rows of several values) top-1 agreement too."""
    found = Findings()
    if len(reference) != len(predictions):
        found.problems.append(f"{len(predictions)} predictions for {len(reference)} instances")
        return found
    for name, want, got in _outputs(reference, predictions):
        if want.dtype.kind not in "fiub":
            if want.tolist() != got.tolist():
                found.problems.append(f"output {name!r} differs: {got.tolist()[:3]} instead of {want.tolist()[:3]}")
            continue
        if want.shape != got.shape:
            found.problems.append(f"output {name!r} has shape {list(got.shape)} instead of {list(want.shape)}")
            continue
        diff = np.abs(got.astype(float) - want.astype(float))
        found.max_abs_diff = max(found.max_abs_diff, float(diff.max()) if diff.size else 0.0)
        if not np.allclose(got, want, atol=atol, rtol=rtol):
            worst = np.unravel_index(np.argmax(diff - rtol * np.abs(want)), diff.shape)
            found.problems.append(
                f"output {name!r} differs by up to {diff.max():.3g} (smoke_atol={atol:g}, smoke_rtol={rtol:g}); "
                f"at {list(map(int, worst))}: {float(got[worst]):.6g} instead of {float(want[worst]):.6g}"
            )
        if want.ndim == 2 and want.shape[1] > 1:
            agreement = float(np.mean(want.argmax(1) == got.argmax(1)))
            found.top1_agreement = agreement if found.top1_agreement is None else min(found.top1_agreement, agreement)
            if agreement < min_top1:
                found.problems.append(
                    f"output {name!r}: top-1 agreement {agreement:.1%} is below smoke_min_top1_agreement={min_top1:g}"
                )
    return found


def _outputs(reference: list, predictions: list):
    if reference and isinstance(reference[0], dict):
        for name in reference[0]:
            yield name, np.array([r[name] for r in reference]), np.array([p.get(name) for p in predictions])
    else:
        yield "predictions", np.array(reference), np.array(predictions)


def measure(endpoint, deployed_model_id: str | None, instances: list, requests: int) -> tuple[list, float, list[float]]:
    """Predictions for all samples (the first request, timed), then `requests` single-instance latencies.

    Only answers from `deployed_model_id` count: a public endpoint routes by traffic split, so a canary's requests
    are the ones it happened to get (None: every answer counts, as on an endpoint the model has to itself).
    """

    def call(batch: list):
        for _ in range(MAX_TRIES):
            started = time.perf_counter()
            answer = endpoint.predict(instances=batch)
            elapsed = (time.perf_counter() - started) * 1e3
            if deployed_model_id is None or answer.deployed_model_id == deployed_model_id:
                return answer, elapsed
        raise SmokeTestFailed(
            f"DeployedModel {deployed_model_id} answered none of {MAX_TRIES} requests: does it have traffic?"
        )

    first, first_ms = call(instances)
    latencies = [call([instances[i % len(instances)]])[1] for i in range(requests)]
    return first.predictions, first_ms, latencies


@dataclass(frozen=True)
class Checks:
    """The smoke test's tolerances and latency budget, as the pipeline parameters `smoke_*` give them."""

    atol: float
    rtol: float
    min_top1: float
    requests: int
    p99_budget_ms: float


def smoke(endpoint, only_from: str | None, reference: dict, checks: Checks, stage: str) -> Findings:
    """The reference instances through `endpoint`, answers from `only_from` compared and timed."""
    predictions, first_ms, latencies = measure(endpoint, only_from, reference["instances"], checks.requests)
    found = compare(reference["predictions"], predictions, checks.atol, checks.rtol, checks.min_top1)
    found.stage, found.first_request_ms = stage, first_ms
    found.p50_ms, found.p99_ms = statistics.median(latencies), float(np.percentile(latencies, 99))
    if checks.p99_budget_ms and found.p99_ms > checks.p99_budget_ms:
        found.problems.append(
            f"p99 latency {found.p99_ms:.1f} ms is over smoke_p99_latency_ms={checks.p99_budget_ms:g}"
        )
    return found


def promote(
    endpoint_name: str, deployed_model_id: str, previous_split: dict, steps: list[dict], reference: dict, checks: Checks
) -> list[Findings]:
    """Gives the new model each split of `steps` in turn and smoke-tests it at each; the first failure rolls back.

    The model has passed its trial on an endpoint of its own; the canary step then shows it behaves the same
    in place, on a small share of users, before it takes its full share.
    """
    from vertex_serving.sdk import open_endpoint

    endpoint = open_endpoint(endpoint_name)
    if endpoint.network:  # a private endpoint has no split: its URI reaches its one model
        stages = [("its private endpoint", None)]
    else:
        stages = [(f"{s[deployed_model_id]}% of traffic", s) for s in steps if s.get(deployed_model_id)]
    results: list[Findings] = []
    with cancellable():
        try:
            for stage, split in stages:
                if split:
                    endpoint.update(traffic_split=split)
                only_from = None if endpoint.network else deployed_model_id
                results.append(smoke(endpoint, only_from, reference, checks, stage))
                if results[-1].problems:
                    break
        except BaseException:
            rollback(endpoint, deployed_model_id, previous_split)
            raise
        if results and results[-1].problems:
            rollback(endpoint, deployed_model_id, previous_split)
    return results


def rollback(endpoint, deployed_model_id: str, previous_split: dict) -> None:
    """Previous split back and the new DeployedModel undeployed, in one call."""
    if endpoint.network or not previous_split:
        endpoint.undeploy(deployed_model_id=deployed_model_id)
    else:
        endpoint.undeploy(deployed_model_id=deployed_model_id, traffic_split={**previous_split, deployed_model_id: 0})


def make_default(model_name: str) -> None:
    """The version that passed takes the `default` alias: `Model(name)` now means the model users are served."""
    from google.cloud import aiplatform

    name, _, version = model_name.partition("@")
    if version:
        aiplatform.models.ModelRegistry(name).add_version_aliases(["default"], version)


def retire_zero_traffic(endpoint_name: str, model_name: str, keep: str) -> list[str]:
    """Undeploys the endpoint's other DeployedModels of the same Model that get no traffic; returns their ids."""
    from vertex_serving.sdk import open_endpoint

    endpoint = open_endpoint(endpoint_name)
    split = endpoint.traffic_split
    model = model_name.split("@")[0]
    retired = [
        d.id
        for d in endpoint.list_models()
        if d.id != keep and d.model.split("@")[0] == model and not split.get(d.id, 0) and not endpoint.network
    ]
    for deployed_model_id in retired:
        endpoint.undeploy(deployed_model_id=deployed_model_id)
    return retired


def report(stages: list[Findings], endpoint_name: str, deployed_model_id: str, model_name: str, checks: Checks) -> str:
    """Markdown the Vertex AI UI renders: the verdict first, then one row per stage the model was tried at."""
    failed = [f for f in stages if f.problems]
    verdict = f"failed at {failed[0].stage}: " + "; ".join(failed[0].problems) if failed else "passed"
    rows = "\n".join(
        f"| {f.stage} | {'failed' if f.problems else 'passed'} | {f.max_abs_diff:.3g} | "
        f"{'n/a' if f.top1_agreement is None else f'{f.top1_agreement:.1%}'} | {f.first_request_ms:.1f} ms | "
        f"{f.p50_ms:.1f} / {f.p99_ms:.1f} ms |"
        for f in stages
    )
    return (
        f"# Smoke test {verdict.split(' ')[0].rstrip(':')}\n\n{verdict}\n\n"
        f"Model version `{model_name}`, DeployedModel {deployed_model_id} on `{endpoint_name}`; tolerances: "
        f"atol {checks.atol:g}, rtol {checks.rtol:g}, top-1 agreement at least {checks.min_top1:g}.\n\n"
        "| stage | verdict | max abs difference | top-1 agreement | first request | p50 / p99 latency |\n"
        f"|---|---|---|---|---|---|\n{rows}\n"
    )


@component(base_image=COMPONENT_IMAGE, install_kfp_package=False)  # the image carries kfp
def smoke_test(
    project: str,
    location: str,
    api_endpoint: str,
    vertex_endpoint: dsl.Input[VertexEndpoint],
    vertex_model: dsl.Input[VertexModel],
    deployed_model_id: str,
    previous_traffic_split: str,
    canary_traffic_split: str,
    target_traffic_split: str,
    reference: dsl.Input[dsl.Dataset],
    smoke_atol: float,
    smoke_rtol: float,
    smoke_min_top1_agreement: float,
    smoke_requests: int,
    smoke_p99_latency_ms: float,
    undeploy_zero_traffic: bool,
    metrics: dsl.Output[dsl.Metrics],
    smoke_report: dsl.Output[dsl.Markdown],
):
    import json
    from pathlib import Path

    from components.smoke_test import (
        Checks,
        SmokeTestFailed,
        make_default,
        promote,
        report,
        retire_zero_traffic,
    )
    from vertex_serving.sdk import init_vertex

    init_vertex(project, location, api_endpoint)
    endpoint_name, model_name = vertex_endpoint.metadata["resourceName"], vertex_model.metadata["resourceName"]
    checks = Checks(smoke_atol, smoke_rtol, smoke_min_top1_agreement, smoke_requests, smoke_p99_latency_ms)
    steps = [s for s in (json.loads(canary_traffic_split), json.loads(target_traffic_split)) if s]
    stages = promote(
        endpoint_name,
        deployed_model_id,
        json.loads(previous_traffic_split),
        steps,
        json.loads(Path(reference.path).read_text()),
        checks,
    )
    if not stages:  # traffic_percentage=0: the trial was its test, and it takes no traffic yet
        Path(smoke_report.path).write_text(
            f"# Smoke test passed\n\nDeployedModel {deployed_model_id} passed its trial and stays at 0% "
            "(traffic_percentage=0): give it traffic with `Endpoint.update(traffic_split=...)`.\n"
        )
        print(f"smoke test: DeployedModel {deployed_model_id} stays at 0% (traffic_percentage=0)")
        return
    last = stages[-1]
    for name in ("max_abs_diff", "first_request_ms", "p50_ms", "p99_ms"):
        metrics.log_metric(name, round(getattr(last, name), 4))
    if last.top1_agreement is not None:
        metrics.log_metric("top1_agreement", last.top1_agreement)
    metrics.log_metric("stages_passed", sum(not f.problems for f in stages))
    from components.serving_log import optimization_log_section

    Path(smoke_report.path).write_text(
        report(stages, endpoint_name, deployed_model_id, model_name, checks)
        + optimization_log_section(api_endpoint, project, location, endpoint_name, deployed_model_id)
    )
    if last.problems:
        raise SmokeTestFailed(
            f"smoke test failed for DeployedModel {deployed_model_id} at {last.stage}: {'; '.join(last.problems)}; "
            "the previous traffic split is restored and the new DeployedModel undeployed"
        )
    make_default(model_name)
    if undeploy_zero_traffic:
        retired = retire_zero_traffic(endpoint_name, model_name, deployed_model_id)
        print(f"smoke test: undeployed DeployedModels with no traffic: {retired or 'none'}")
    print(
        f"smoke test passed at {', '.join(f.stage for f in stages)}: p50 {last.p50_ms:.1f} ms, "
        f"p99 {last.p99_ms:.1f} ms, max abs diff {last.max_abs_diff:.3g}; {model_name} is the default version"
    )
