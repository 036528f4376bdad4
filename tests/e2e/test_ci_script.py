"""ci/deploy.sh, the script behind the GitHub Action and cloudbuild.yaml, run against localvertex as CI runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.endpoint import find_endpoint
from pipelines.demo import demo_config, export_classifier, train_and_export
from tests.integration.localvertex_fixtures import PROJECT

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return train_and_export(tmp_path_factory.mktemp("digits"), epochs=10)


def deploy(emulator, config: dict, work: Path) -> tuple[int, str, str]:
    """Runs the script as a CI job would: its own environment, GitHub's summary and output files."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "deploy.yaml").write_text(yaml.safe_dump(config))
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", str(work)),
        "VSP_LOCAL": "1",
        "VSP_DATA_DIR": str(emulator.data_dir),
        "VSP_OUT": str(work / "out"),
        "GITHUB_STEP_SUMMARY": str(work / "summary.md"),
        "GITHUB_OUTPUT": str(work / "output"),
    }
    done = subprocess.run(
        ["bash", str(ROOT / "ci" / "deploy.sh"), "deploy.yaml"], cwd=work, env=env, capture_output=True, text=True
    )
    read = lambda name: (work / name).read_text() if (work / name).exists() else ""  # noqa: E731
    return done.returncode, read("summary.md"), read("output") + done.stderr[-2000:]


def test_the_ci_script_passes_a_good_model_and_fails_a_bad_one_keeping_the_previous_traffic(emulator, digits, tmp_path):
    model, samples = digits
    config = {
        **demo_config(model, samples),
        "project": PROJECT,
        "model_display_name": "ci-digits",
        "endpoint_display_name": "ci-endpoint",
        "smoke_requests": 5,
    }
    code, summary, output = deploy(emulator, config, tmp_path / "good")
    assert code == 0, output
    assert "Smoke test passed" in summary and "| smoke-test | SUCCEEDED |" in summary
    outputs = dict(
        line.split("=", 1) for line in output.splitlines() if "=" in line and line.split("=")[0].isidentifier()
    )
    assert outputs["model_version"].endswith("@1") and outputs["endpoint"].startswith(f"projects/{PROJECT}/")
    before = dict(find_endpoint("ci-endpoint").traffic_split)

    bad = export_classifier(_noisy(), tmp_path / "noisy", training=True)
    code, summary, output = deploy(emulator, {**config, "model_dir": str(bad)}, tmp_path / "bad")
    assert code == 1, output
    assert "Smoke test failed" in summary and "FAILED" in summary
    assert find_endpoint("ci-endpoint").traffic_split == before  # the previous version still takes the traffic


def test_a_bad_config_exits_2_before_anything_is_submitted(emulator, tmp_path):
    code, summary, output = deploy(emulator, {"accelerator": "tpu", "container_version": "2.14"}, tmp_path / "cfg")
    assert code == 2 and summary == ""
    assert "container_version='2.14' has no tpu image" in output


def _noisy():
    """A digit model with dropout left on at serving time: its answers differ from its own reference."""
    import keras

    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
