"""`vsp schedule` on localvertex: create (with --replace), list, pause, resume and delete, with exit codes."""

from __future__ import annotations

import json

import pytest
import yaml

from pipelines.cli import main

pytestmark = pytest.mark.e2e


def vsp(capsys, emulator, *argv) -> tuple[int, str, str]:
    code = main(["schedule", *argv[:1], "--local", "--data-dir", str(emulator.data_dir), *argv[1:]])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "retrain.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data_uri": "gs://localvertex-staging/digits/train.jsonl",
                "epochs": 5,
                "seed": 0,
                "eval_data_uri": "gs://localvertex-staging/digits/eval.jsonl",
                "model_display_name": "scheduled-digits",
                "endpoint_display_name": "scheduled-endpoint",
                "container_version": "nightly",
            }
        )
    )
    return path


def test_create_list_pause_resume_replace_and_delete(capsys, emulator, config):
    create = ["--config", str(config), "--cron", "0 3 * * 1", "--timezone", "Europe/Berlin", "--display-name", "weekly"]
    code, out, err = vsp(capsys, emulator, "create", *create, "--json")
    assert code == 0, err
    (created,) = json.loads(out)
    assert code == 0 and created["state"] == "ACTIVE" and created["cron"] == "TZ=Europe/Berlin 0 3 * * 1"
    assert created["started_run_count"] == 0 and created["next_run_time"]

    code, out, _ = vsp(capsys, emulator, "list")
    assert code == 0 and "weekly" in out and "TZ=Europe/Berlin 0 3 * * 1" in out and "ACTIVE" in out

    code, out, _ = vsp(capsys, emulator, "pause", "weekly", "--json")
    assert code == 0 and json.loads(out)[0]["state"] == "PAUSED"
    code, out, _ = vsp(capsys, emulator, "resume", "weekly", "--catch-up", "--json")
    assert code == 0 and json.loads(out)[0]["state"] == "ACTIVE"

    code, out, _ = vsp(capsys, emulator, "create", *create, "--replace", "--json")
    (replaced,) = json.loads(out)
    assert code == 0 and replaced["name"] != created["name"]
    code, out, _ = vsp(capsys, emulator, "list", "--json")
    assert [s["name"] for s in json.loads(out) if s["display_name"] == "weekly"] == [replaced["name"]]

    code, out, _ = vsp(capsys, emulator, "delete", "weekly")
    assert code == 0 and "deleted" in out
    code, out, _ = vsp(capsys, emulator, "list", "--json")
    assert all(s["display_name"] != "weekly" for s in json.loads(out))


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--timezone", "Mars/Olympus"], "timezone='Mars/Olympus' is not an IANA time zone"),
        (["--cron", "61 * * * *"], "cron"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, emulator, config, extra, needle):
    argv = ["--config", str(config), "--cron", "0 3 * * 1", *extra]
    code, _, err = vsp(capsys, emulator, "create", *argv)
    assert code == 2 and needle in err and err.startswith("error: ")


def test_a_key_the_pipeline_does_not_take_is_refused_by_name(capsys, emulator, config):
    config.write_text(config.read_text() + "epochz: 3\n")
    code, _, err = vsp(capsys, emulator, "create", "--config", str(config), "--cron", "0 3 * * 1")
    assert code == 2 and "epochz=3 is not a parameter of the scheduled pipeline" in err


def test_an_unknown_schedule_exits_2(capsys, emulator):
    code, _, err = vsp(capsys, emulator, "pause", "no-such-schedule")
    assert code == 2 and "schedule='no-such-schedule' matches 0 schedules" in err
