"""What a user sees from `vsp images` and `vsp validate`."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import main
from tests.models import SAMPLES, TESTDATA

MODEL_DIR = str(TESTDATA / "saved_model_half_plus_two_cpu" / "00000123")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def rows(out: str) -> dict:
    """Table rows keyed by (version, accelerator, runtime)."""
    found = {}
    for line in out.splitlines():
        cells = line.split()
        if len(cells) > 3 and cells[2] in ("optimized", "standard"):
            found[tuple(cells[:3])] = line
    return found


def test_images_for_tpu_in_june_2025(capsys):
    code, out, _ = run(capsys, "images", "--accelerator", "tpu", "--as-of", "2025-06-01")
    table = rows(out)
    assert code == 0 and set(table) == {
        ("nightly", "tpu", "optimized"),
        ("2.16", "tpu", "optimized"),
        ("2.15", "tpu", "optimized"),
    }
    assert "usable until 2025-08-15" in table["2.15", "tpu", "optimized"]
    assert "past end of availability (2025-04-26)" in table["2.16", "tpu", "optimized"]
    assert "usable (nightly: no SLA)" in table["nightly", "tpu", "optimized"]


def test_images_today_only_nightly_optimized_is_usable_unless_the_catalog_is_extended(capsys, tmp_path):
    code, out, _ = run(capsys, "images", "--as-of", "2026-11-22")
    usable = {key for key, line in rows(out).items() if "past end" not in line}
    assert code == 0 and {v for v, _, runtime in usable if runtime == "optimized"} == {"nightly"}
    assert "Only nightly images (no SLA) of the optimized runtime" in out and "--catalog FILE" in out
    extra = tmp_path / "more.toml"
    extra.write_text('[optimized."2.18"]\nend_of_availability = 2027-10-01\ncpu = "x/tf_opt-cpu.2-18"\n')
    code, out, _ = run(capsys, "images", "--as-of", "2026-11-22", "--catalog", str(extra))
    assert "usable" in rows(out)["2.18", "cpu", "optimized"] and "Only nightly" not in out


def test_standard_images_follow_their_own_support_dates(capsys):
    """tf2-cpu.2-15 is past the optimized 2.15's end of availability, yet Vertex AI still accepts it."""
    code, out, _ = run(capsys, "images", "--accelerator", "cpu", "--as-of", "2026-11-22")
    table = rows(out)
    assert "usable until 2027-01-14" in table["2.15", "cpu", "standard"]
    assert "past end of availability (2025-08-15)" in table["2.15", "cpu", "optimized"]
    assert "past end of availability" in table["2.13", "cpu", "standard"]
    assert ("2.1", "cpu", "standard") in table and ("2.1", "cpu", "optimized") not in table


def test_images_json_for_ci(capsys):
    code, out, _ = run(capsys, "images", "--accelerator", "gpu", "--as-of", "2025-06-01", "--json")
    data = json.loads(out)
    assert code == 0 and data["as_of"] == "2025-06-01"
    by_key = {(i["version"], i["runtime"]): i for i in data["images"]}
    assert by_key["2.13", "optimized"]["cuda"] == 11 and by_key["2.13", "optimized"]["usable"] is True


def test_validate_prints_image_args_and_machine_spec(capsys, tmp_path):
    config = tmp_path / "deploy.yaml"
    config.write_text(
        f"model_dir: {MODEL_DIR}\nsample_instances_uri: {SAMPLES}\nmodel_display_name: m\nendpoint_display_name: e\n"
        "accelerator: tpu\ncontainer_version: nightly\nmachine_type: ct5lp-hightpu-4t\n"
        "tpu_mode: preconverted\nallowed_batch_sizes: [4, 16]\n"
    )
    code, out, err = run(capsys, "validate", str(config))
    assert code == 0
    assert "tf_opt-tpu.nightly:latest" in out and "--saved_model_tags='serve,tpu'" in out
    assert "--disable_optimizer=true" in out and "ct5lp-hightpu-4t (4 TPU v5e chips)" in out
    assert "allowed_batch_sizes=(4, 16)" in out and "no SLA" in err


def test_validate_prints_every_problem_on_its_own_line_and_exits_2(capsys, tmp_path):
    config = tmp_path / "deploy.toml"
    config.write_text(
        f'model_dir = "{MODEL_DIR}"\nsample_instances_uri = "{SAMPLES}"\nmodel_display_name = "m"\nendpoint_display_name = "e"\n'
        'accelerator = "gpu"\ncontainer_version = "nightly"\nmachine_type = "ct5lp-hightpu-1t"\naccelerator_count = 1\n'
    )
    code, out, err = run(capsys, "validate", str(config))
    lines = err.splitlines()
    assert code == 2 and out == ""
    assert lines == [
        "error: machine_type='ct5lp-hightpu-1t' needs a TPU image, but accelerator='gpu': "
        "set accelerator='tpu' (a container_version with a TPU image)",
        "error: accelerator_count=1 cannot be set with machine_type='ct5lp-hightpu-1t': its TPU is built in: "
        "remove accelerator_count",
    ]


def test_validate_json_for_ci(capsys, tmp_path):
    config = tmp_path / "deploy.yaml"
    config.write_text(
        f"model_dir: {MODEL_DIR}\nsample_instances_uri: {SAMPLES}\nmodel_display_name: m\nendpoint_display_name: e\naccelerator: cpu\n"
        "container_version: nightly\nallow_precompilation: true\n"
    )
    code, out, _ = run(capsys, "validate", "--json", str(config))
    data = json.loads(out)
    assert code == 0 and data["container_args"] == ["--allow_precompilation=true"]
    assert data["machine_spec"] == {"machine_type": "n1-standard-4"}


USER_CATALOG = '[optimized."2.17"]\nend_of_availability = 2099-01-01\ncpu = "example.com/tf_opt-cpu.2-17:latest"\n'


def test_validate_takes_a_user_catalog_from_the_flag_or_the_config(capsys, tmp_path):
    (tmp_path / "c.toml").write_text(USER_CATALOG)
    config = tmp_path / "deploy.yaml"
    config.write_text(
        f'model_dir: {MODEL_DIR}\nsample_instances_uri: {SAMPLES}\nmodel_display_name: m\nendpoint_display_name: e\naccelerator: cpu\ncontainer_version: "2.17"\n'
    )
    code, _, err = run(capsys, "validate", str(config))
    assert code == 2 and "add it with --catalog FILE" in err
    code, out, _ = run(capsys, "validate", str(config), "--catalog", str(tmp_path / "c.toml"))
    assert code == 0 and "example.com/tf_opt-cpu.2-17:latest" in out
    config.write_text(
        f'model_dir: {MODEL_DIR}\nsample_instances_uri: {SAMPLES}\nmodel_display_name: m\nendpoint_display_name: e\ncontainer_version: "2.17"\n'
        f"catalog: {tmp_path / 'c.toml'}\n"
    )
    code, out, _ = run(capsys, "validate", str(config))
    assert code == 0 and "example.com/tf_opt-cpu.2-17:latest" in out


def test_compile_writes_the_pipeline_for_the_image_given(capsys, tmp_path):
    image = "us-docker.pkg.dev/p/r/vertex-serving-pipelines:7"
    code, out, err = run(capsys, "compile", "--output-dir", str(tmp_path), "--component-image", image)
    assert code == 0 and err == "" and f"compiled {tmp_path}/vertex-serving-deploy.yaml" in out
    assert f"image: {image}" in (tmp_path / "vertex-serving-deploy.yaml").read_text()


@pytest.mark.parametrize("command", [[], ["images"], ["validate"], ["compile"], ["run"], ["demo"]])
def test_every_command_has_help_with_an_example(capsys, command):
    with pytest.raises(SystemExit) as e:
        main([*command, "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "usage: vsp" in out
    if command:
        assert "example:\n  vsp " + command[0] in out


def test_the_installed_vsp_command_exits_2_on_a_bad_config(tmp_path):
    vsp = shutil.which("vsp", path=str(Path(sys.executable).parent))
    config = tmp_path / "deploy.yaml"
    config.write_text(
        f"model_dir: {MODEL_DIR}\nsample_instances_uri: {SAMPLES}\nmodel_display_name: m\nendpoint_display_name: e\naccelerator: tpu\ncontainer_version: '2.14'\n"
    )
    done = subprocess.run([vsp, "validate", str(config)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: container_version='2.14' has no tpu image: use a version that offers tpu: nightly, 2.16, 2.15"
    )
