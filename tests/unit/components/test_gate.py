"""The gate's plain functions: the decision, the score a version description records, and the evaluation."""

import json

import numpy as np
import pytest

from components.gate import (
    METRICS,
    decide,
    describe,
    evaluate,
    predicted_class,
    predicted_value,
    read_eval_set,
    recorded,
)
from vertex_serving.errors import UserError


def test_a_first_run_deploys():
    deploy, reason = decide(0.5, None, "accuracy", 0.01)
    assert deploy and "no champion accuracy on record" in reason and reason.endswith(": deploy")


def test_higher_is_better_needs_min_improvement():
    deploy, reason = decide(0.97222, 0.95, "accuracy", 0.01)
    assert deploy
    assert reason == "accuracy 0.9722 beats the champion's 0.9500 by 0.0222 (min_improvement 0.01): deploy"
    deploy, reason = decide(0.955, 0.95, "accuracy", 0.01)
    assert not deploy and "by 0.0050, less than min_improvement 0.01: skip the deploy" in reason
    deploy, reason = decide(0.9, 0.95, "accuracy", 0.0)
    assert not deploy and "no better than the champion's 0.9500 (higher is better)" in reason
    assert decide(0.96, 0.95, "accuracy", 0.01)[0]  # exactly min_improvement, whatever the float rounding


def test_lower_is_better_for_errors():
    for metric in ("mean_absolute_error", "mean_squared_error"):
        assert decide(0.8, 1.0, metric, 0.1)[0]
        assert not decide(0.95, 1.0, metric, 0.1)[0]
        deploy, reason = decide(1.2, 1.0, metric, 0.0)
        assert not deploy and "(lower is better)" in reason


def test_a_tie_keeps_the_champion_even_with_no_min_improvement():
    for metric in METRICS:
        deploy, reason = decide(0.9, 0.9, metric, 0.0)
        assert not deploy and "the endpoint keeps its champion" in reason


def test_unknown_metrics_and_negative_min_improvement_are_refused():
    with pytest.raises(UserError) as e:
        decide(0.9, 0.8, "f1", 0.0)
    assert e.value.parameter == "gate_metric" and "accuracy, mean_absolute_error, mean_squared_error" in e.value.fix
    with pytest.raises(UserError) as e:
        evaluate("no-model", "no-data", "auc")  # refused before anything is read
    assert e.value.parameter == "gate_metric"
    with pytest.raises(UserError) as e:
        decide(0.9, 0.8, "accuracy", -0.1)
    assert e.value.parameter == "min_improvement"


def test_the_description_records_the_score_for_the_next_run():
    text = describe("accuracy", 0.972222, "retrain-20260101")
    assert text == "vsp-gate: accuracy=0.97222 run=retrain-20260101"
    assert recorded(text, "accuracy") == 0.97222
    assert recorded(describe("mean_squared_error", 1234.5678, "r"), "mean_squared_error") == 1234.6
    assert (
        recorded(
            f"my model, trained by hand. {describe('mean_absolute_error', 0.00012345, 'r')}", "mean_absolute_error"
        )
        == 0.00012345
    )


@pytest.mark.parametrize("text", [None, "", "a model trained by hand", "vsp-gate: accuracy=high run=x"])
def test_no_record_is_none(text):
    assert recorded(text, "accuracy") is None


def test_a_record_for_another_metric_is_none():
    assert recorded(describe("mean_absolute_error", 0.1, "r"), "accuracy") is None


def test_predictions_become_classes_and_values():
    assert predicted_class([0.1, 0.7, 0.2]) == 1
    assert predicted_class({"probabilities": [0.9, 0.1], "labels": [0, 1]}) == 0
    assert predicted_class({"logits": [0.2, 3.0]}) == 1  # a single output, whatever its name
    assert predicted_class([0.8]) == 1 and predicted_class(0.3) == 0  # a binary classifier's one score
    assert predicted_value(2.5) == 2.5 and predicted_value([[4.0, 1.0]]) == 4.0 and predicted_value({"y": [3]}) == 3.0
    with pytest.raises(ValueError, match="outputs \\['a', 'b'\\]"):
        predicted_class({"a": [1.0], "b": [2.0]})


def test_broken_eval_sets_name_eval_data_uri(tmp_path):
    with pytest.raises(UserError) as e:
        read_eval_set(str(tmp_path / "none.jsonl"))
    assert e.value.parameter == "eval_data_uri" and "cannot be read" in str(e.value)
    cases = {
        '{"instance": [1], "label": 1}\n{oops\n': "is not JSON Lines .* on line 2",
        '{"instance": [1], "label": 1}\n\n{"label": 1}\n': "has no 'instance' on line 3",
        '{"instance": [1], "label": "cat"}\n': "has label 'cat' on line 1, not a number",
        '{"instance": [1]}\n': "has label None on line 1",
        "\n": "holds no rows",
    }
    for text, problem in cases.items():
        (tmp_path / "eval.jsonl").write_text(text)
        with pytest.raises(UserError, match=problem) as e:
            read_eval_set(str(tmp_path / "eval.jsonl"))
        assert e.value.parameter == "eval_data_uri"


def write_eval_set(path, instances, labels):
    path.write_text(
        "".join(json.dumps({"instance": i, "label": label}) + "\n" for i, label in zip(instances, labels, strict=True))
    )
    return str(path)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """The example classifier, untrained: its own answers decide which labels are right."""
    from components.train import build_classifier, export_classifier

    model = build_classifier(0)
    pixels = np.random.default_rng(0).random((20, 64)).astype(np.float32)
    classes = np.argmax(model.predict(pixels, verbose=0), axis=1)
    return export_classifier(model, tmp_path_factory.mktemp("gate") / "classifier"), pixels, classes


def test_accuracy_is_scored_the_way_tf_serving_serves(classifier, tmp_path):
    model, pixels, classes = classifier
    labels = [int(c) if i % 4 else int(c + 1) % 10 for i, c in enumerate(classes)]  # every fourth one wrong
    uri = write_eval_set(tmp_path / "eval.jsonl", pixels.tolist(), labels)
    assert evaluate(model, uri, "accuracy") == 0.75
    with pytest.raises(UserError, match="has instances the model does not take") as e:
        evaluate(model, write_eval_set(tmp_path / "short.jsonl", [[0.5] * 3], [1]), "accuracy")
    assert e.value.parameter == "eval_data_uri"


@pytest.fixture(scope="module")
def regressor(tmp_path_factory):
    """y = x @ [1, 2, 3], as a [-1, 1] output: the first element is the value."""
    import tensorflow as tf

    class Sum(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def serve(self, x):
            return {"y": x @ tf.constant([[1.0], [2.0], [3.0]])}

    module, path = Sum(), tmp_path_factory.mktemp("gate") / "regressor"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def test_errors_are_scored_from_the_predicted_values(regressor, tmp_path):
    instances = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]]  # 1, 2, 6
    uri = write_eval_set(tmp_path / "eval.jsonl", instances, [1.5, 2, 4])  # off by 0.5, 0, 2
    assert evaluate(regressor, uri, "mean_absolute_error") == pytest.approx(2.5 / 3)
    assert evaluate(regressor, uri, "mean_squared_error") == pytest.approx(4.25 / 3)
