"""The retrain pipeline's gate: the new model is deployed only if it beats the endpoint's champion on the eval set.

The new model is scored on the eval set the way TF Serving serves it; the champion is the model version that takes
the largest share of the endpoint's traffic, and its score is the one its version description records (written by
the gate of the run that deployed it, from `describe`). A first run, or a champion with no recorded score for the
metric, deploys.
"""

import json
import math
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
from kfp import dsl
from kfp.dsl.component_decorator import component  # importable inside a running component, unlike dsl.component

from components import COMPONENT_IMAGE
from vertex_serving.errors import UserError
from vertex_serving.sdk import read_text

METRICS = {"accuracy": "higher", "mean_absolute_error": "lower", "mean_squared_error": "lower"}
BATCH = 256  # eval instances per signature run: a large eval set never becomes one huge request
CLASS_OUTPUTS = ("probabilities", "scores")  # the output that holds the class scores, when a model has several
ROW_FIX = 'write one {"instance": <a prediction instance>, "label": <number>} per line'
_RECORD = re.compile(r"vsp-gate: (?P<metric>\w+)=(?P<value>\S+)")


class Champion(NamedTuple):
    """The model version serving most of the endpoint's traffic (`projects/.../models/ID@VERSION`) and its version
    description; both None when there is no endpoint or it serves no traffic."""

    version: str | None
    description: str | None


def check_gate(metric: str, min_improvement: float) -> str:
    """The metric's direction ("higher" or "lower" is better)."""
    if metric not in METRICS:
        raise UserError("gate_metric", metric, "is not a metric the gate computes", f"use one of {', '.join(METRICS)}")
    if not min_improvement >= 0:  # NaN too
        raise UserError(
            "min_improvement", min_improvement, "is not 0 or more", "give 0 or more; 0 deploys any improvement"
        )
    return METRICS[metric]


def predicted_class(prediction: object) -> int:
    """The argmax of the class scores; a single score is a binary classifier's probability of class 1."""
    if isinstance(prediction, dict):
        prediction = _pick(prediction, CLASS_OUTPUTS)
    scores = np.asarray(prediction, dtype=np.float64).ravel()
    if scores.size == 1:
        return int(scores[0] >= 0.5)
    return int(np.argmax(scores))


def predicted_value(prediction: object) -> float:
    """The prediction as a scalar: the value itself, or the first element of a vector."""
    if isinstance(prediction, dict):
        prediction = _pick(prediction, ())
    return float(np.asarray(prediction, dtype=np.float64).ravel()[0])


def evaluate(model_dir: Path, eval_uri: str, metric: str) -> float:
    """The metric of the SavedModel at `model_dir` on the eval set, computed from the predictions TF Serving makes."""
    from vertex_serving.options import RuntimeOptions
    from vertex_serving.tfserving.errors import ServingError
    from vertex_serving.tfserving.servable import Servable

    check_gate(metric, 0.0)
    instances, labels = read_eval_set(eval_uri)
    try:
        servable = Servable(model_dir, 1, RuntimeOptions())
    except ServingError as e:
        raise UserError(
            "model", str(model_dir), f"does not load as TF Serving loads it ({e.message})", "fix the export"
        ) from None
    try:
        signature = servable.signature(None)
        predictions = []
        for start in range(0, len(instances), BATCH):
            predictions += _predict(signature, instances[start : start + BATCH], eval_uri)
    finally:
        servable.close()
    try:
        if metric == "accuracy":
            return float(np.mean([predicted_class(p) == label for p, label in zip(predictions, labels, strict=True)]))
        errors = np.array([predicted_value(p) for p in predictions]) - np.array(labels, dtype=np.float64)
    except (TypeError, ValueError, IndexError) as e:
        raise UserError(
            "model",
            str(model_dir),
            f"gives predictions the gate cannot score with {metric} ({e})",
            "export one numeric output, or name the class scores 'probabilities' or 'scores'",
        ) from None
    return float(np.mean(np.abs(errors)) if metric == "mean_absolute_error" else np.mean(errors**2))


def read_eval_set(uri: str) -> tuple[list, list[float]]:
    """Instances and labels from JSON Lines at a local path or gs://."""
    instances, labels = [], []
    for number, line in enumerate(read_text(uri, "eval_data_uri").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError("eval_data_uri", uri, f"is not JSON Lines ({e.msg} on line {number})", ROW_FIX) from None
        label = row.get("label") if isinstance(row, dict) else None
        if not isinstance(row, dict) or "instance" not in row:
            raise UserError("eval_data_uri", uri, f"has no 'instance' on line {number}", ROW_FIX)
        if isinstance(label, bool) or not isinstance(label, int | float):
            raise UserError("eval_data_uri", uri, f"has label {label!r} on line {number}, not a number", ROW_FIX)
        instances.append(row["instance"])
        labels.append(label)
    if not instances:
        raise UserError("eval_data_uri", uri, "holds no rows", ROW_FIX)
    return instances, labels


def describe(metric: str, value: float, run: str) -> str:
    """The model version description that records the gate's score, read back by the next run's gate."""
    return f"vsp-gate: {metric}={value:.5g} run={run}"


def recorded(description: str | None, metric: str) -> float | None:
    """The score `describe` recorded for `metric`, or None (no record, or one for another metric)."""
    found = _RECORD.search(description or "")
    if not found or found["metric"] != metric:
        return None
    try:
        value = float(found["value"])
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def champion(endpoint_display_name: str, network: str = "") -> Champion:
    """The endpoint's champion, read only; the first of the largest traffic shares wins a tie."""
    from google.cloud import aiplatform

    from components.endpoint import find_endpoint

    endpoint = find_endpoint(endpoint_display_name, network)
    if endpoint is None:
        return Champion(None, None)
    deployed = endpoint.list_models()
    split = dict(endpoint.traffic_split or {})
    if not split and endpoint.network and deployed:  # a private endpoint has no split: its one model takes it all
        split = {deployed[0].id: 100}
    serving = [d for d in deployed if split.get(d.id, 0) > 0]
    if not serving:
        return Champion(None, None)
    best = max(serving, key=lambda d: split[d.id])  # max keeps the first of equals
    version = best.model if "@" in best.model or not best.model_version_id else f"{best.model}@{best.model_version_id}"
    return Champion(version, aiplatform.Model(version).version_description)


def decide(new: float, champion_value: float | None, metric: str, min_improvement: float) -> tuple[bool, str]:
    """Deploy on a first run, or when the new score beats the champion's by at least `min_improvement`."""
    higher = check_gate(metric, min_improvement) == "higher"
    if champion_value is None:
        return True, f"{metric} {new:.4f}, and no champion {metric} on record (a first run): deploy"
    gain = new - champion_value if higher else champion_value - new
    direction = "higher" if higher else "lower"
    keep = "skip the deploy; the endpoint keeps its champion"
    if gain <= 0:
        return False, (
            f"{metric} {new:.4f} is no better than the champion's {champion_value:.4f} ({direction} is better): {keep}"
        )
    enough = gain >= min_improvement or math.isclose(gain, min_improvement, rel_tol=1e-9, abs_tol=1e-12)
    beats = f"{metric} {new:.4f} beats the champion's {champion_value:.4f} by {gain:.4f}"
    if not enough:
        return False, f"{beats}, less than min_improvement {min_improvement:g}: {keep}"
    return True, f"{beats} (min_improvement {min_improvement:g}): deploy"


def report(
    metric: str,
    value: float,
    found: Champion,
    champion_value: float | None,
    min_improvement: float,
    deploy: bool,
    reason: str,
) -> str:
    """The gate's decision as Markdown, which the Vertex AI console renders."""
    rows = [
        ("metric", f"{metric} ({METRICS.get(metric, '?')} is better)"),
        ("new model", f"{value:.4f}"),
        ("champion version", f"`{found.version}`" if found.version else "none"),
        ("champion", "not recorded" if champion_value is None else f"{champion_value:.4f}"),
        ("min_improvement", f"{min_improvement:g}"),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    title = "Gate: deploy" if deploy else "Gate: deploy skipped"
    return f"# {title}\n\n{reason}\n\n| | |\n|---|---|\n{table}\n"


def _pick(outputs: dict, preferred: tuple) -> object:
    if len(outputs) == 1:
        return next(iter(outputs.values()))
    for name in preferred:
        if name in outputs:
            return outputs[name]
    wanted = " or ".join(repr(n) for n in preferred) if preferred else "a single output"
    raise ValueError(f"the model has outputs {sorted(outputs)}: the gate needs {wanted}")


def _predict(signature, instances: list, eval_uri: str) -> list:
    """As convert's reference predictions: TF Serving's request parsing, signature run and response format."""
    from vertex_serving.tfserving.errors import ServingError
    from vertex_serving.tfserving.tensors import format_predict, parse_predict

    try:
        request = parse_predict({"instances": instances}, signature)
        outputs = format_predict(signature.run(request.feeds), False)
    except ServingError as e:
        raise UserError(
            "eval_data_uri",
            eval_uri,
            f"has instances the model does not take ({e.message})",
            "write instances the serving signature takes",
        ) from None
    return json.loads(json.dumps(outputs["predictions"], default=lambda a: a.tolist()))


@component(base_image=COMPONENT_IMAGE, install_kfp_package=False)  # the image carries kfp
def gate(
    project: str,
    location: str,
    api_endpoint: str,
    endpoint_display_name: str,
    endpoint_network: str,
    model: dsl.Input[dsl.Model],
    eval_data_uri: str,
    gate_metric: str,
    min_improvement: float,
    gate_report: dsl.Output[dsl.Markdown],
    metrics: dsl.Output[dsl.Metrics],
    run_name: str = dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
) -> str:
    """The version description that records the new model's score when it is to be deployed, "" when it is not.

    One output, not a NamedTuple: kfp.local resolves a task's single `Output` inside a condition, not named ones.
    """
    from pathlib import Path

    from components.gate import champion, check_gate, decide, describe, evaluate, recorded, report
    from vertex_serving.sdk import init_vertex

    check_gate(gate_metric, min_improvement)  # before the evaluation, which takes a while
    init_vertex(project, location, api_endpoint)
    value = evaluate(Path(model.path), eval_data_uri, gate_metric)
    found = champion(endpoint_display_name, endpoint_network)
    old = recorded(found.description, gate_metric)
    deploy, reason = decide(value, old, gate_metric, min_improvement)
    Path(gate_report.path).write_text(report(gate_metric, value, found, old, min_improvement, deploy, reason))
    metrics.log_metric(gate_metric, value)
    if old is not None:
        metrics.log_metric(f"champion_{gate_metric}", old)
    print(f"gate: {reason}")
    return describe(gate_metric, value, run_name) if deploy else ""


@component(base_image=COMPONENT_IMAGE, install_kfp_package=False)  # the image carries kfp
def model_uri(model: dsl.Input[dsl.Model]) -> str:
    """The trained model's URI as the deploy pipeline's `model_dir`: gs:// on Vertex AI, a local path with kfp.local."""
    return model.uri
