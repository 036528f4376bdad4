"""The upload, trial, endpoint, deploy and smoke-test shells, called through `.python_func` against a real localvertex."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from google.cloud import aiplatform
from google_cloud_pipeline_components.types.artifact_types import VertexEndpoint, VertexModel
from kfp import dsl

from components.convert import prepare, reference_predictions
from components.deploy import deploy
from components.endpoint import endpoint
from components.smoke_test import smoke_test
from components.trial import trial
from components.upload import upload
from pipelines.logs import show_log
from tests.integration.localvertex_fixtures import CPU_IMAGE, LOCATION, PROJECT
from tests.models import TESTDATA

pytestmark = pytest.mark.integration


def test_the_shells_take_a_model_to_a_smoke_tested_endpoint(emulator, tmp_path):
    where = {"project": PROJECT, "location": LOCATION, "api_endpoint": emulator.state["api_endpoint"]}
    model = prepare(str(TESTDATA / "saved_model_half_plus_two_cpu" / "00000123"), tmp_path / "model", "", "", "")
    reference = dsl.Dataset(uri=str(tmp_path / "reference.json"))
    Path(reference.path).write_text(json.dumps(reference_predictions(model, [[1.0], [3.0]], ("serve",))))

    vertex_model = VertexModel(name="vertex_model", uri="", metadata={})
    upload.python_func(
        **where,
        staging_bucket="gs://localvertex-staging",
        display_name="shells",
        image_uri=CPU_IMAGE,
        container_args=["--allow_precompilation=true"],
        model=dsl.Model(uri=str(model)),
        vertex_model=vertex_model,
        run_name="shell-run",
    )
    uploaded = aiplatform.Model(vertex_model.metadata["resourceName"])
    assert uploaded.labels == {"vsp-pipeline-run": "shell-run"}

    smoke = {
        "reference": reference,
        "smoke_atol": 1e-4,
        "smoke_rtol": 1e-3,
        "smoke_min_top1_agreement": 0.99,
        "smoke_requests": 5,
        "smoke_p99_latency_ms": 0.0,
    }
    trial_report = dsl.Markdown(uri=str(tmp_path / "trial.md"))
    trial.python_func(
        **where,
        **smoke,
        vertex_model=vertex_model,
        endpoint_display_name="shells-endpoint",
        endpoint_network="",
        machine_type="n1-standard-4",
        accelerator_type="",
        accelerator_count=0,
        deploy_timeout_seconds=300.0,
        gcp_resources=str(tmp_path / "trial_resources"),
        trial_report=trial_report,
        run_name="shell-run",
    )
    assert Path(trial_report.path).read_text().startswith("# Smoke test passed")
    assert aiplatform.Endpoint.list(filter='display_name="trial-shells-endpoint"') == []  # gone once tried
    assert aiplatform.Model(vertex_model.metadata["resourceName"]).version_id == "1"  # a passed version is kept

    vertex_endpoint = VertexEndpoint(name="vertex_endpoint", uri="", metadata={})
    endpoint.python_func(**where, display_name="shells-endpoint", network="", vertex_endpoint=vertex_endpoint)
    again = VertexEndpoint(name="vertex_endpoint", uri="", metadata={})
    endpoint.python_func(**where, display_name="shells-endpoint", network="", vertex_endpoint=again)
    assert again.metadata["resourceName"] == vertex_endpoint.metadata["resourceName"]  # never a second endpoint

    resources = tmp_path / "gcp_resources"
    deployed = deploy.python_func(
        **where,
        vertex_model=vertex_model,
        vertex_endpoint=vertex_endpoint,
        machine_type="n1-standard-4",
        accelerator_type="",
        accelerator_count=0,
        min_replica_count=1,
        max_replica_count=1,
        traffic_percentage=100,
        canary_percentage=10,
        deploy_timeout_seconds=300.0,
        gcp_resources=str(resources),
    )
    assert json.loads(resources.read_text())["resources"][0]["resourceType"] == "DeployModelLro"
    assert (
        aiplatform.Endpoint(vertex_endpoint.metadata["resourceName"]).traffic_split == {}
    )  # no traffic until promoted
    assert json.loads(deployed.target_traffic_split) == {deployed.deployed_model_id: 100}
    assert json.loads(deployed.canary_traffic_split) == {}  # the first model of an endpoint takes it all at once

    metrics, report = dsl.Metrics(uri=str(tmp_path / "metrics")), dsl.Markdown(uri=str(tmp_path / "report.md"))
    smoke_test.python_func(
        **where,
        **smoke,
        vertex_endpoint=vertex_endpoint,
        vertex_model=vertex_model,
        deployed_model_id=deployed.deployed_model_id,
        previous_traffic_split=deployed.previous_traffic_split,
        canary_traffic_split=deployed.canary_traffic_split,
        target_traffic_split=deployed.target_traffic_split,
        undeploy_zero_traffic=False,
        metrics=metrics,
        smoke_report=report,
    )
    assert metrics.metadata["max_abs_diff"] == 0.0 and "passed" in Path(report.path).read_text().lower()
    # The report quotes the runtime's optimization lines from the DeployedModel's log, as `vsp emulator logs` shows it.
    text = Path(report.path).read_text()
    assert f'labels.deployed_model_id="{deployed.deployed_model_id}"' in text
    quoted = text.split("## Optimization log", 1)[1]
    assert "allow_precompilation=true: XLA compiles" in quoted and "warmup requests replayed" in quoted
    out = io.StringIO()
    assert show_log(emulator.data_dir, deployed.deployed_model_id, out=out) == 0
    assert "allow_precompilation=true: XLA compiles" in out.getvalue() and "listening on" in out.getvalue()
    live = aiplatform.Endpoint(vertex_endpoint.metadata["resourceName"])
    assert live.traffic_split == {deployed.deployed_model_id: 100}
