"""The smoke test's verdict on the new model's answers against its reference predictions."""

from components.smoke_test import Checks, compare, report


def test_answers_within_tolerance_pass_with_their_top1_agreement():
    reference = [[0.1, 0.9], [0.8, 0.2]]
    found = compare(reference, [[0.10001, 0.89999], [0.8, 0.2]], atol=1e-4, rtol=1e-3, min_top1=0.99)
    assert found.problems == [] and found.top1_agreement == 1.0 and found.max_abs_diff < 2e-5


def test_differences_name_the_output_the_size_and_the_tolerance():
    found = compare([[0.1, 0.9], [0.8, 0.2]], [[0.6, 0.4], [0.8, 0.2]], atol=1e-4, rtol=1e-3, min_top1=0.99)
    assert any("differs by up to 0.5" in p and "smoke_atol=0.0001" in p for p in found.problems)
    assert any("top-1 agreement 50.0%" in p for p in found.problems) and found.top1_agreement == 0.5


def test_named_outputs_and_strings_are_compared_per_output():
    reference = [{"label": "cat", "score": 0.5}]
    assert compare(reference, [{"label": "cat", "score": 0.5}], 0, 0, 1).problems == []
    assert "output 'label' differs" in compare(reference, [{"label": "dog", "score": 0.5}], 0, 0, 1).problems[0]


def test_a_missing_prediction_is_a_problem():
    assert compare([1.0, 2.0], [1.0], 0, 0, 1).problems == ["1 predictions for 2 instances"]


CHECKS = Checks(atol=0, rtol=0, min_top1=1, requests=5, p99_budget_ms=0)


def test_the_report_is_markdown_with_the_verdict_first_and_a_row_per_stage():
    canary, target = compare([1.0], [1.0], 0, 0, 1), compare([1.0], [1.0], 0, 0, 1)
    canary.stage, target.stage = "10% of traffic", "100% of traffic"
    text = report(
        [canary, target], "projects/p/locations/l/endpoints/1", "7", "projects/p/locations/l/models/2@1", CHECKS
    )
    assert text.startswith("# Smoke test passed") and "DeployedModel 7" in text
    assert "| 10% of traffic | passed |" in text and "| 100% of traffic | passed |" in text


def test_the_report_names_the_stage_that_failed_and_why():
    canary = compare([1.0], [3.0], 0, 0, 1)
    canary.stage = "10% of traffic"
    text = report([canary], "e", "7", "m", CHECKS)
    assert text.startswith("# Smoke test failed") and "failed at 10% of traffic: output 'predictions' differs" in text
