"""The traffic splits the deploy step hands to the smoke test: the canary step, then the target share."""

from components.deploy import promotion_splits


def test_the_first_model_of_an_endpoint_takes_all_traffic_with_no_canary_step():
    assert promotion_splits({}, traffic_percentage=30, canary_percentage=10) == ({}, {"0": 100})


def test_a_canary_step_comes_before_the_target_and_the_others_keep_their_proportions():
    canary, target = promotion_splits({"a": 60, "b": 40}, traffic_percentage=50, canary_percentage=10)
    assert canary == {"a": 54, "b": 36, "0": 10} and target == {"a": 30, "b": 20, "0": 50}
    assert sum(canary.values()) == sum(target.values()) == 100


def test_no_canary_step_when_it_is_zero():
    assert promotion_splits({"a": 100}, traffic_percentage=100, canary_percentage=0) == ({}, {"0": 100})
