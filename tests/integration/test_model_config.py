"""Several models and versions in one model server: --model_config_file, version policies, version labels.

Cases ported from TF Serving name their source test in tensorflow_model_server_test.py.
"""

from __future__ import annotations

import shutil
import time

import grpc
import pytest
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from localvertex.modelserver.launch import free_port, start_model_server
from tests.integration.conftest import Client
from tests.models import TESTDATA

pytestmark = pytest.mark.integration
RPC_TIMEOUT = 60.0
HALF_PLUS_TWO = TESTDATA / "saved_model_half_plus_two_cpu"
HALF_PLUS_THREE = TESTDATA / "saved_model_half_plus_three"


def model_config(*models: str) -> str:
    return "model_config_list {\n" + "\n".join(f"  config {{ {m} }}" for m in models) + "\n}\n"


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """One model, two versions that answer differently: 1 is half_plus_two, 2 is half_plus_three."""
    base = tmp_path_factory.mktemp("two_versions") / "model"
    shutil.copytree(HALF_PLUS_TWO / "00000123", base / "1")
    shutil.copytree(HALF_PLUS_THREE / "00000123", base / "2")
    return base


@pytest.fixture(scope="module")
def configured(serve, tmp_path_factory, two_versions):
    path = tmp_path_factory.mktemp("config") / "models.config"
    path.write_text(
        model_config(
            f'name: "half_plus_two" base_path: "{HALF_PLUS_TWO}" model_platform: "tensorflow"',
            f'name: "half_plus_three" base_path: "{HALF_PLUS_THREE}" model_platform: "tensorflow"',
            f'name: "all" base_path: "{two_versions}" model_platform: "tensorflow" '
            'model_version_policy { all {} } version_labels { key: "stable" value: 1 } '
            'version_labels { key: "canary" value: 2 }',
            f'name: "latest" base_path: "{two_versions}" model_platform: "tensorflow"',
            f'name: "specific" base_path: "{two_versions}" model_platform: "tensorflow" '
            "model_version_policy { specific { versions: 1 } }",
        )
    )
    port = free_port()
    server = serve("", f"--model_config_file={path}", "--allow_version_labels_for_unavailable_models", f"--port={port}")
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield Client(server), channel
    channel.close()


@pytest.fixture(scope="module")
def rest(configured):
    return configured[0]


@pytest.fixture(scope="module")
def prediction(configured):
    return prediction_service_pb2_grpc.PredictionServiceStub(configured[1])


def predict(prediction, model, version=None, label=None, signature="serving_default", output_filter=("y",)):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].float_val.append(2.0)
    request.inputs["x"].tensor_shape.dim.add().size = 1
    request.output_filter.extend(output_filter)
    return prediction.Predict(request, RPC_TIMEOUT)


@pytest.mark.parametrize("output_filter", [("y",), ()])
@pytest.mark.parametrize(("model", "expected"), [("half_plus_two", 3.0), ("half_plus_three", 4.0)])
def test_good_model_config(prediction, model, expected, output_filter):
    """TensorflowModelServerTest.testGoodModelConfig: both models of the file answer, with and without a filter."""
    result = predict(prediction, model, output_filter=output_filter)
    assert list(result.outputs["y"].float_val) == [expected]
    spec = result.model_spec
    assert (spec.name, spec.signature_name, spec.version.value) == (model, "serving_default", 123)


def versions_of(rest, model):
    status, body = rest.get(f"/v1/models/{model}")
    assert status == 200
    return [(s["version"], s["state"], s["status"]["error_code"]) for s in body["model_version_status"]]


def test_version_policies_choose_the_versions_served(rest, configured):
    assert versions_of(rest, "all") == [("2", "AVAILABLE", "OK"), ("1", "AVAILABLE", "OK")]
    assert versions_of(rest, "latest") == [("2", "AVAILABLE", "OK")]
    assert versions_of(rest, "specific") == [("1", "AVAILABLE", "OK")]
    stub = model_service_pb2_grpc.ModelServiceStub(configured[1])
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "all"
    assert [s.version for s in stub.GetModelStatus(request, RPC_TIMEOUT).model_version_status] == [2, 1]
    status, body = rest.get("/v1/models/latest/versions/1")
    assert (status, body["error"]) == (404, "Could not find version 1 of model latest")


def test_no_version_means_the_latest_one_the_policy_serves(prediction, rest):
    assert list(predict(prediction, "all").outputs["y"].float_val) == [4.0]
    assert list(predict(prediction, "specific").outputs["y"].float_val) == [3.0]
    assert list(predict(prediction, "all", version=1).outputs["y"].float_val) == [3.0]
    assert rest.post("/v1/models/all/versions/1:predict", {"instances": [2.0]}) == (200, {"predictions": [3.0]})
    assert rest.post("/v1/models/all:predict", {"instances": [2.0]}) == (200, {"predictions": [4.0]})


def test_version_labels_route_rest_and_grpc_requests(prediction, rest):
    assert rest.post("/v1/models/all/labels/stable:predict", {"instances": [2.0]}) == (200, {"predictions": [3.0]})
    assert rest.post("/v1/models/all/labels/canary:predict", {"instances": [2.0]}) == (200, {"predictions": [4.0]})
    status, body = rest.get("/v1/models/all/labels/stable/metadata")
    assert (status, body["model_spec"]["version"]) == (200, "1")
    result = predict(prediction, "all", label="canary")
    assert (list(result.outputs["y"].float_val), result.model_spec.version.value) == ([4.0], 2)


def test_an_unknown_label_is_an_invalid_argument(prediction, rest):
    status, body = rest.post("/v1/models/all/labels/beta:predict", {"instances": [2.0]})
    assert (status, body["error"]) == (400, "Unrecognized servable version label: beta")
    with pytest.raises(grpc.RpcError) as e:
        predict(prediction, "all", label="beta")
    assert (e.value.code(), e.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Unrecognized servable version label: beta",
    )


def test_vertex_predict_route_serves_the_first_model_listed(rest):
    assert rest.post("/predict", {"instances": [2.0]}) == (200, {"predictions": [3.0]})
    assert rest.get("/health") == (200, {})


def test_model_config_reload_with_zero_poll_period(serve, tmp_path):
    """TensorflowModelServerTest.testModelConfigReloadWithZeroPollPeriod: a rewritten file is not read again.

    TF Serving's test passes --model_config_file_poll_wait_seconds=0, its default: the file is read once. This
    server has no such flag and reads the file once at startup.
    """
    path = tmp_path / "model_config.txt"
    path.write_text(model_config(f'name: "half_plus_two", base_path: "{HALF_PLUS_TWO}", model_platform: "tensorflow"'))
    port = free_port()
    server = serve("", f"--model_config_file={path}", f"--port={port}")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        result = predict(prediction, "half_plus_two", output_filter=())
        assert (list(result.outputs["y"].float_val), result.model_spec.version.value) == ([3.0], 123)
        path.write_text(
            model_config(f'name: "half_plus_three", base_path: "{HALF_PLUS_THREE}", model_platform: "tensorflow"')
        )
        time.sleep(1)  # the upstream test's poll period + 1 second
        result = predict(prediction, "half_plus_two", output_filter=())
        assert (list(result.outputs["y"].float_val), result.model_spec.version.value) == ([3.0], 123)
    server.stop()


def failed_start(tmp_path, config: str, *args: str) -> tuple[int, str]:
    path = tmp_path / "models.config"
    path.write_text(config)
    server = start_model_server("", [f"--model_config_file={path}", *args], log_path=tmp_path / "server.log")
    return server.process.wait(120), server.log_path.read_text()


def test_bad_model_config(tmp_path):
    """TensorflowModelServerTest.testBadModelConfig: bad_model_config.txt stops the server with this error."""
    code, log = failed_start(tmp_path, "improperly formatted file")
    assert code == 2 and "Error parsing text-format tensorflow.serving.ModelServerConfig" in log


def test_labels_at_startup_need_the_allow_flag(tmp_path, two_versions):
    config = model_config(
        f'name: "m" base_path: "{two_versions}" model_platform: "tensorflow" version_labels {{ key: "stable" value: 1 }}'
    )
    code, log = failed_start(tmp_path, config)
    assert code == 2
    assert "Request to assign label to version 1 of model m, which is not currently available for inference" in log


def test_a_model_without_the_versions_its_policy_asks_for_fails_the_load(tmp_path, two_versions):
    config = model_config(
        f'name: "m" base_path: "{two_versions}" model_platform: "tensorflow" '
        "model_version_policy { specific { versions: 9 } }"
    )
    code, log = failed_start(tmp_path, config)
    assert code == 1 and "No versions of servable m found under base path" in log


def test_models_on_cloud_storage_are_each_copied_and_served(serve, tmp_path, monkeypatch, two_versions):
    from gcp_storage_emulator.server import create_server
    from google.cloud import storage

    port = free_port()
    emulator = create_server("127.0.0.1", port, in_memory=True)
    emulator.start()
    try:
        env = {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}"}
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", env["STORAGE_EMULATOR_HOST"])
        bucket = storage.Client().create_bucket("models")
        for name, source in (("two", HALF_PLUS_TWO), ("versions", two_versions)):
            for path in source.rglob("*"):
                if path.is_file():
                    bucket.blob(f"{name}/{path.relative_to(source)}").upload_from_filename(str(path))
        config = tmp_path / "models.config"
        config.write_text(
            model_config(
                'name: "two" base_path: "gs://models/two" model_platform: "tensorflow"',
                'name: "versions" base_path: "gs://models/versions" model_platform: "tensorflow" '
                "model_version_policy { all {} }",
            )
        )
        rest = Client(serve("", f"--model_config_file={config}", env=env))
        assert rest.post("/v1/models/two:predict", {"instances": [2.0]}) == (200, {"predictions": [3.0]})
        assert rest.post("/v1/models/versions/versions/1:predict", {"instances": [2.0]}) == (
            200,
            {"predictions": [3.0]},
        )
        assert rest.post("/v1/models/versions:predict", {"instances": [2.0]}) == (200, {"predictions": [4.0]})
    finally:
        emulator.stop()
