"""The deploy pipeline end to end: compiled, then submitted as a PipelineJob to a real localvertex, as users run it."""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import time
from pathlib import Path

import pytest
import yaml
from google.cloud import aiplatform, storage

from components.endpoint import find_endpoint
from pipelines.compile import compile_pipelines
from pipelines.demo import demo_config, export_classifier, train_and_export
from pipelines.run import Options, pipeline_arguments, run
from tests.integration.localvertex_fixtures import PROJECT
from vertex_serving.config import DeployConfig
from vertex_serving.errors import InvalidConfig

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SERVICE_ACCOUNT = f"deployer@{PROJECT}.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return train_and_export(tmp_path_factory.mktemp("digits"), epochs=10)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> str:
    path, _retrain = compile_pipelines(tmp_path_factory.mktemp("compiled"))
    return str(path)


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


def submit(template: str, parameter_values: dict) -> aiplatform.PipelineJob:
    """As a user writes it: the compiled YAML, its parameters, a pipeline root and a service account."""
    job = aiplatform.PipelineJob(
        display_name="e2e-deploy",
        template_path=template,
        pipeline_root=f"gs://e2e-{time.time_ns()}/runs",
        parameter_values=parameter_values,
        enable_caching=False,
        job_id=f"e2e-{time.time_ns()}",
    )
    job.submit(service_account=SERVICE_ACCOUNT)
    return job


def download(uri: str) -> str:
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    return storage.Client().bucket(bucket).blob(name).download_as_text()


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
    assert {f.name for f in dataclasses.fields(DeployConfig)} == set(pipeline.component_spec.inputs)
    spec = yaml.safe_load(first.read_text())
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]  # branches too
    steps = {"validate", "convert", "warmup", "optimize", "upload", "trial", "endpoint", "deploy", "smoke-test"}
    assert steps <= {t["taskInfo"]["name"] for dag in dags for t in dag["tasks"].values()}


def test_two_submitted_runs_make_one_endpoint_two_versions_and_the_asked_split(emulator, digits, template):
    values = base_values(*digits)
    for optimization in ("as_configured", "measure"):  # the second run measures the flags: its choice is recorded
        job = submit(template, arguments(emulator, **values, optimization=optimization))
        job.wait()
        assert {t.task_name: t.state.name for t in job.task_details[1:]} == dict.fromkeys(
            (
                "validate-config",
                "convert",
                "warmup",
                "optimize",
                "upload",
                "trial",
                "endpoint",
                "deploy",
                "smoke-test",
            ),
            "SUCCEEDED",
        )
    endpoints = aiplatform.Endpoint.list(filter='display_name="e2e-endpoint"')
    assert len(endpoints) == 1
    model = aiplatform.Model.list(filter='display_name="e2e-digits"')[0]
    versions = aiplatform.models.ModelRegistry(model.resource_name).list_versions()
    assert sorted(v.version_id for v in versions) == ["1", "2"]
    assert aiplatform.Model(model.resource_name).version_id == "2"  # default once it passed, not at upload
    measured = aiplatform.Model(model.resource_name, version="2")
    assert "vsp-optimize: chose" in measured.version_description
    assert "vsp-optimize" not in aiplatform.Model(model.resource_name, version="1").version_description
    endpoint = find_endpoint("e2e-endpoint")
    by_version = {d.model_version_id: d.id for d in endpoint.list_models()}
    assert endpoint.traffic_split == {by_version["1"]: 70, by_version["2"]: 30}
    smoke = {t.task_name: t for t in job.task_details}["smoke-test"]
    metrics = dict(smoke.outputs["metrics"].artifacts[0].metadata)
    assert metrics["top1_agreement"] == 1.0 and metrics["p99_ms"] >= metrics["p50_ms"] > 0
    report = download(smoke.outputs["smoke_report"].artifacts[0].uri)
    assert report.startswith("# Smoke test passed") and "p50 / p99 latency" in report
    # Promoted in steps: the canary share (10% by default), then the 30% asked for, smoke-tested at each.
    assert "| 10% of traffic | passed |" in report and "| 30% of traffic | passed |" in report
    assert aiplatform.Endpoint.list(filter='display_name="trial-e2e-endpoint"') == []  # the trial endpoints are gone


def test_a_model_that_fails_its_trial_never_answers_a_user_and_leaves_nothing_behind(
    emulator, digits, template, tmp_path
):
    model, samples = digits
    values = base_values(model, samples, endpoint_display_name="e2e-rollback", model_display_name="e2e-rollback")
    submit(template, arguments(emulator, **values)).wait()
    endpoint = find_endpoint("e2e-rollback")
    before = dict(endpoint.traffic_split)
    registered = aiplatform.Model.list(filter='display_name="e2e-rollback"')[0].resource_name
    noisy = _noisy_model(tmp_path / "noisy")
    answered_by, failures, stop = [], [], threading.Event()

    def keep_predicting():
        row = json.loads(samples.read_text().splitlines()[0])
        while not stop.is_set():
            try:
                answered_by.append(endpoint.predict(instances=[row]).deployed_model_id)
            except Exception as e:  # any failure here is a failed prediction a user would see
                failures.append(e)

    watcher = threading.Thread(target=keep_predicting)
    watcher.start()
    try:
        job = submit(template, arguments(emulator, **{**values, "model_dir": str(noisy)}))
        with pytest.raises(RuntimeError) as e:
            job.wait()
    finally:
        stop.set()
        watcher.join()
    assert "The failed tasks are: [trial]" in str(e.value) and "SmokeTestFailed" in str(e.value)
    endpoint = find_endpoint("e2e-rollback")
    assert endpoint.traffic_split == before and [d.id for d in endpoint.list_models()] == list(before)
    assert failures == [] and answered_by and set(answered_by) == set(before)  # only the model that passed answered
    versions = aiplatform.models.ModelRegistry(registered).list_versions()
    assert [v.version_id for v in versions] == ["1"]  # the failed version is deleted
    assert aiplatform.Endpoint.list(filter='display_name="trial-e2e-rollback"') == []


def test_cancel_during_the_deploy_leaves_no_new_model_taking_traffic(emulator, digits, template):
    values = base_values(*digits, model_display_name="e2e-cancel", endpoint_display_name="e2e-cancel")
    submit(template, arguments(emulator, **values)).wait()
    before = dict(find_endpoint("e2e-cancel").traffic_split)
    job = submit(template, arguments(emulator, **values))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job._sync_gca_resource()
        if any(t.task_name == "deploy" and t.state.name == "RUNNING" for t in job.task_details):
            break
        time.sleep(0.2)
    job.cancel()
    while job.state.name not in ("PIPELINE_STATE_CANCELLED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_SUCCEEDED"):
        time.sleep(0.5)
        job._sync_gca_resource()
    assert job.state.name == "PIPELINE_STATE_CANCELLED"
    # The deploy operation the cancelled step started goes on to its end, as on Vertex AI: wait for its model.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(find_endpoint("e2e-cancel").list_models()) == len(before):
        time.sleep(0.5)
    endpoint = find_endpoint("e2e-cancel")
    assert {k: v for k, v in endpoint.traffic_split.items() if v} == before


def test_an_invalid_configuration_fails_in_validation_and_creates_nothing(emulator, digits, template, tmp_path):
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
    job = submit(template, arguments(emulator, **values))
    with pytest.raises(
        RuntimeError, match=r"\[validate-config\]\. validate-config: InvalidConfig: .*needs a TPU image"
    ):
        job.wait()
    assert [t.state.name for t in job.task_details[1:]] == ["FAILED"]
    assert (len(aiplatform.Model.list()), len(aiplatform.Endpoint.list())) == before
    config = tmp_path / "invalid.yaml"
    config.write_text(yaml.safe_dump(values))
    jobs = len(aiplatform.PipelineJob.list())
    with pytest.raises(InvalidConfig, match="machine_type='ct5lp-hightpu-1t' needs a TPU image, but accelerator='gpu'"):
        run(Options(config=config, local=True, data_dir=emulator.data_dir))
    assert len(aiplatform.PipelineJob.list()) == jobs  # vsp run submits nothing for a bad config


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


def test_vsp_run_local_with_a_user_catalog_version_end_to_end(digits, tmp_path):
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
    out = io.StringIO()
    try:
        assert run(Options(config=config, local=True, data_dir=data_dir, catalog=str(catalog)), out=out) == 0
        assert len(out.getvalue().splitlines()) <= 40 and "smoke-test       SUCCEEDED" in out.getvalue()
        state = read_state(data_dir)
        assert state["catalogs"] == [str(catalog.resolve())]
        init_vertex(LOCAL_PROJECT, "us-central1", state["api_endpoint"])  # where the run deployed
        (deployed,) = aiplatform.Model.list(filter='display_name="e2e-catalog"')
        assert deployed.container_spec.image_uri == image
        endpoint = find_endpoint("e2e-catalog")
        assert endpoint.traffic_split == {endpoint.list_models()[0].id: 100}
        result = io.StringIO()
        assert (
            run(Options(config=config, local=True, data_dir=data_dir, catalog=str(catalog), json=True), out=result) == 0
        )
        found = json.loads(result.getvalue())
        assert found["state"] == "PIPELINE_STATE_SUCCEEDED" and found["model_version"].endswith("@2")
        assert found["report"].startswith("# Smoke test passed") and found["metrics"]["top1_agreement"] == 1.0
        assert [t["state"] for t in found["tasks"]] == ["SUCCEEDED"] * 9
    finally:
        down(data_dir)
