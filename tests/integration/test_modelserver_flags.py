"""TF Serving's model-server flags beyond the model and the ports: request timeout, monitoring config, warmup, and
the polling and TF Lite flags a TF Serving command line carries, which are accepted and say what they do here."""

from __future__ import annotations

import shutil
import urllib.request

import numpy as np
import pytest

from localvertex.modelserver.launch import start_model_server
from tests.integration.conftest import Client
from tests.models import TESTDATA
from vertex_serving.tfserving.warmup import warmup_records, write_warmup_file

pytestmark = pytest.mark.integration
HALF_PLUS_TWO = TESTDATA / "saved_model_half_plus_two_cpu"


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    """`y` after `n[0]` rounds of a 200x200 matrix product, as slow as the request asks. A TF1 graph, as TF Serving's
    test models are: the loop sits in the graph Session::Run cancels, not inside a function call."""
    import tensorflow as tf

    path = tmp_path_factory.mktemp("slow") / "1"
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        n = tf.compat.v1.placeholder(tf.int32, [None], name="n")
        m = tf.ones([200, 200]) / 200.0
        _, y = tf.while_loop(lambda i, a: i < n[0], lambda i, a: (i + 1, tf.matmul(a, m)), [0, m])
        y = tf.reshape(tf.reduce_sum(y), [1])
        builder = tf.compat.v1.saved_model.Builder(str(path))
        signature = tf.compat.v1.saved_model.predict_signature_def({"n": n}, {"y": y})
        builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={"serving_default": signature})
        builder.save()
    return path.parent


def predict(server, body: dict) -> tuple[int, dict]:
    return Client(server).post("/v1/models/default:predict", body)


def test_a_request_past_rest_api_timeout_in_ms_is_cancelled_with_deadline_exceeded(serve, slow):
    """TF Serving bounds a REST call's Session::Run with RunOptions.timeout_in_ms (http_rest_api_handler.cc) and answers
    DEADLINE_EXCEEDED, HTTP 504, in TF's words; here the request answers the same at its deadline."""
    server = serve(str(slow), "--rest_api_timeout_in_ms=200")
    assert predict(server, {"instances": [1]}) == (200, {"predictions": [pytest.approx(200.0, rel=1e-3)]})
    assert predict(server, {"instances": [50_000]}) == (504, {"error": "Timed out waiting for notification"})
    assert predict(server, {"instances": [1]})[0] == 200  # the server goes on serving
    metrics = Client(server).text("/metrics")
    assert 'modelserver_request_errors_total{api="rest",code="DEADLINE_EXCEEDED"} 1.0' in metrics


def test_the_timeout_spares_warmup_and_zero_means_none(serve, slow, tmp_path):
    """TF Serving replays warmup with default RunOptions: a warmup request longer than the timeout still loads."""
    model = tmp_path / "slow"
    shutil.copytree(slow, model)
    write_warmup_file(model / "1", warmup_records({"n": np.array([3_000], np.int32)}, [1]))
    server = serve(str(model), "--rest_api_timeout_in_ms=1")
    assert "1 warmup requests replayed" in server.log_path.read_text()
    unlimited = serve(str(slow), "--rest_api_timeout_in_ms=0")
    assert predict(unlimited, {"instances": [3_000]})[0] == 200


def test_enable_model_warmup_false_skips_the_warmup_file(serve, tmp_path):
    model = tmp_path / "warm"
    shutil.copytree(HALF_PLUS_TWO, model)
    write_warmup_file(model / "00000123", warmup_records({"x": np.ones((2, 1), np.float32)}, [1, 2], repeats=1))
    assert "2 warmup requests replayed" in serve(str(model)).log_path.read_text()
    assert "0 warmup requests replayed" in serve(str(model), "--enable_model_warmup=false").log_path.read_text()


def test_monitoring_config_file_names_the_prometheus_path(serve, tmp_path):
    """TensorflowModelServerTest.testPrometheusEndpoint, with the MonitoringConfig naming a path of its own: TF
    Serving serves Prometheus metrics there (kPrometheusPath when it names none)."""
    config = tmp_path / "monitoring_config.txt"
    config.write_text('prometheus_config: {\n  enable: true,\n  path: "/custom/metrics"\n}\n')
    server = serve(str(HALF_PLUS_TWO), f"--monitoring_config_file={config}")
    assert predict(server, {"instances": [1.0]}) == (200, {"predictions": [2.5]})
    for path in ("/custom/metrics", "/monitoring/prometheus/metrics"):
        with urllib.request.urlopen(server.url + path, timeout=10) as response:
            assert "# TYPE modelserver_requests_total counter" in response.read().decode()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("prometheus_config { enable: maybe }", "is not a valid tensorflow.serving.MonitoringConfig"),
        ('prometheus_config { enable: true path: "metrics" }', "--monitoring_config_file='metrics' is not an absolute"),
    ],
)
def test_a_bad_monitoring_config_file_stops_the_server_in_one_line(tmp_path, text, says):
    config = tmp_path / "monitoring_config.txt"
    config.write_text(text)
    server = start_model_server(
        str(HALF_PLUS_TWO), [f"--monitoring_config_file={config}"], log_path=tmp_path / "server.log"
    )
    assert server.process.wait(60) == 2
    lines = [line for line in server.log_path.read_text().splitlines() if line.startswith("modelserver:")]
    assert len(lines) == 1 and says in lines[0], lines


def test_polling_and_tflite_flags_are_accepted_and_say_what_they_do_here(serve):
    server = serve(
        str(HALF_PLUS_TWO),
        "--file_system_poll_wait_seconds=1",
        "--model_config_file_poll_wait_seconds=0",
        "--prefer_tflite_model=true",
    )
    assert predict(server, {"instances": [1.0]}) == (200, {"predictions": [2.5]})
    log = server.log_path.read_text()
    assert "file_system_poll_wait_seconds=1: not polled here" in log
    assert "model_config_file_poll_wait_seconds" not in log  # 0 is TF Serving's own "read once"
    assert "prefer_tflite_model=true: no TF Lite here; the SavedModel is served" in log


def test_a_negative_timeout_is_refused(tmp_path):
    server = start_model_server(str(HALF_PLUS_TWO), ["--rest_api_timeout_in_ms=-5"], log_path=tmp_path / "log")
    assert server.process.wait(60) == 2
    assert "--rest_api_timeout_in_ms=-5 is negative" in server.log_path.read_text()


def test_a_grpc_socket_that_cannot_be_made_stops_the_server_naming_the_flag(tmp_path):
    socket_path = tmp_path / "missing" / "tf-serving.sock"
    server = start_model_server(
        str(HALF_PLUS_TWO), [f"--grpc_socket_path={socket_path}"], log_path=tmp_path / "server.log"
    )
    assert server.process.wait(60) == 1
    lines = [line for line in server.log_path.read_text().splitlines() if line.startswith("modelserver:")]
    assert len(lines) == 1 and lines[0].startswith(f"modelserver: --grpc_socket_path={socket_path}: "), lines
    assert not socket_path.parent.exists()
