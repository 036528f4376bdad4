"""`vsp run` when localvertex dies under it: one line and exit 1, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.localvertex_fixtures import Emulator
from tests.models import TESTDATA

pytestmark = pytest.mark.e2e


def test_an_emulator_that_dies_during_the_run_ends_it_with_one_line(tmp_path):
    emulator = Emulator(tmp_path / "localvertex", tpu_cores=0).start()
    config = tmp_path / "deploy.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model_dir": str(TESTDATA / "saved_model_half_plus_two_cpu" / "00000123"),
                "model_display_name": "doomed",
                "endpoint_display_name": "doomed",
                "container_version": "nightly",
            }
        )
    )
    vsp = Path(sys.executable).with_name("vsp")
    run = subprocess.Popen(
        [str(vsp), "run", "--local", "--config", str(config), "--data-dir", str(emulator.data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = run.stdout.readline()
        assert first.startswith("run: projects/"), first + run.stderr.read()
        emulator.kill()
        code = run.wait(120)
        err = run.stderr.read()
        assert code == 1 and "Traceback" not in err
        assert err.strip().splitlines()[-1].startswith("error: localvertex stopped answering while")
    finally:
        run.kill()
        emulator.stop()
