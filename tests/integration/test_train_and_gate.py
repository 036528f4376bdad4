"""The train and gate shells, called through `.python_func`: a trained digit classifier, gated against the champion
that a real localvertex endpoint serves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.cloud import aiplatform, storage
from kfp import dsl

from components.gate import champion, describe, evaluate, gate, model_uri, recorded
from components.train import digits_examples, read_examples, train, train_digits, write_examples
from tests.integration.localvertex_fixtures import CPU_IMAGE, LOCATION, PROJECT
from vertex_serving.errors import UserError

pytestmark = pytest.mark.integration

ENDPOINT = "gate-endpoint"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """The digits as training examples, and the held-out ones as the gate's eval set."""
    folder = tmp_path_factory.mktemp("digits")
    (x_train, y_train), (x_eval, y_eval) = digits_examples()
    eval_set = folder / "eval.jsonl"
    eval_set.write_text(
        "".join(
            json.dumps({"instance": x.tolist(), "label": int(y)}) + "\n" for x, y in zip(x_eval, y_eval, strict=True)
        )
    )
    return {"train": write_examples(folder / "train.jsonl", x_train, y_train), "eval": eval_set}


@pytest.fixture(scope="module")
def models(data, tmp_path_factory) -> dict:
    """A model trained for 2 epochs (accuracy well below 0.9) and one trained for 20 (above it)."""
    folder = tmp_path_factory.mktemp("models")
    for name, epochs in (("weak", 2), ("strong", 20)):
        train_digits(str(data["train"]), epochs, 0, folder / name)
    return {"weak": folder / "weak", "strong": folder / "strong"}


def test_the_train_shell_exports_a_classifier_the_gate_can_score(data, tmp_path):
    model, metrics = dsl.Model(uri=str(tmp_path / "model")), dsl.Metrics(uri=str(tmp_path / "metrics"))
    train.python_func(data_uri=str(data["train"]), epochs=2, seed=0, model=model, metrics=metrics)
    assert model.metadata == {"framework": "tensorflow"}
    assert 0 < metrics.metadata["accuracy"] <= 1 and metrics.metadata["loss"] > 0
    assert evaluate(Path(model.path), str(data["eval"]), "accuracy") > 0.5


def test_examples_round_trip_and_bad_rows_name_data_uri(data, tmp_path):
    x, y = read_examples(str(data["train"]))
    assert x.shape == (len(y), 64) and x.dtype == "float32" and set(y.tolist()) == set(range(10))
    cases = {
        '{"pixels": [0.5], "label": 1}\n': "no list of 64 numbers as 'pixels' on line 1",
        json.dumps({"pixels": [0.0] * 64, "label": 10}) + "\n": "label 10 on line 1, not a class from 0 to 9",
        json.dumps({"pixels": [0.0] * 64, "label": 1}) + "\n{oops\n": "is not JSON Lines .* on line 2",
        "\n": "holds no examples",
    }
    for text, problem in cases.items():
        (tmp_path / "bad.jsonl").write_text(text)
        with pytest.raises(UserError, match=problem) as e:
            read_examples(str(tmp_path / "bad.jsonl"))
        assert e.value.parameter == "data_uri"
    with pytest.raises(UserError, match="cannot be read"):
        read_examples(str(tmp_path / "none.jsonl"))


def run_gate(emulator, tmp_path, model: Path, eval_uri: str, min_improvement: float, run: str):
    report, metrics = dsl.Markdown(uri=str(tmp_path / f"{run}.md")), dsl.Metrics(uri=str(tmp_path / f"{run}-metrics"))
    result = gate.python_func(
        project=PROJECT,
        location=LOCATION,
        api_endpoint=emulator.state["api_endpoint"],
        endpoint_display_name=ENDPOINT,
        endpoint_network="",
        model=dsl.Model(uri=str(model)),
        eval_data_uri=eval_uri,
        gate_metric="accuracy",
        min_improvement=min_improvement,
        gate_report=report,
        metrics=metrics,
        run_name=run,
    )
    return result, Path(report.path).read_text(), metrics.metadata


def test_the_gate_deploys_only_a_model_that_beats_the_champion(emulator, data, models, tmp_path):
    storage.Client().bucket("localvertex-staging").blob("gate/eval.jsonl").upload_from_filename(str(data["eval"]))
    eval_uri = "gs://localvertex-staging/gate/eval.jsonl"
    weak = evaluate(models["weak"], eval_uri, "accuracy")
    strong = evaluate(models["strong"], eval_uri, "accuracy")
    assert weak < 0.9 < strong - 0.01

    assert champion(ENDPOINT) == (None, None)  # no endpoint yet
    first, text, _ = run_gate(emulator, tmp_path, models["weak"], eval_uri, 0.01, "run-0")
    assert first.startswith("vsp-gate: accuracy=") and text.startswith("# Gate: deploy\n")
    assert "no champion accuracy on record" in text

    uploaded = aiplatform.Model.upload(
        display_name="gate-digits",
        artifact_uri=str(models["weak"]),
        serving_container_image_uri=CPU_IMAGE,
        version_description=describe("accuracy", 0.9, "run-1"),
        sync=True,
    )
    endpoint = aiplatform.Endpoint.create(display_name=ENDPOINT)
    assert champion(ENDPOINT) == (None, None)  # an endpoint that serves nothing
    endpoint.deploy(uploaded, machine_type="n1-standard-4", traffic_percentage=100, sync=True)
    found = champion(ENDPOINT)
    assert found.version == uploaded.versioned_resource_name and recorded(found.description, "accuracy") == 0.9

    better, text, metrics = run_gate(emulator, tmp_path, models["strong"], eval_uri, 0.01, "run-2")
    assert better == describe("accuracy", strong, "run-2")  # the record the deploy writes on the new version
    assert text.startswith("# Gate: deploy\n") and uploaded.versioned_resource_name in text
    assert metrics == {"accuracy": strong, "champion_accuracy": 0.9}

    not_enough, text, _ = run_gate(emulator, tmp_path, models["strong"], eval_uri, 0.5, "run-3")
    assert not_enough == "" and text.startswith("# Gate: deploy skipped\n") and "min_improvement 0.5" in text

    worse, text, metrics = run_gate(emulator, tmp_path, models["weak"], eval_uri, 0.0, "run-4")
    assert worse == ""  # "" skips the deploy
    assert text.startswith("# Gate: deploy skipped\n") and "no better than the champion's 0.9000" in text
    assert metrics == {"accuracy": weak, "champion_accuracy": 0.9}


def test_model_uri_hands_the_trained_model_to_the_deploy_pipeline(tmp_path):
    assert model_uri.python_func(model=dsl.Model(uri="gs://bucket/run/train/model")) == "gs://bucket/run/train/model"
