"""Traffic-split arithmetic and list filters, with Vertex AI's rules."""

import random

import pytest

from localvertex.errors import VertexError
from localvertex.traffic import deploy_split, matches, pick, undeploy_split


def test_zero_key_means_the_model_being_deployed():
    assert deploy_split({"1": 100}, {"0": 20, "1": 80}, "2", {"1"}, private=False) == {"2": 20, "1": 80}


def test_first_model_of_a_public_endpoint_takes_all_traffic_when_no_split_is_sent():
    assert deploy_split({}, {}, "1", set(), private=False) == {"1": 100}
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


def test_filters_the_sdk_sends():
    resource = {"displayName": "digits", "labels": {"team": "ml"}}
    assert matches(resource, 'display_name="digits"') and matches(
        resource, 'display_name="digits" AND labels.team="ml"'
    )
    assert not matches(resource, 'display_name="other"') and matches(resource, "")
    with pytest.raises(VertexError):
        matches(resource, "display_name ~ digits")
