"""The example retrain pipeline as a PipelineJob on localvertex: a first model deploys, a worse one is skipped with
the endpoint untouched, a better one deploys as the next version and is smoke-tested."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from google.cloud import aiplatform, storage

from components.endpoint import find_endpoint
from components.gate import recorded
from components.train import digits_examples, write_examples
from pipelines.compile import compile_pipelines
from pipelines.run import Target
from pipelines.schedule import parameter_values
from tests.integration.localvertex_fixtures import LOCATION, PROJECT

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("digits-data")
    (x_train, y_train), (x_eval, y_eval) = digits_examples()
    write_examples(folder / "train.jsonl", x_train, y_train)
    rows = [{"instance": {"pixels": x.round(4).tolist()}, "label": int(y)} for x, y in zip(x_eval, y_eval, strict=True)]
    (folder / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "samples.jsonl").write_text("".join(json.dumps(r["instance"]) + "\n" for r in rows[:16]))
    return {name: folder / f"{name}.jsonl" for name in ("train", "eval", "samples")}


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    _deploy, retrain = compile_pipelines(tmp_path_factory.mktemp("compiled"))
    return retrain


def retrain(emulator, template: Path, data: dict, epochs: int) -> aiplatform.PipelineJob:
    values = {
        "data_uri": str(data["train"]),
        "epochs": epochs,
        "seed": 0,
        "eval_data_uri": str(data["eval"]),
        "gate_metric": "accuracy",
        "min_improvement": 0.01,
        "project": PROJECT,
        "model_display_name": "retrained-digits",
        "endpoint_display_name": "retrained-endpoint",
        "sample_instances_uri": str(data["samples"]),
        "container_version": "nightly",
        "smoke_requests": 5,
    }
    target = Target(PROJECT, LOCATION, emulator.state["api_endpoint"], "", staging_bucket="gs://localvertex-staging")
    job = aiplatform.PipelineJob(
        display_name="retrain",
        template_path=str(template),
        pipeline_root=f"gs://retrain-{time.time_ns()}",
        parameter_values=parameter_values(template, values, target),
        job_id=f"retrain-{time.time_ns()}",
        enable_caching=False,
    )
    job.submit(service_account=f"trainer@{PROJECT}.iam.gserviceaccount.com")
    job.wait()
    return job


def states(job) -> dict[str, str]:
    return {t.task_name: t.state.name for t in job.task_details}


def gate_report(job) -> str:
    (report,) = {t.task_name: t for t in job.task_details}["gate"].outputs["gate_report"].artifacts
    bucket, _, name = report.uri.removeprefix("gs://").partition("/")
    return storage.Client().bucket(bucket).blob(name).download_as_text()


def test_first_deploys_worse_is_skipped_better_deploys_the_next_version(emulator, template, data):
    first = retrain(emulator, template, data, epochs=8)
    assert states(first)["smoke-test"] == "SUCCEEDED" and gate_report(first).startswith("# Gate: deploy\n")
    endpoint = find_endpoint("retrained-endpoint")
    (v1,) = endpoint.list_models()
    champion = aiplatform.Model(f"{v1.model.split('@')[0]}@{v1.model_version_id}")
    score = recorded(champion.version_description, "accuracy")
    assert score is not None and first.job_id in champion.version_description
    split = dict(endpoint.traffic_split)

    worse = retrain(emulator, template, data, epochs=1)
    assert worse.state.name == "PIPELINE_STATE_SUCCEEDED" and "smoke-test" not in states(worse)
    assert gate_report(worse).startswith("# Gate: deploy skipped")
    assert find_endpoint("retrained-endpoint").traffic_split == split  # the endpoint is untouched

    better = retrain(emulator, template, data, epochs=60)
    assert states(better)["smoke-test"] == "SUCCEEDED"
    endpoint = find_endpoint("retrained-endpoint")
    by_version = {d.model_version_id: d.id for d in endpoint.list_models()}
    assert endpoint.traffic_split[by_version["2"]] == 100
    newest = aiplatform.Model(f"{v1.model.split('@')[0]}@2")
    assert recorded(newest.version_description, "accuracy") >= score + 0.01
