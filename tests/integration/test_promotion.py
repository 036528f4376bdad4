"""Promotion in steps on a real localvertex: the canary share, then the target, smoke-tested at each."""

from __future__ import annotations

import json

import pytest
from google.cloud import aiplatform

from components.deploy import deploy_version
from components.smoke_test import Checks, promote
from tests.integration.localvertex_fixtures import CPU_IMAGE
from tests.models import TESTDATA

pytestmark = pytest.mark.integration
HALF_PLUS_TWO = TESTDATA / "saved_model_half_plus_two_cpu" / "00000123"
CHECKS = Checks(atol=1e-4, rtol=1e-3, min_top1=0.99, requests=5, p99_budget_ms=0.0)
RIGHT = {"instances": [[1.0], [3.0]], "predictions": [[2.5], [3.5]]}


@pytest.fixture()
def serving(emulator, tmp_path, request):
    """An endpoint whose one model takes all traffic, and a second version deployed beside it at 0%."""
    name = request.node.name[-40:]
    model = aiplatform.Model.upload(
        display_name=name, artifact_uri=str(HALF_PLUS_TWO), serving_container_image_uri=CPU_IMAGE
    )
    endpoint = aiplatform.Endpoint.create(display_name=name)
    model.deploy(endpoint=endpoint, machine_type="n1-standard-2")
    newer = aiplatform.Model.upload(
        display_name=name,
        artifact_uri=str(HALF_PLUS_TWO),
        serving_container_image_uri=CPU_IMAGE,
        parent_model=model.resource_name,
        is_default_version=False,
    )
    deployed = deploy_version(
        newer.versioned_resource_name, endpoint.resource_name, "n1-standard-2", "", 0, 1, 1, 50, 10,
        300.0, str(tmp_path / "gcp_resources"), "http://localhost",
    )  # fmt: skip
    return endpoint, deployed


def test_a_passing_model_goes_through_the_canary_share_to_its_target(serving):
    endpoint, deployed = serving
    canary, target = json.loads(deployed.canary_traffic_split), json.loads(deployed.target_traffic_split)
    assert canary[deployed.deployed_model_id] == 10 and target[deployed.deployed_model_id] == 50
    stages = promote(
        endpoint.resource_name, deployed.deployed_model_id, json.loads(deployed.previous_traffic_split),
        [canary, target], RIGHT, CHECKS,
    )  # fmt: skip
    assert [(f.stage, f.problems) for f in stages] == [("10% of traffic", []), ("50% of traffic", [])]
    endpoint = aiplatform.Endpoint(endpoint.resource_name)
    assert endpoint.traffic_split == target


def test_a_model_that_fails_at_the_canary_step_goes_no_further_and_is_taken_out(serving):
    endpoint, deployed = serving
    previous = json.loads(deployed.previous_traffic_split)
    wrong = {**RIGHT, "predictions": [[0.0], [0.0]]}
    stages = promote(
        endpoint.resource_name, deployed.deployed_model_id, previous,
        [json.loads(deployed.canary_traffic_split), json.loads(deployed.target_traffic_split)], wrong, CHECKS,
    )  # fmt: skip
    assert len(stages) == 1 and stages[0].stage == "10% of traffic" and "differs by up to" in stages[0].problems[0]
    endpoint = aiplatform.Endpoint(endpoint.resource_name)
    assert endpoint.traffic_split == previous and [d.id for d in endpoint.list_models()] == list(previous)
