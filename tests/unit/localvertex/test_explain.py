"""Sampled Shapley attributions and Vertex AI's refusals of explanation specs."""

import random

import pytest
from google.cloud.aiplatform_v1 import types

from localvertex import explain
from localvertex.errors import VertexError
from vertex_serving.catalog import load_catalog

OPTIMIZED = "us-docker.pkg.dev/vertex-ai-restricted/prediction/tf_opt-cpu.nightly:latest"
METADATA = {"inputs": {"a": {}}, "outputs": {"sum": {"outputTensorName": "sum"}}}


def linear(instance) -> dict:
    return {"sum": sum(w * x for w, x in zip([1.0, 2.0, 3.0], instance["a"], strict=True)), "tag": instance["tag"]}


def test_a_linear_model_gets_its_exact_shares_and_they_add_up():
    instance = {"a": [1.0, 2.0, 3.0], "tag": "x"}
    paths = explain.plan(instance, METADATA, path_count=5, rng=random.Random(0))
    assert len(paths.steps) == 1 + 5 * 3 and all(step["tag"] == "x" for step in paths.steps)
    found, prediction = explain.attribution(paths, [linear(s) for s in paths.steps], METADATA, [])
    assert dict(found.feature_attributions) == {"a": [1.0, 4.0, 9.0]}
    assert found.baseline_output_value == 0.0 and found.instance_output_value == 14.0
    assert found.output_name == "sum" and prediction == linear(instance) and found.approximation_error == 0.0


def test_baselines_come_from_the_metadata():
    metadata = {"inputs": {"a": {"inputBaselines": [[1.0, 1.0, 1.0]]}}, "outputs": {}}
    paths = explain.plan({"a": [1.0, 2.0, 3.0], "tag": "x"}, metadata, 3, random.Random(1))
    found, _ = explain.attribution(paths, [linear(s) for s in paths.steps], metadata, [])
    assert dict(found.feature_attributions) == {"a": [0.0, 2.0, 6.0]} and found.baseline_output_value == 6.0


def test_an_interaction_is_shared_between_its_features():
    def product(instance):
        return instance[0] * instance[1]

    paths = explain.plan([2.0, 3.0], {}, 50, random.Random(2))
    found, _ = explain.attribution(paths, [product(s) for s in paths.steps], {}, [])
    shares = list(found.feature_attributions)
    assert sum(shares) == 6.0 and 1.5 < shares[0] < 4.5 and found.approximation_error > 0


def spec(parameters: dict) -> types.ExplanationSpec:
    return types.ExplanationSpec(parameters=parameters)


def test_the_optimized_runtime_explains_with_sampled_shapley_only():
    catalog = load_catalog()
    explain.check_spec(spec({"sampled_shapley_attribution": {"path_count": 10}}), OPTIMIZED, catalog, "x")
    with pytest.raises(VertexError, match="integratedGradientsAttribution is not supported by the optimized"):
        explain.check_spec(spec({"integrated_gradients_attribution": {"step_count": 50}}), OPTIMIZED, catalog, "x")
    standard = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
    explain.check_spec(spec({"integrated_gradients_attribution": {"step_count": 50}}), standard, catalog, "x")
    with pytest.raises(VertexError, match="pathCount is 51"):
        explain.check_spec(spec({"sampled_shapley_attribution": {"path_count": 51}}), OPTIMIZED, catalog, "x")
    with pytest.raises(VertexError, match="names no explanation method"):
        explain.check_spec(spec({}), OPTIMIZED, catalog, "x")
