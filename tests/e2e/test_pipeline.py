"""The deploy pipeline end to end: compiled for Vertex AI, and run through kfp.local against a real localvertex."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pytest
import yaml
from google.cloud import aiplatform

from components.endpoint import find_endpoint
from pipelines.demo import demo_config, export_classifier, train_and_export
from pipelines.run import pipeline_arguments, run_local, run_pipeline
from tests.integration.localvertex_fixtures import PROJECT
from vertex_serving.config import DeployConfig

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return train_and_export(tmp_path_factory.mktemp("digits"), epochs=10)


def arguments(emulator, **values) -> dict:
    config = DeployConfig.from_mapping(values)
    return pipeline_arguments(config, emulator.state["api_endpoint"], "gs://localvertex-staging")


def base_values(model: Path, samples: Path, **overrides) -> dict:
    return {
        **demo_config(model, samples),
        "model_display_name": "e2e-digits",
        "endpoint_display_name": "e2e-endpoint",
        "traffic_percentage": 30,
        "smoke_requests": 10,
        "project": PROJECT,
        **overrides,
    }


def test_the_compiled_pipeline_loads_back_and_names_every_parameter(tmp_path):
    import subprocess
    import sys

    from kfp import components

    for out in ("a", "b"):
        subprocess.run(
            [sys.executable, str(ROOT / "compile.py"), "--output-dir", str(tmp_path / out)], check=True, cwd=ROOT
        )
    first, second = (tmp_path / d / "vertex-serving-deploy.yaml" for d in ("a", "b"))
    assert first.read_bytes() == second.read_bytes()
    pipeline = components.load_component_from_file(str(first))
    wanted = {f.name for f in dataclasses.fields(DeployConfig)} | {"api_endpoint"}
    assert wanted <= set(pipeline.component_spec.inputs)
    spec = yaml.safe_load(first.read_text())
    assert {"validate", "convert", "warmup", "upload", "endpoint", "deploy", "smoke-test"} <= {
        t["taskInfo"]["name"] for t in spec["root"]["dag"]["tasks"].values()
    }


def test_two_runs_make_one_endpoint_two_versions_and_the_asked_split(emulator, digits, tmp_path):
    values = base_values(*digits)
    first_steps, _ = run_pipeline(arguments(emulator, **values), tmp_path / "runs")
    steps, result = run_pipeline(arguments(emulator, **values), tmp_path / "runs")
    assert {s for _, s, _ in first_steps + steps} == {"SUCCESS"}, first_steps + steps
    endpoints = aiplatform.Endpoint.list(filter='display_name="e2e-endpoint"')
    assert len(endpoints) == 1
    model = aiplatform.Model.list(filter='display_name="e2e-digits"')[0]
    assert sorted(v.version_id for v in aiplatform.models.ModelRegistry(model.resource_name).list_versions()) == [
        "1",
        "2",
    ]
    endpoint = find_endpoint("e2e-endpoint")
    by_version = {d.model_version_id: d.id for d in endpoint.list_models()}
    assert endpoint.traffic_split == {by_version["1"]: 70, by_version["2"]: 30}
    metrics = result.outputs["metrics"].metadata
    assert metrics["top1_agreement"] == 1.0 and metrics["p99_ms"] >= metrics["p50_ms"] > 0
    report = Path(result.outputs["report"].path).read_text()
    assert report.startswith("# Smoke test passed") and "p50 / p99 latency" in report


def test_a_model_that_disagrees_is_rolled_back_while_predictions_keep_succeeding(emulator, digits, tmp_path):
    model, samples = digits
    values = base_values(model, samples, endpoint_display_name="e2e-rollback", model_display_name="e2e-rollback")
    assert {s for _, s, _ in run_pipeline(arguments(emulator, **values), tmp_path / "runs")[0]} == {"SUCCESS"}
    endpoint = find_endpoint("e2e-rollback")
    before = dict(endpoint.traffic_split)
    noisy = _noisy_model(tmp_path / "noisy")
    failures, stop = [], threading.Event()

    def keep_predicting():
        row = json.loads(samples.read_text().splitlines()[0])
        while not stop.is_set():
            try:
                endpoint.predict(instances=[row])
            except Exception as e:  # any failure here is a failed prediction a user would see
                failures.append(e)

    watcher = threading.Thread(target=keep_predicting)
    watcher.start()
    try:
        steps, _ = run_pipeline(arguments(emulator, **{**values, "model_dir": str(noisy)}), tmp_path / "runs")
    finally:
        stop.set()
        watcher.join()
    assert [(n, s) for n, s, _ in steps][-1] == ("smoke-test", "FAILURE")
    endpoint = find_endpoint("e2e-rollback")
    assert endpoint.traffic_split == before and [d.id for d in endpoint.list_models()] == list(before)
    assert failures == []


def test_an_invalid_configuration_fails_in_validation_and_creates_nothing(emulator, digits, tmp_path):
    values = base_values(
        *digits,
        accelerator="gpu",
        accelerator_type="NVIDIA_TESLA_T4",
        accelerator_count=1,
        machine_type="ct5lp-hightpu-1t",
        model_display_name="e2e-invalid",
        endpoint_display_name="e2e-invalid",
        tpu_mode="",
        tpu_function_alias="",
    )
    before = (len(aiplatform.Model.list()), len(aiplatform.Endpoint.list()))
    steps, _ = run_pipeline(arguments(emulator, **values), tmp_path / "runs")
    assert steps == [("validate-config", "FAILURE", steps[0][2])]
    assert (len(aiplatform.Model.list()), len(aiplatform.Endpoint.list())) == before
    config = tmp_path / "invalid.yaml"
    config.write_text(yaml.safe_dump(values))
    from vertex_serving.errors import InvalidConfig

    with pytest.raises(InvalidConfig, match="machine_type='ct5lp-hightpu-1t' needs a TPU image, but accelerator='gpu'"):
        run_local(config, data_dir=emulator.data_dir)


def _noisy_model(path: Path) -> Path:
    """A digit model that forgot `training=False`: its dropout makes served answers differ from its reference."""
    import keras

    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    return export_classifier(model, path, training=True)


def test_a_user_catalog_version_runs_end_to_end_with_vsp_run_local_catalog(digits, tmp_path):
    """2.17 is in no packaged table of the optimized runtime: the user's catalog reaches validate and localvertex."""
    from localvertex.control import down
    from localvertex.emulator import read_state
    from pipelines.run import LOCAL_PROJECT
    from vertex_serving.sdk import init_vertex

    image = "us-docker.pkg.dev/vertex-ai-restricted/prediction/tf_opt-cpu.2-17:latest"
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(f'[optimized."2.17"]\nend_of_availability = 2099-12-31\ncpu = "{image}"\n')
    model, samples = digits
    config = tmp_path / "deploy.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model_dir": str(model),
                "sample_instances_uri": str(samples),
                "model_display_name": "e2e-catalog",
                "endpoint_display_name": "e2e-catalog",
                "container_version": "2.17",
                "smoke_requests": 5,
            }
        )
    )
    data_dir = tmp_path / "localvertex"
    try:
        assert run_local(config, data_dir=data_dir, pipeline_root=tmp_path / "runs", catalog=str(catalog)) == 0
        state = read_state(data_dir)
        assert state["catalogs"] == [str(catalog.resolve())]
        init_vertex(LOCAL_PROJECT, "us-central1", state["api_endpoint"])  # where run_local deployed
        (deployed,) = aiplatform.Model.list(filter='display_name="e2e-catalog"')
        assert deployed.container_spec.image_uri == image
        assert find_endpoint("e2e-catalog").traffic_split == {find_endpoint("e2e-catalog").list_models()[0].id: 100}
    finally:
        down(data_dir)
