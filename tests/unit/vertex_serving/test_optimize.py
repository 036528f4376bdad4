"""Choosing among measured candidates: numbers in, the decision and its reasons out; the candidates and log lines."""

import pytest

from tests.models import TESTDATA
from vertex_serving.catalog import load_catalog
from vertex_serving.config import DeployConfig
from vertex_serving.optimize import (
    NO_BF16,
    PLAIN,
    Trial,
    candidates,
    choose,
    log_filter,
    optimization_lines,
    record,
    report,
)

XLA, BF16, OFF = "allow_precompilation", "allow_compression", "disable_optimizer"
CATALOG = load_catalog()


def trial(*flags, p50: dict, problems=(), error="") -> Trial:
    return Trial(frozenset(flags), p50, {s: 2 * v for s, v in p50.items()}, accuracy_problems=problems, error=error)


def config(**values) -> DeployConfig:
    return DeployConfig(
        model_dir=str(TESTDATA / "saved_model_half_plus_two_cpu" / "00000123"),
        model_display_name="m",
        endpoint_display_name="e",
        container_version="nightly",
        optimization="measure",
        **values,
    )


def test_a_flag_slower_at_one_batch_size_is_dropped_although_it_was_asked_for():
    trials = [trial(p50={1: 1.0, 32: 10.0}), trial(XLA, p50={1: 0.5, 32: 15.0})]
    decision = choose(trials, frozenset({XLA}), 1.1)
    assert decision.chosen == frozenset()
    assert decision.reasons[XLA] == "not kept: 0.67x plain at batch 32, below min_speedup=1.1"
    assert decision.speedups[XLA] == {1: 2.0, 32: pytest.approx(10 / 15)}


def test_a_flag_faster_at_every_batch_size_within_tolerance_is_kept():
    trials = [trial(p50={1: 1.0, 32: 10.0}), trial(BF16, p50={1: 0.8, 32: 5.0})]
    decision = choose(trials, frozenset(), 1.1)
    assert decision.chosen == {BF16}
    assert decision.reasons[BF16].startswith("chosen: at least 1.25x plain at every batch size (batch 1)")
    assert decision.reasons[PLAIN] == "not chosen: allow_compression is faster"


def test_a_faster_candidate_outside_tolerance_is_not_kept():
    trials = [
        trial(p50={1: 1.0}),
        trial(BF16, p50={1: 0.2}, problems=("output 'p': top-1 agreement 25.0% is below 0.99",)),
    ]
    decision = choose(trials, frozenset({BF16}), 1.1)
    assert decision.chosen == frozenset()
    assert decision.reasons[BF16] == "outside tolerance: output 'p': top-1 agreement 25.0% is below 0.99"


def test_a_speedup_just_under_min_speedup_is_not_enough():
    decision = choose([trial(p50={8: 1.0}), trial(XLA, p50={8: 1.0 / 1.09})], frozenset(), 1.1)
    assert decision.chosen == frozenset() and "1.09x plain at batch 8" in decision.reasons[XLA]


def test_a_combination_keeps_a_second_flag_only_if_that_flag_pays_on_its_own():
    trials = [
        trial(p50={1: 1.0, 32: 10.0}),
        trial(BF16, p50={1: 0.5, 32: 5.0}),
        trial(XLA, p50={1: 0.95, 32: 9.5}),
        trial(XLA, BF16, p50={1: 0.48, 32: 4.8}),
    ]
    decision = choose(trials, frozenset({XLA, BF16}), 1.1)
    assert decision.chosen == {BF16}
    assert decision.reasons[f"{XLA} + {BF16}"].startswith(f"not kept: {XLA} adds only 1.04x over {BF16}")


def test_of_two_qualifying_candidates_the_faster_wins_and_the_other_says_so():
    trials = [trial(p50={1: 1.0}), trial(BF16, p50={1: 0.5}), trial(OFF, p50={1: 0.8})]
    decision = choose(trials, frozenset(), 1.1)
    assert decision.chosen == {BF16}
    assert decision.reasons[OFF] == f"faster within tolerance, but {BF16} is faster still"


def test_a_candidate_that_fails_is_reported_and_plain_wins():
    trials = [trial(p50={1: 1.0}), trial(XLA, p50={}, error="Compilation failure: out of memory")]
    decision = choose(trials, frozenset({XLA}), 1.1)
    assert decision.chosen == frozenset() and decision.reasons[XLA] == "failed: Compilation failure: out of memory"


def test_where_speed_cannot_be_measured_the_configured_flags_are_kept():
    trials = [trial(p50={1: 1.0}), trial(XLA, p50={1: 3.0})]
    decision = choose(trials, frozenset({XLA}), 1.1, speed_measurable=False)
    assert decision.chosen == {XLA}
    assert decision.reasons[XLA].startswith("chosen: the configured flags are kept (within tolerance on this CPU")
    assert decision.reasons[PLAIN].endswith("its speed on the target cannot be measured here")


def test_the_report_has_a_row_per_candidate_and_the_record_says_why():
    trials = [trial(p50={1: 1.0, 32: 10.0}), trial(XLA, p50={1: 0.5, 32: 15.0})]
    decision = choose(trials, frozenset({XLA}), 1.1)
    text = report(trials, decision, [1, 32], ["measured here"], ["--allow_precompilation=true"], [])
    assert "| `allow_precompilation` (configured) | 0.500 / 1.000 | 15.000 / 30.000 | - | 0.00 |" in text
    assert "Chosen: `plain`; container args (none) instead of the configured `--allow_precompilation=true`." in text
    assert record(decision, [], [1, 32]) == (
        "vsp-optimize: chose plain args=(none) batch=1,32 (allow_precompilation: 0.67x plain at batch 32)"
    )


def test_candidates_are_the_combinations_the_rules_accept():
    found, notes = candidates(config(allow_precompilation=True), CATALOG, bf16=True)
    assert [c.name for c in found] == [
        PLAIN,
        BF16,
        XLA,
        OFF,
        f"{XLA} + {BF16}",
    ]  # disable_optimizer with another flag contradicts itself
    assert next(c for c in found if c.name == XLA).container_args == ("--allow_precompilation=true",)
    assert notes == []


def test_without_bfloat16_compression_is_not_tried_and_the_step_says_so():
    found, notes = candidates(config(), CATALOG, bf16=False)
    assert [c.name for c in found] == [PLAIN, XLA, OFF] and notes == [NO_BF16]
    asked, _ = candidates(config(allow_compression=True), CATALOG, bf16=False)
    assert BF16 in [c.name for c in asked]  # what the user wrote is measured all the same


def test_a_preconverted_tpu_model_has_the_optimizer_off_in_every_candidate():
    tpu = config(accelerator="tpu", machine_type="ct5lp-hightpu-1t", tpu_mode="preconverted")
    found, _ = candidates(tpu, CATALOG, bf16=True)
    assert [c.name for c in found] == [OFF]


def test_the_optimization_lines_of_a_model_server_log():
    log = "\n".join(
        [
            "2026-01-01 modelserver INFO allow_precompilation=true: XLA compiles the graph on this CPU",
            "2026-01-01 modelserver INFO listening on http://127.0.0.1:8080",
            "2026-01-01 modelserver INFO server-side batching: max_batch_size=32",
            "2026-01-01 modelserver INFO model 'default' version 1 loaded in 1.2s; 9 warmup requests replayed in 0.5s",
        ]
    )
    assert [line.split(" INFO ")[1][:24] for line in optimization_lines(log)] == [
        "allow_precompilation=tru",
        "server-side batching: ma",
        "model 'default' version ",
    ]


def test_the_cloud_logging_filter_names_the_deployed_model():
    text = log_filter("p", "us-central1", "123", "456")
    assert 'resource.type="aiplatform.googleapis.com/Endpoint"' in text
    assert 'resource.labels.endpoint_id="123"' in text and 'labels.deployed_model_id="456"' in text


def test_a_combination_the_rules_refuse_is_not_tried_and_the_note_says_which_rule():
    gpu = config(
        accelerator="gpu",
        machine_type="n1-standard-8",
        accelerator_type="NVIDIA_TESLA_T4",
        accelerator_count=1,
        use_tfrt=True,
        allow_precompilation=True,
    )
    found, notes = candidates(gpu, CATALOG, bf16=False)
    assert all(XLA in c.flags for c in found)  # TFRT on GPU needs precompilation
    assert notes[1].startswith("plain: not tried, the rules refuse it (use_tfrt=True on GPU needs")
