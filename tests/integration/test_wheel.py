"""Compiling works from a wheel with no source tree, and the steps work in an image without the emulator."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("vertex_serving", "components", "localvertex", "pipelines")
IMAGE = "us-docker.pkg.dev/my-project/vsp/vertex-serving-pipelines:1.0.0"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding only the wheel; its dependencies are read from the test venv's site-packages."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(work / "dist"), str(source)])
    (wheel,) = (work / "dist").glob("*.whl")
    venv = work / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)])
    site = Path(run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]))
    # A plain path line, so the test venv's editable install of this source tree is not picked up.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def run(argv: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def test_vsp_compile_works_from_the_wheel_alone(installed, tmp_path):
    where = run([str(installed / "bin" / "python"), "-c", "import pipelines; print(pipelines.__file__)"], cwd=tmp_path)
    assert where.startswith(str(installed))
    out = run(
        [str(installed / "bin" / "vsp"), "compile", "--component-image", IMAGE, "--output-dir", "out"], cwd=tmp_path
    )
    assert "compiled out/vertex-serving-deploy.yaml" in out
    assert f"image: {IMAGE}" in (tmp_path / "out" / "vertex-serving-deploy.yaml").read_text()


def test_the_steps_run_without_localvertex_as_in_the_component_image(installed, tmp_path):
    python = str(installed / "bin" / "python")
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]))
    shutil.rmtree(site / "localvertex")
    script = (
        "import components.convert, components.deploy, components.endpoint, components.smoke_test, "
        "components.upload, components.warmup\n"
        "from components.validate import validate_config\n"
        "from vertex_serving.config import DeployConfig\n"
        "values = DeployConfig(project='my-project', model_dir='gs://my-bucket/m', model_display_name='m', endpoint_display_name='e',"
        " container_version='nightly').to_parameters()\n"
        "print(validate_config.python_func(**values).image_uri)\n"
    )
    assert run([python, "-c", script], cwd=tmp_path).endswith("tf_opt-cpu.nightly:latest")
    out = run(
        [str(installed / "bin" / "vsp"), "compile", "--component-image", IMAGE, "--output-dir", "o"], cwd=tmp_path
    )
    assert "compiled" in out
