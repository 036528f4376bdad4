"""Promotes the new model to its share of traffic, proves it answers like itself, fast enough, or takes it back out.

The deploy step left the new DeployedModel at 0%; this step gives it the share asked for, sends the sample
instances through the endpoint to it, and compares its answers with the reference predictions within the
tolerances and its p99 latency with the budget. On failure, or when the run is cancelled (SIGTERM), the previous
traffic split is restored and the new DeployedModel undeployed in one call.
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
    are the ones it happened to get (None: every answer counts, as through a private endpoint's own URI).
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


def smoke_test_deployment(
    endpoint_name: str,
    deployed_model_id: str,
    previous_split: dict,
    target_split: dict,
    reference: dict,
    atol: float,
    rtol: float,
    min_top1: float,
    requests: int,
    p99_budget_ms: float,
) -> Findings:
    from vertex_serving.sdk import open_endpoint

    endpoint = open_endpoint(endpoint_name)
    with cancellable():
        try:
            if target_split and not endpoint.network:
                endpoint.update(traffic_split=target_split)
            predictions, first_ms, latencies = measure(
                endpoint, None if endpoint.network else deployed_model_id, reference["instances"], requests
            )
            found = compare(reference["predictions"], predictions, atol, rtol, min_top1)
            found.first_request_ms, found.p50_ms = first_ms, statistics.median(latencies)
            found.p99_ms = float(np.percentile(latencies, 99))
            if p99_budget_ms and found.p99_ms > p99_budget_ms:
                found.problems.append(
                    f"p99 latency {found.p99_ms:.1f} ms is over smoke_p99_latency_ms={p99_budget_ms:g}"
                )
        except BaseException:
            rollback(endpoint, deployed_model_id, previous_split)
            raise
        if found.problems:
            rollback(endpoint, deployed_model_id, previous_split)
    return found


def rollback(endpoint, deployed_model_id: str, previous_split: dict) -> None:
    """Previous split back and the new DeployedModel undeployed, in one call."""
    if endpoint.network or not previous_split:
        endpoint.undeploy(deployed_model_id=deployed_model_id)
    else:
        endpoint.undeploy(deployed_model_id=deployed_model_id, traffic_split={**previous_split, deployed_model_id: 0})


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


def report(findings: Findings, endpoint_name: str, deployed_model_id: str, model_name: str, tolerances: dict) -> str:
    verdict = "failed: " + "; ".join(findings.problems) if findings.problems else "passed"
    rows = [
        ("model version", f"`{model_name}`"),
        ("endpoint", f"`{endpoint_name}`"),
        ("deployed model", deployed_model_id),
        (
            "max abs difference",
            f"{findings.max_abs_diff:.3g} (atol {tolerances['atol']:g}, rtol {tolerances['rtol']:g})",
        ),
        ("top-1 agreement", "n/a" if findings.top1_agreement is None else f"{findings.top1_agreement:.1%}"),
        ("first request", f"{findings.first_request_ms:.1f} ms"),
        ("p50 / p99 latency", f"{findings.p50_ms:.1f} / {findings.p99_ms:.1f} ms"),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return f"# Smoke test {verdict.split(':')[0]}\n\n{verdict}\n\n| check | result |\n|---|---|\n{table}\n"


@component(base_image=COMPONENT_IMAGE, install_kfp_package=False)  # the image carries kfp
def smoke_test(
    project: str,
    location: str,
    api_endpoint: str,
    vertex_endpoint: dsl.Input[VertexEndpoint],
    vertex_model: dsl.Input[VertexModel],
    deployed_model_id: str,
    previous_traffic_split: str,
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

    from components.smoke_test import SmokeTestFailed, report, retire_zero_traffic, smoke_test_deployment
    from vertex_serving.sdk import init_vertex

    init_vertex(project, location, api_endpoint)
    endpoint_name = vertex_endpoint.metadata["resourceName"]
    found = smoke_test_deployment(
        endpoint_name,
        deployed_model_id,
        json.loads(previous_traffic_split),
        json.loads(target_traffic_split),
        json.loads(Path(reference.path).read_text()),
        smoke_atol,
        smoke_rtol,
        smoke_min_top1_agreement,
        smoke_requests,
        smoke_p99_latency_ms,
    )
    for name in ("max_abs_diff", "first_request_ms", "p50_ms", "p99_ms"):
        metrics.log_metric(name, round(getattr(found, name), 4))
    if found.top1_agreement is not None:
        metrics.log_metric("top1_agreement", found.top1_agreement)
    from components.serving_log import optimization_log_section

    Path(smoke_report.path).write_text(
        report(
            found,
            endpoint_name,
            deployed_model_id,
            vertex_model.metadata["resourceName"],
            {"atol": smoke_atol, "rtol": smoke_rtol},
        )
        + optimization_log_section(api_endpoint, project, location, endpoint_name, deployed_model_id)
    )
    if found.problems:
        raise SmokeTestFailed(
            f"smoke test failed for DeployedModel {deployed_model_id}: {'; '.join(found.problems)}; "
            "the previous traffic split is restored and the new DeployedModel undeployed"
        )
    if undeploy_zero_traffic:
        retired = retire_zero_traffic(endpoint_name, vertex_model.metadata["resourceName"], deployed_model_id)
        print(f"smoke test: undeployed DeployedModels with no traffic: {retired or 'none'}")
    print(
        f"smoke test passed: p50 {found.p50_ms:.1f} ms, p99 {found.p99_ms:.1f} ms, max abs diff {found.max_abs_diff:.3g}"
    )
