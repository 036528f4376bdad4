"""Traffic-split arithmetic, with Vertex AI's rules."""

import random

import pytest

from localvertex.errors import VertexError
from localvertex.traffic import deploy_split, pick, undeploy_split, update_split


def test_zero_key_means_the_model_being_deployed():
    assert deploy_split({"1": 100}, {"0": 20, "1": 80}, "2", {"1"}, private=False) == {"2": 20, "1": 80}


def test_a_deploy_without_a_split_leaves_the_split_as_it_is_even_for_a_first_model():
    assert deploy_split({}, {}, "1", set(), private=False) == {}
    assert deploy_split({}, {}, "1", set(), private=True) == {}
    assert deploy_split({"1": 100}, {}, "2", {"1"}, private=False) == {"1": 100}


@pytest.mark.parametrize(
    ("split", "needle"),
    [({"0": 50, "1": 30}, "sum to 100"), ({"0": 50, "9": 50}, "['9']"), ({"0": 150, "1": -50}, "whole percentages")],
)
def test_bad_splits_are_invalid_arguments(split, needle):
    with pytest.raises(VertexError) as e:
        deploy_split({"1": 100}, split, "2", {"1"}, private=False)
    assert e.value.status == "INVALID_ARGUMENT" and needle in e.value.message


def test_undeploy_moves_traffic_as_asked_and_refuses_to_strand_it():
    assert undeploy_split({"1": 70, "2": 30}, {"2": 100, "1": 0}, "1", {"2"}) == {"2": 100}
    assert undeploy_split({"1": 0, "2": 100}, {}, "1", {"2"}) == {"2": 100}
    assert undeploy_split({"1": 100}, {}, "1", set()) == {}
    with pytest.raises(VertexError) as e:
        undeploy_split({"1": 70, "2": 30}, {}, "1", {"2"})
    assert e.value.status == "FAILED_PRECONDITION" and "70%" in e.value.message


def test_pick_follows_the_weights():
    rng = random.Random(1)
    draws = [pick({"a": 10, "b": 90, "c": 0}, rng) for _ in range(5000)]
    assert "c" not in draws and 0.08 < draws.count("a") / len(draws) < 0.12


def test_pick_without_traffic_is_a_precondition_failure():
    with pytest.raises(VertexError) as e:
        pick({})
    assert e.value.status == "FAILED_PRECONDITION"


def test_an_updated_split_names_only_deployed_models_and_sums_to_100():
    assert update_split({"1": 30, "2": 70}, {"1", "2"}) == {"1": 30, "2": 70}
    assert update_split({}, {"1"}) == {}
    with pytest.raises(VertexError, match="sum to 100"):
        update_split({"1": 30}, {"1", "2"})
    with pytest.raises(VertexError, match="not on this endpoint"):
        update_split({"9": 100}, {"1"})
