"""Compiling lives in the package: the image is an argument, the output is deterministic and installs nothing."""

import yaml

from components import COMPONENT_IMAGE
from pipelines.compile import compile_pipelines, is_registry_path, main
from vertex_serving import __version__

REGISTRY_IMAGE = "us-docker.pkg.dev/my-project/vsp/vertex-serving-pipelines:1.2.3"


def images(path) -> set[str]:
    executors = yaml.safe_load(path.read_text())["deploymentSpec"]["executors"]
    return {e["container"]["image"] for e in executors.values()}


def test_two_compiles_in_one_process_each_get_their_own_image(tmp_path):
    first = compile_pipelines(tmp_path / "a", REGISTRY_IMAGE)
    second = compile_pipelines(tmp_path / "b", "europe-docker.pkg.dev/p/r/vsp:9")
    assert [p.name for p in first] == ["vertex-serving-deploy.yaml", "vertex-serving-retrain.yaml"]
    assert all(images(p) == {REGISTRY_IMAGE} for p in first)
    assert all(images(p) == {"europe-docker.pkg.dev/p/r/vsp:9"} for p in second)


def test_the_default_image_is_tagged_with_the_package_version(tmp_path):
    path, _ = compile_pipelines(tmp_path)
    assert images(path) == {COMPONENT_IMAGE} and COMPONENT_IMAGE.endswith(f":{__version__}")


def test_compiled_steps_do_not_reinstall_kfp(tmp_path):
    for path in compile_pipelines(tmp_path, REGISTRY_IMAGE):
        assert "pip install" not in path.read_text()


def test_compiling_twice_gives_the_same_bytes(tmp_path):
    first, second = compile_pipelines(tmp_path / "a", REGISTRY_IMAGE), compile_pipelines(tmp_path / "b", REGISTRY_IMAGE)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_an_image_that_is_not_a_registry_path_is_named_in_a_warning(tmp_path, capsys):
    assert main(["--output-dir", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert f"component_image='{COMPONENT_IMAGE}' is not a registry path" in err and "not on Vertex AI" in err
    assert main(["--output-dir", str(tmp_path), "--component-image", REGISTRY_IMAGE]) == 0
    assert "warning" not in capsys.readouterr().err


def test_registry_paths():
    assert is_registry_path(REGISTRY_IMAGE)
    assert is_registry_path("gcr.io/p/vsp@sha256:" + "a" * 64)
    assert is_registry_path("localhost:5000/vsp:1")
    assert not is_registry_path("vertex-serving-pipelines:0.1.0")
    assert not is_registry_path("vsp")
