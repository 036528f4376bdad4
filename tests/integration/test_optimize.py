"""The optimize step measured on real SavedModels: every candidate measured, and the decision follows the numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from components.convert import prepare, reference_predictions
from components.optimize import optimize_model
from components.validate import resolve
from components.warmup import warm
from pipelines.demo import export_classifier
from tests.models import CNN_SHAPE, bf16_sensitive, small_cnn
from vertex_serving.config import DeployConfig
from vertex_serving.optimize import NO_BF16, PLAIN
from vertex_serving.tfserving.servable import cpu_has_bf16

pytestmark = pytest.mark.integration
FAST = {"rounds": 2, "round_seconds": 0.02}


def warmed(model_dir: Path, work: Path, instances: list, sizes: list[int]) -> tuple[Path, dict]:
    """The model as the pipeline hands it to the optimize step: converted, with a reference and a warmup file."""
    converted = prepare(str(model_dir), work / "converted", "", "", "")
    reference = reference_predictions(converted, instances, ("serve",))
    warm(converted, work / "warmed", reference["instances"], sizes)
    return work / "warmed", reference


def optimized(model_dir: Path, work: Path, instances: list, **values):
    config = DeployConfig.from_mapping(
        {
            "project": "test-project",
            "model_dir": str(model_dir),
            "model_display_name": "m",
            "endpoint_display_name": "e",
            "optimization": "measure",
            **values,
        }
    )
    resolved = resolve(config.to_parameters())
    model, reference = warmed(model_dir, work, instances, resolved.warmup_batch_sizes)
    return optimize_model(config, resolved.container_args, model, reference, **FAST), resolved


def assert_follows_the_numbers(result, min_speedup: float) -> None:
    """The chosen candidate is within tolerance and min_speedup faster at every batch size; each other one says
    which of its own numbers kept it out."""
    decision, trials = result.decision, {t.name: t for t in result.trials}
    chosen = trials[decision.chosen_name]
    assert chosen.usable
    speedups = decision.speedups
    if chosen.name != PLAIN:
        assert min(speedups[chosen.name].values()) >= min_speedup
    for name, trial in trials.items():
        reason = decision.reasons[name]
        assert f"| `{name}`" in result.report and reason.split(":")[0] in result.report
        if name in (chosen.name, PLAIN) or not trial.usable:
            continue
        slowest = min(speedups[name].values())
        if slowest < min_speedup:
            assert reason.startswith("not kept") and f"{slowest:.2f}x plain" in reason, reason
        elif "faster still" in reason:
            mean = {n: math.prod(speedups[n].values()) ** (1 / len(speedups[n])) for n in (name, chosen.name)}
            assert mean[name] <= mean[chosen.name]
        else:
            assert "adds only" in reason, reason
    for flag in ("allow_precompilation", "allow_compression", "disable_optimizer"):
        assert (f"--{flag}=true" in result.container_args) == (flag in decision.chosen)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from components.train import build_classifier, digits_examples

    (x, y), (x_eval, _) = digits_examples()
    model = build_classifier(seed=0)
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    path = export_classifier(model, tmp_path_factory.mktemp("digits") / "model")
    return path, x_eval[:16].round(4).tolist()


def test_the_demo_model_gets_every_candidate_measured_and_a_decision_that_follows_them(digits, tmp_path):
    model_dir, instances = digits
    result, resolved = optimized(
        model_dir, tmp_path, instances, allow_precompilation=True, allowed_batch_sizes=[1, 8], max_batch_size=8
    )
    expected = {PLAIN, "allow_precompilation", "disable_optimizer"}
    if cpu_has_bf16():
        expected |= {"allow_compression", "allow_precompilation + allow_compression"}
    assert {t.name for t in result.trials} == expected
    assert all(set(t.p50_ms) == {1, 8} and not t.error for t in result.trials)
    assert "--allow_precompilation=true" in resolved.container_args  # what the user asked for
    assert_follows_the_numbers(result, 1.1)
    assert "vsp-optimize: chose" in result.version_description
    assert result.metrics["candidates"] == len(expected)


def test_a_cnn_drops_precompilation_where_it_is_not_faster_and_says_why(tmp_path):
    model_dir = small_cnn(tmp_path / "cnn")
    instances = np.random.default_rng(0).random((8, *CNN_SHAPE), dtype=np.float32).round(3).tolist()
    result, _ = optimized(
        model_dir, tmp_path, instances, allow_precompilation=True, allowed_batch_sizes=[1, 32], max_batch_size=32
    )
    assert_follows_the_numbers(result, 1.1)
    if "allow_precompilation" not in result.decision.chosen:
        reason = result.decision.reasons["allow_precompilation"]
        assert reason in result.report and "instead of the configured `--allow_precompilation=true`" in result.report


def test_a_model_that_loses_its_top1_under_bfloat16_keeps_compression_off(tmp_path):
    model_dir = bf16_sensitive(tmp_path / "bf16")
    instances = np.random.default_rng(1).random((32, 4), dtype=np.float32).round(4).tolist()
    # Loose numeric tolerances: only top-1 agreement can keep compression out.
    result, resolved = optimized(
        model_dir, tmp_path, instances, allow_compression=True, smoke_atol=1000.0, smoke_rtol=1.0
    )
    assert "--allow_compression=true" in resolved.container_args
    assert "--allow_compression=true" not in result.container_args
    if cpu_has_bf16():
        reason = result.decision.reasons["allow_compression"]
        assert reason.startswith("outside tolerance") and "top-1 agreement" in reason
        assert result.decision.reasons["allow_precompilation + allow_compression"].startswith("outside tolerance")
    else:
        assert NO_BF16 in result.report


def test_a_tpu_deployment_keeps_its_flags_and_says_its_speed_was_not_measured(digits, tmp_path):
    model_dir, instances = digits
    result, resolved = optimized(
        model_dir,
        tmp_path,
        instances,
        accelerator="tpu",
        machine_type="ct5lp-hightpu-1t",
        container_version="nightly",
        allow_precompilation=True,
    )
    assert result.container_args == resolved.container_args == ["--allow_precompilation=true"]
    assert "ct5lp-hightpu-1t is a Cloud TPU: TPU speed cannot be measured here." in result.report
    assert result.decision.reasons["allow_precompilation"].startswith("chosen: the configured flags are kept")
    # Each candidate's outputs are still checked on this CPU; the verdict says whether they stay within tolerance.
    assert all(not t.error for t in result.trials) and {t.name for t in result.trials} >= {PLAIN, "disable_optimizer"}
    for t in result.trials:
        reason = result.decision.reasons[t.name]
        assert ("outside tolerance" in reason) == bool(t.accuracy_problems)
