"""The local model server as a process: TF Serving's own test models, its REST formats and errors, batching."""

from __future__ import annotations

import base64
import json
import shutil
import threading

import numpy as np
import pytest

from tests.integration.conftest import Client
from tests.models import TESTDATA, expected_sum, tagged_sum

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    return tagged_sum(tmp_path_factory.mktemp("models") / "tagged")


@pytest.fixture(scope="module")
def half_plus_two(serve):
    return Client(serve(TESTDATA / "saved_model_half_plus_two_cpu"))


@pytest.fixture(scope="module")
def tagged_server(serve, tagged):
    return Client(serve(tagged, "--model_name=tagged", "--use_tfrt=true"))


def test_tf1_half_plus_two_gives_the_documented_answers(half_plus_two):
    assert half_plus_two.post("/v1/models/default:predict", {"instances": [2.0, 3.0, 4.0]}) == (
        200,
        {"predictions": [3.0, 3.5, 4.0]},
    )
    assert half_plus_two.post("/v1/models/default/versions/123:predict", {"inputs": [2.0, 3.0, 4.0]}) == (
        200,
        {"outputs": [3.0, 3.5, 4.0]},
    )


def test_metadata_and_status_match_tf_serving(half_plus_two):
    expected = json.loads((TESTDATA / "half_plus_two_model_metadata.json").read_text())
    assert half_plus_two.get("/v1/models/default/metadata") == (200, expected)
    assert half_plus_two.get("/v1/models/default") == (
        200,
        {
            "model_version_status": [
                {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            ]
        },
    )


def test_classify_and_regress_on_tf_example_signatures(half_plus_two):
    status, body = half_plus_two.post(
        "/v1/models/default:classify", {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}, {"x": 4.0}]}
    )
    assert status == 200 and body == {"results": [[["", 3.0]], [["", 4.0]]]}
    status, body = half_plus_two.post(
        "/v1/models/default:regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 6.0}]}
    )
    assert status == 200 and body == {"results": [5.0]}


def test_unknown_model_and_version_are_not_found(half_plus_two):
    status, body = half_plus_two.post("/v1/models/other:predict", {"instances": [1.0]})
    assert status == 404 and "other" in body["error"]
    status, body = half_plus_two.get("/v1/models/default/versions/7")
    assert status == 404 and "7" in body["error"]


def test_tf2_and_older_tf1_models_are_served(serve):
    tf2 = Client(serve(TESTDATA / "saved_model_half_plus_two_tf2_cpu"))
    assert tf2.post("/predict", {"instances": [2.0, 3.0, 4.0]}) == (200, {"predictions": [3.0, 3.5, 4.0]})
    three = Client(serve(TESTDATA / "saved_model_half_plus_three"))
    assert three.post("/predict", {"instances": [2.0, 3.0, 4.0]}) == (200, {"predictions": [4.0, 4.5, 5.0]})


def test_several_inputs_and_outputs_with_binary_values(tagged_server):
    body = {
        "instances": [
            {"a": [1, 1, 1], "tag": {"b64": base64.b64encode(b"\x00\x01").decode()}},
            {"a": [0, 0, 2], "tag": "cat"},
        ]
    }
    status, answer = tagged_server.post("/v1/models/tagged:predict", body)
    assert status == 200
    assert answer["predictions"] == [
        {"label": "\x00\x01!", "sum": 6.0, "tag_bytes": {"b64": "AAE="}},
        {"label": "cat!", "sum": 6.0, "tag_bytes": {"b64": base64.b64encode(b"cat").decode()}},
    ]
    status, answer = tagged_server.post("/v1/models/tagged:predict", {"inputs": {"a": [[1, 2, 3]], "tag": ["dog"]}})
    assert status == 200 and answer["outputs"] == {"label": ["dog!"], "sum": [14.0], "tag_bytes": [{"b64": "ZG9n"}]}
    status, answer = tagged_server.post(
        "/predict", {"signature_name": "scaled", "instances": [[1, 0, 0]], "parameters": {}}
    )
    assert (status, answer) == (200, {"predictions": [2.0]})


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "JSON Parse error"),
        ({"instances": [[1, 2, 3]], "inputs": [[1, 2, 3]]}, 400, "Not formatted correctly expecting only one of"),
        ({"signature_name": "nope", "instances": [[1, 2, 3]]}, 400, '"nope" not found'),
        ({"instances": [{"b": [1, 2, 3], "tag": "x"}]}, 400, "does not have named input: b"),
        ({"instances": [{"a": [1, 2], "tag": "x"}]}, 400, "Matrix size-incompatible"),  # the graph decides
        (
            {"instances": [{"a": ["x", "y", "z"], "tag": "x"}]},
            400,
            'JSON Value: "x" Type: String is not of expected type: float',
        ),
        (
            {"instances": [{"a": [1, 2, 3], "tag": 5}]},
            400,
            "JSON Value: 5 Type: Number is not of expected type: string",
        ),
    ],
)
def test_bad_requests_get_tf_serving_errors_and_the_server_keeps_serving(tagged_server, body, status, needle):
    got_status, answer = tagged_server.post("/v1/models/tagged:predict", body)
    assert got_status == status and needle in answer["error"]
    assert tagged_server.post("/predict", {"instances": [{"a": [1, 1, 1], "tag": "ok"}]})[0] == 200


def test_a_body_over_the_vertex_limit_is_refused(tagged_server):
    rows = [{"a": [1.0, 2.0, 3.0], "tag": "x" * 200} for _ in range(8000)]
    status, answer = tagged_server.post("/predict", {"instances": rows})
    assert status == 400 and "1572864 bytes" in answer["error"]


def test_metrics_count_requests_errors_and_latency(tagged_server):
    tagged_server.post("/predict", {"instances": [{"a": [1, 1, 1], "tag": "ok"}]})
    tagged_server.post("/predict", {"instances": "nope"})
    metrics = tagged_server.text("/metrics")
    assert 'modelserver_requests_total{api="vertex_predict",status="200"}' in metrics
    assert 'modelserver_request_errors_total{api="vertex_predict",code="INVALID_ARGUMENT"}' in metrics
    assert "modelserver_request_latency_seconds_bucket" in metrics


def test_flags_without_a_local_meaning_are_reported_once(tagged_server):
    log = tagged_server.server.log_path.read_text()
    assert log.count("use_tfrt=true: no local effect") == 1


def test_concurrent_clients_get_their_own_batched_answers_equal_to_unbatched(serve, tagged, tmp_path):
    batched_model = tmp_path / "batched"
    shutil.copytree(tagged, batched_model)
    (batched_model / "config").mkdir()
    (batched_model / "config" / "batching_parameters_config").write_text(
        "max_batch_size { value: 8 }\nbatch_timeout_micros { value: 20000 }\nallowed_batch_sizes: 4\nallowed_batch_sizes: 8\n"
    )
    batched, unbatched = Client(serve(batched_model)), Client(serve(tagged))
    # Whole numbers: their sums are exact whatever order a kernel adds them in, so any difference between the
    # batched and the unbatched answer can only come from merging, padding or splitting.
    rng = np.random.default_rng(7)
    inputs = [rng.integers(-50, 50, size=(1 + i % 3, 3)).astype(float).tolist() for i in range(48)]
    answers = [None] * len(inputs)

    def client(i):
        body = {"instances": [{"a": row, "tag": f"c{i}"} for row in inputs[i]]}
        answers[i] = batched.post("/predict", body)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, (status, answer) in enumerate(answers):
        assert status == 200
        assert [p["label"] for p in answer["predictions"]] == [f"c{i}!"] * len(inputs[i])
        body = {"instances": [{"a": row, "tag": f"c{i}"} for row in inputs[i]]}
        assert answer == unbatched.post("/predict", body)[1]
        assert [p["sum"] for p in answer["predictions"]] == expected_sum(inputs[i]).tolist()
    metrics = batched.text("/metrics")
    batches = float(
        next(line.split()[-1] for line in metrics.splitlines() if line.startswith("modelserver_batch_size_count"))
    )
    assert batches < len(inputs)  # requests were merged
    assert "allowed_batch_sizes=(4, 8)" in batched.server.log_path.read_text()
