"""Starting and stopping the model server: warmup rules, load failures, flags, Cloud Storage, shutdown."""

from __future__ import annotations

import asyncio
import shutil
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from google.cloud import storage

from localvertex.modelserver import app as server_app
from localvertex.modelserver.launch import free_port, start_model_server
from tests.integration.conftest import Client
from tests.models import TESTDATA, tagged_sum
from vertex_serving.tfserving.warmup import warmup_records, write_warmup_file

pytestmark = pytest.mark.integration
SAMPLES = {"a": np.array([[1, 2, 3], [4, 5, 6]], np.float32), "tag": np.array([b"x", b"y"], object)}


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    return tagged_sum(tmp_path_factory.mktemp("models") / "tagged", alias="tpu_func")


def copy(model, tmp_path, name="model"):
    return shutil.copytree(model, tmp_path / name)


def failed_start(model, tmp_path, *args):
    """Runs a server expected to exit; returns its exit code and output."""
    server = start_model_server(str(model), list(args), log_path=tmp_path / "server.log")
    code = server.process.wait(120)
    return code, server.log_path.read_text()


def test_warmup_records_are_replayed_before_health(serve, tagged, tmp_path):
    model = copy(tagged, tmp_path)
    write_warmup_file(model, warmup_records(SAMPLES, [1, 4, 8]))
    server = serve(model, "--enable_batching", "--max_batch_size=8", "--allowed_batch_sizes=4,8")
    log = server.log_path.read_text()
    assert "3 warmup requests replayed" in log
    assert Client(server).post("/predict", {"instances": [{"a": [1, 1, 1], "tag": "t"}]})[0] == 200


def test_more_than_1000_warmup_records_fail_the_load(tagged, tmp_path):
    model = copy(tagged, tmp_path)
    write_warmup_file(model, warmup_records(SAMPLES, [1], repeats=1000) + warmup_records(SAMPLES, [2]))
    code, log = failed_start(model, tmp_path)
    assert code == 1 and "Number of warmup records exceeds the maximum (1000)" in log


def test_a_corrupt_warmup_file_fails_the_load(tagged, tmp_path):
    model = copy(tagged, tmp_path)
    path = write_warmup_file(model, warmup_records(SAMPLES, [1, 2]))
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF
    path.write_bytes(bytes(data))
    code, log = failed_start(model, tmp_path)
    assert code == 1 and "Corrupt warmup file" in log


def test_health_stays_503_until_warmup_ends(tagged, tmp_path, monkeypatch):
    model = copy(tagged, tmp_path)
    write_warmup_file(model, warmup_records(SAMPLES, [1]))
    entered, release = threading.Event(), threading.Event()
    real_replay = server_app.replay

    def slow_replay(records, predict):
        entered.set()
        release.wait(60)
        return real_replay(records, predict)

    monkeypatch.setattr(server_app, "replay", slow_replay)
    port = free_port()
    server = server_app.ModelServer(server_app.Settings(storage_uri=str(model), port=port))

    def health() -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as e:
            return e.code

    async def scenario():
        from aiohttp import web

        runner = web.AppRunner(server.app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        loop = asyncio.get_running_loop()
        loading = loop.run_in_executor(None, server.load)
        await loop.run_in_executor(None, entered.wait, 60)
        during = await loop.run_in_executor(None, health)
        release.set()
        await loading
        after = await loop.run_in_executor(None, health)
        await runner.cleanup()
        return during, after

    try:
        assert asyncio.run(scenario()) == (503, 200)
    finally:
        release.set()
        server.close()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--saved_model_tags='serve,tpu'"], "no MetaGraph with tags serve,tpu"),
        (["--converter_options_string='tpu_functions { function_alias: \"missing\" }'"], "function alias 'missing'"),
    ],
)
def test_a_model_that_cannot_load_exits_non_zero_with_the_reason(tagged, tmp_path, args, needle):
    code, log = failed_start(tagged, tmp_path, *args)
    assert code == 1 and "modelserver: failed to load the model" in log and needle in log


def test_a_missing_model_folder_exits_non_zero(tmp_path):
    code, log = failed_start(tmp_path / "nowhere", tmp_path)
    assert code == 1 and "is not a directory" in log


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--fast=true"], "unrecognized arguments: --fast=true"),
        (["--allow_compression=maybe"], "allow_compression='maybe'"),
    ],
)
def test_unknown_flags_and_bad_values_are_refused(tagged, tmp_path, args, needle):
    code, log = failed_start(tagged, tmp_path, *args)
    assert code == 2 and needle in log


def test_documented_tpu_args_are_accepted_verbatim_and_sigterm_stops_cleanly(serve, tagged):
    server = serve(
        tagged,
        "--converter_options_string='tpu_functions { function_alias: \"tpu_func\" }'",
        "--allow_precompilation=true",
        env={"AIP_MACHINE_TYPE": "ct5lp-hightpu-1t"},
    )
    assert (
        Client(server).post("/predict", {"instances": [{"a": [1, 1, 1], "tag": "t"}]})[1]["predictions"][0]["sum"]
        == 6.0
    )
    log = server.log_path.read_text()
    assert "Cloud TPU v5e emulated on this CPU" in log and "allow_precompilation=true: XLA" in log
    assert server.stop() == 0


def test_a_gs_model_is_read_through_the_storage_emulator(serve, tmp_path, monkeypatch):
    from gcp_storage_emulator.server import create_server

    port = free_port()
    emulator = create_server("127.0.0.1", port, in_memory=True)
    emulator.start()
    try:
        env = {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}"}
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", env["STORAGE_EMULATOR_HOST"])
        client = storage.Client()
        bucket = client.create_bucket("models")
        source = TESTDATA / "saved_model_half_plus_two_cpu"
        for path in source.rglob("*"):
            if path.is_file():
                bucket.blob(f"half/{path.relative_to(source)}").upload_from_filename(str(path))
        server = serve("gs://models/half", env=env)
        assert Client(server).post("/predict", {"instances": [2.0]}) == (200, {"predictions": [3.0]})
    finally:
        emulator.stop()
