"""TF Serving's gRPC API on the model server, driven by tensorflow-serving-api's own client stubs.

Each case ported from TF Serving names its source: tensorflow_model_server_test.py (TensorflowModelServerTest),
predict_impl_test.cc (PredictImplTest) or get_model_metadata_impl_test.cc (GetModelMetadataImplTest).
Ported with a difference, and why: the two Keras cases, whose models Keras 3 saves otherwise than the Keras 2 of
the upstream test (their docstrings say how).
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from localvertex.modelserver.launch import free_port, start_model_server
from tests.integration.conftest import Client
from tests.models import TESTDATA
from vertex_serving.tfserving.warmup import read_warmup_records, warmup_records, write_warmup_file

pytestmark = pytest.mark.integration
RPC_TIMEOUT = 60.0
State = get_model_status_pb2.ModelVersionStatus.State


@dataclass
class GrpcServer:
    server: object
    address: str

    def __post_init__(self):
        self.channel = grpc.insecure_channel(self.address)
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.rest = Client(self.server)

    def error(self, method: str, request) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as e:
            getattr(self.prediction, method)(request, RPC_TIMEOUT)
        return e.value


@pytest.fixture(scope="module")
def grpc_serve(serve):
    started = []

    def start(model, *args, wait=True) -> GrpcServer:
        port = free_port()
        running = GrpcServer(serve(str(model), f"--port={port}", *args, wait=wait), f"127.0.0.1:{port}")
        started.append(running)
        return running

    yield start
    for running in started:
        running.channel.close()


@pytest.fixture
def serve_once(grpc_serve):
    """Servers for one test only, stopped when it ends, so that one-off models do not pile up in memory."""
    started = []

    def start(model, *args) -> GrpcServer:
        started.append(grpc_serve(model, *args))
        return started[-1]

    yield start
    for running in started:
        running.server.stop()


@pytest.fixture(scope="module")
def half_plus_two(grpc_serve):
    """TF Serving's saved_model_half_plus_two_cpu, with server-side batching on."""
    return grpc_serve(TESTDATA / "saved_model_half_plus_two_cpu", "--enable_batching")


@pytest.fixture(scope="module")
def half_plus_two_tf2(grpc_serve):
    return grpc_serve(TESTDATA / "saved_model_half_plus_two_tf2_cpu")


@pytest.fixture(scope="module")
def half_plus_three(grpc_serve):
    return grpc_serve(TESTDATA / "saved_model_half_plus_three")


@pytest.fixture(params=["half_plus_two", "half_plus_two_tf2"])
def tf1_and_tf2(request):
    """TF Serving runs its classify, regress and multi-inference cases on both, as testClassify / testClassifyTf2."""
    return request.getfixturevalue(request.param)


def predict_request(x=None, model="default", signature="serving_default", output_filter=(), key="x", batch=False):
    """TensorflowModelServerTestBase.VerifyPredictRequest's request: x = [2.0] as DT_FLOAT."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if x is None:
        request.inputs[key].dtype = types_pb2.DT_FLOAT
        request.inputs[key].float_val.append(2.0)
        request.inputs[key].tensor_shape.dim.add().size = 1
        if batch:
            request.inputs[key].tensor_shape.dim.add().size = 1
    else:
        request.inputs[key].CopyFrom(tf.make_tensor_proto(x))
    request.output_filter.extend(output_filter)
    return request


def verify_predict(running, expected, version, **kwargs):
    """TensorflowModelServerTestBase.VerifyPredictRequest."""
    result = running.prediction.Predict(predict_request(**kwargs), RPC_TIMEOUT)
    assert "y" in result.outputs
    assert result.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert list(result.outputs["y"].float_val) == [expected]
    spec = result.model_spec
    assert (spec.name, spec.signature_name, spec.version.value) == (
        kwargs.get("model", "default"),
        kwargs.get("signature", "serving_default"),
        version,
    )


def examples_input(request, *values):
    for value in values:
        request.input.example_list.examples.add().features.feature["x"].float_list.value.append(value)
    return request


def test_get_model_status(half_plus_two):
    """TensorflowModelServerTest.testGetModelStatus."""
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "default"
    result = half_plus_two.models.GetModelStatus(request, RPC_TIMEOUT)
    assert len(result.model_version_status) == 1
    assert result.model_version_status[0].version == 123
    assert result.model_version_status[0].status.error_code == 0
    assert result.model_version_status[0].state == State.AVAILABLE


def test_get_model_metadata(half_plus_two):
    """TensorflowModelServerTest.testGetModelMetadata, and the same signatures as the REST metadata file."""
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "default"
    request.metadata_field.append("signature_def")
    result = half_plus_two.prediction.GetModelMetadata(request, RPC_TIMEOUT)
    assert result.model_spec.name == "default"
    assert result.model_spec.version.value == 123
    assert list(result.metadata) == ["signature_def"]
    defs = get_model_metadata_pb2.SignatureDefMap()
    result.metadata["signature_def"].Unpack(defs)
    expected = json.loads((TESTDATA / "half_plus_two_model_metadata.json").read_text())
    assert json_format.MessageToDict(defs, preserving_proto_field_name=True) == json_format.MessageToDict(
        json_format.ParseDict(expected["metadata"]["signature_def"], get_model_metadata_pb2.SignatureDefMap()),
        preserving_proto_field_name=True,
    )


def test_classify(tf1_and_tf2):
    """TensorflowModelServerTest.testClassify and TensorflowModelServerTest.testClassifyTf2."""
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "classify_x_to_y"
    result = tf1_and_tf2.prediction.Classify(examples_input(request, 2.0), RPC_TIMEOUT)
    assert len(result.result.classifications) == 1
    assert len(result.result.classifications[0].classes) == 1
    assert result.result.classifications[0].classes[0].score == 3.0
    assert (result.model_spec.name, result.model_spec.signature_name, result.model_spec.version.value) == (
        "default",
        "classify_x_to_y",
        123,
    )


def test_regress(tf1_and_tf2):
    """TensorflowModelServerTest.testRegress and TensorflowModelServerTest.testRegressTf2."""
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "regress_x_to_y"
    result = tf1_and_tf2.prediction.Regress(examples_input(request, 2.0), RPC_TIMEOUT)
    assert len(result.result.regressions) == 1
    assert result.result.regressions[0].value == 3.0
    assert (result.model_spec.signature_name, result.model_spec.version.value) == ("regress_x_to_y", 123)


def test_multi_inference(tf1_and_tf2):
    """TensorflowModelServerTest.testMultiInference and TensorflowModelServerTest.testMultiInferenceTf2."""
    request = inference_pb2.MultiInferenceRequest()
    request.tasks.add().model_spec.name = "default"
    request.tasks[0].model_spec.signature_name = "regress_x_to_y"
    request.tasks[0].method_name = "tensorflow/serving/regress"
    request.tasks.add().model_spec.name = "default"
    request.tasks[1].model_spec.signature_name = "classify_x_to_y"
    request.tasks[1].method_name = "tensorflow/serving/classify"
    result = tf1_and_tf2.prediction.MultiInference(examples_input(request, 2.0), RPC_TIMEOUT)
    assert len(result.results) == 2
    assert result.results[0].regression_result.regressions[0].value == 3.0
    assert result.results[1].classification_result.classifications[0].classes[0].score == 3.0
    for task, answer in zip(request.tasks, result.results, strict=True):
        assert (answer.model_spec.name, answer.model_spec.signature_name, answer.model_spec.version.value) == (
            "default",
            task.model_spec.signature_name,
            123,
        )


def test_predict_saved_model(half_plus_two):
    """TensorflowModelServerTest.testPredictSavedModel: with and without an output filter."""
    verify_predict(half_plus_two, 3.0, 123, output_filter=["y"])
    verify_predict(half_plus_two, 3.0, 123)


def test_a_missing_model_is_a_servable_not_found(half_plus_two):
    """TensorflowModelServerTestBase.WaitForServerReady counts 'Servable' in this error as the server being up."""
    error = half_plus_two.error("Predict", predict_request(model="intentionally_missing_model"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Servable not found for request: Latest(intentionally_missing_model)"


def test_missing_or_empty_model_spec(half_plus_two):
    """PredictImplTest.MissingOrEmptyModelSpec."""
    assert half_plus_two.error("Predict", predict_pb2.PredictRequest()).code() == grpc.StatusCode.INVALID_ARGUMENT
    error = half_plus_two.error("Predict", predict_request(model=""))
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")
    assert half_plus_two.error("Predict", predict_request(model="test")).code() == grpc.StatusCode.NOT_FOUND


def test_empty_input_list_and_inputs_that_do_not_match(half_plus_two):
    """PredictImplTest.EmptyInputList, InputTensorsDontMatchModelSpecInputs and InputTensorsHaveWrongType."""
    empty = predict_pb2.PredictRequest()
    empty.model_spec.name = "default"
    empty.model_spec.version.value = 123
    assert half_plus_two.error("Predict", empty).code() == grpc.StatusCode.INVALID_ARGUMENT
    wrong_key = predict_request(np.array([b"any_key"], object), key="key")
    error = half_plus_two.error("Predict", wrong_key)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("Signature input alias: x(feed name: x:0) not found in request")
    wrong_type = predict_request(np.array([b"any_key"], object), output_filter=["y"])
    assert half_plus_two.error("Predict", wrong_type).code() == grpc.StatusCode.INVALID_ARGUMENT


def test_output_filters_that_do_not_match(half_plus_two):
    """PredictImplTest.OutputFiltersDontMatchModelSpecOutputs."""
    error = half_plus_two.error("Predict", predict_request(output_filter=["output_filter"]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "output tensor alias not found in signature: output_filter" in error.details()
    verify_predict(half_plus_two, 3.0, 123, output_filter=["y"])
    error = half_plus_two.error("Predict", predict_request(output_filter=["y", "y"]))
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "duplicate output tensor alias: y")


def test_prediction_success_on_a_scalar(half_plus_two):
    """PredictImplTest.PredictionSuccess: a shapeless float 2.0 answers a shapeless 3.0."""
    request = predict_request(np.array(2.0, np.float32))
    request.model_spec.version.value = 123
    result = half_plus_two.prediction.Predict(request, RPC_TIMEOUT)
    y = result.outputs["y"]
    assert (list(y.float_val), y.dtype, len(y.tensor_shape.dim)) == ([3.0], types_pb2.DT_FLOAT, 0)
    assert (result.model_spec.signature_name, result.model_spec.version.value) == ("serving_default", 123)


def test_predict_with_named_regression_and_classification_signatures(half_plus_two, half_plus_two_tf2):
    """PredictImplTest.PredictionWithNamedRegressionSignature and ...WithNamedClassificationSignature."""
    regress = predict_request(np.array([2.0], np.float32), signature="regress_x2_to_y3", key="inputs")
    result = half_plus_two.prediction.Predict(regress, RPC_TIMEOUT)
    assert list(result.outputs["outputs"].float_val) == [4.0]
    classify = predict_request(np.array([2.0], np.float32), signature="classify_x2_to_y3", key="inputs")
    result = half_plus_two_tf2.prediction.Predict(classify, RPC_TIMEOUT)
    assert list(result.outputs["scores"].float_val) == [4.0]


def test_a_missing_signature_or_version(half_plus_two):
    error = half_plus_two.error("Predict", predict_request(signature="nope"))
    assert (error.code(), error.details()) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        'Serving signature key "nope" not found.',
    )
    request = predict_request()
    request.model_spec.version.value = 7
    error = half_plus_two.error("Predict", request)
    assert (error.code(), error.details()) == (
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Specific(default, 7)",
    )


def test_metadata_field_list_and_model_spec(half_plus_two):
    """GetModelMetadataImplTest.EmptyOrInvalidMetadataFieldList and MissingOrEmptyModelSpec."""
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    assert half_plus_two.error("GetModelMetadata", request).code() == grpc.StatusCode.INVALID_ARGUMENT
    request.model_spec.name = "default"
    error = half_plus_two.error("GetModelMetadata", request)
    assert error.details() == "GetModelMetadataRequest must specify at least one metadata_field"
    request.metadata_field.append("some_stuff")
    assert half_plus_two.error("GetModelMetadata", request).details() == "Metadata field some_stuff is not supported"
    request.metadata_field[:] = ["signature_def"]
    request.model_spec.name = "test"
    assert half_plus_two.error("GetModelMetadata", request).code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("model", "expected", "regress_signature", "classify"),
    [
        ("half_plus_two", [3.0, 3.5, 4.0], "regress_x_to_y", True),
        ("half_plus_two_tf2", [3.0, 3.5, 4.0], "regress_x_to_y", True),
        ("half_plus_three", [4.0, 4.5, 5.0], "tensorflow/serving/regress", False),
    ],
)
def test_grpc_answers_equal_rest_answers(request, model, expected, regress_signature, classify):
    running = request.getfixturevalue(model)
    status, body = running.rest.post("/v1/models/default:predict", {"instances": [2.0, 3.0, 4.0]})
    result = running.prediction.Predict(predict_request(np.array([2.0, 3.0, 4.0], np.float32)), RPC_TIMEOUT)
    assert status == 200 and body["predictions"] == tf.make_ndarray(result.outputs["y"]).tolist() == expected

    status, body = running.rest.post(
        "/v1/models/default:regress", {"signature_name": regress_signature, "examples": [{"x": 2.0}, {"x": 4.0}]}
    )
    grpc_request = regression_pb2.RegressionRequest()
    grpc_request.model_spec.name = "default"
    grpc_request.model_spec.signature_name = regress_signature
    result = running.prediction.Regress(examples_input(grpc_request, 2.0, 4.0), RPC_TIMEOUT)
    rest_values = body.get("results", body.get("result"))
    assert status == 200 and rest_values == [r.value for r in result.result.regressions] == expected[::2]

    if classify:
        status, body = running.rest.post(
            "/v1/models/default:classify", {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}
        )
        grpc_request = classification_pb2.ClassificationRequest()
        grpc_request.model_spec.name = "default"
        grpc_request.model_spec.signature_name = "classify_x_to_y"
        result = running.prediction.Classify(examples_input(grpc_request, 2.0), RPC_TIMEOUT)
        grpc_pairs = [[[c.label, c.score] for c in row.classes] for row in result.result.classifications]
        assert status == 200 and body.get("results", body.get("result")) == grpc_pairs == [[["", 3.0]]]


def test_grpc_predictions_go_through_the_servers_batcher(half_plus_two):
    def batches() -> float:
        metrics = half_plus_two.rest.text("/metrics")
        return float(
            next(line.split()[-1] for line in metrics.splitlines() if line.startswith("modelserver_batch_size_count"))
        )

    before = batches()
    result = half_plus_two.prediction.Predict(predict_request(np.array([2.0, 3.0], np.float32)), RPC_TIMEOUT)
    assert list(result.outputs["y"].float_val) == [3.0, 3.5]
    assert batches() == before + 1
    assert 'modelserver_requests_total{api="grpc_Predict",status="OK"}' in half_plus_two.rest.text("/metrics")


def test_good_grpc_channel_args(serve_once):
    """TensorflowModelServerTest.testGoodGrpcChannelArgs: the server starts with them and answers."""
    running = serve_once(
        TESTDATA / "saved_model_half_plus_two_cpu",
        "--grpc_channel_arguments=grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb",
    )
    verify_predict(running, 3.0, 123)


def test_tf_saved_model_save(serve_once, tmp_path):
    """TensorflowModelServerTest.test_tf_saved_model_save: y = 3 * 2 * x on an input of unknown rank."""
    root = tf.train.Checkpoint()
    root.v1, root.v2 = tf.Variable(3.0), tf.Variable(2.0)
    root.f = tf.function(lambda x: {"y": root.v1 * root.v2 * x})
    to_save = root.f.get_concrete_function(tf.TensorSpec(None, tf.float32))
    tf.saved_model.save(root, str(tmp_path / "saved" / "00000123"), to_save)
    verify_predict(serve_once(tmp_path / "saved"), 12.0, 123)


def verify_keras_predict(running, expected: float) -> None:
    """VerifyPredictRequest(batch_input=True, specify_output=False) on a model saved by tf.saved_model.save.

    Keras 3 names the serving signature's tensors `inputs` and `output_0`, where the Keras 2 that TF Serving's test
    was written for named them after the layers (`x`, `y`).
    """
    result = running.prediction.Predict(predict_request(key="inputs", batch=True), RPC_TIMEOUT)
    y = result.outputs["output_0"]
    assert (y.dtype, list(y.float_val)) == (types_pb2.DT_FLOAT, [expected])
    assert (result.model_spec.name, result.model_spec.signature_name, result.model_spec.version.value) == (
        "default",
        "serving_default",
        123,
    )


def test_sequential_keras_saved_model_save(serve_once, tmp_path):
    """TensorflowModelServerTest.test_sequential_keras_saved_model_save: a Sequential model of one identity layer."""
    model = tf.keras.models.Sequential()
    model.add(tf.keras.layers.Input(dtype="float32", shape=(1,), name="x"))
    model.add(tf.keras.layers.Lambda(lambda x: x, name="y"))
    tf.saved_model.save(model, str(tmp_path / "keras_sequential_saved_model_save" / "00000123"))
    verify_keras_predict(serve_once(tmp_path / "keras_sequential_saved_model_save"), 2.0)


DISTRIBUTED = """
import sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(devices=("/cpu:0", "/cpu:1"))
with strategy.scope():
    model = tf.Module()
    model.kernel = tf.Variable(tf.ones([1, 1]))
    model.bias = tf.Variable(tf.zeros([1]))
model.serve = tf.function(
    lambda x: {"y": tf.identity(x @ model.kernel + model.bias)},
    input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")],
)
tf.saved_model.save(model, sys.argv[1], signatures={"serving_default": model.serve})
"""


def test_distrat_sequential_keras_saved_model_save(serve_once, tmp_path):
    """TensorflowModelServerTest.test_distrat_sequential_keras_saved_model_save: variables made under MirroredStrategy.

    The upstream test's Dense(ones, zeros) layer is built as a tf.Module: Keras 3 saved under MirroredStrategy
    restores its variables into copies that the serving function does not read, so no session-based loader (TF
    Serving's included) can serve it. Two virtual CPUs must be set before TensorFlow starts: the model is built
    in a process of its own.
    """
    base = tmp_path / "keras_sequential_saved_model_save"
    subprocess.run([sys.executable, "-c", DISTRIBUTED, str(base / "00000123")], check=True, timeout=300)
    verify_predict(serve_once(base), 2.0, 123, batch=True)


def test_tf_saved_model_save_multiple_signatures(grpc_serve, tmp_path):
    """TensorflowModelServerTest.test_tf_saved_model_save_multiple_signatures."""
    root = tf.train.Checkpoint()
    root.f = tf.function(lambda x: {"y": 1.0}, input_signature=[tf.TensorSpec(None, tf.float32)])
    root.g = tf.function(lambda x: {"y": 2.0}, input_signature=[tf.TensorSpec(None, tf.float32)])
    tf.saved_model.save(
        root,
        str(tmp_path / "saved" / "00000123"),
        signatures={"serving_default": root.f, "custom_signature_key": root.g},
    )
    running = grpc_serve(tmp_path / "saved")
    verify_predict(running, 2.0, 123, signature="custom_signature_key")
    verify_predict(running, 1.0, 123)


def tfx_serving_status(running) -> str:
    """TFX InfraValidator's TensorFlowServingClient._GetServingStatus."""
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "default"
    try:
        response = running.models.GetModelStatus(request, RPC_TIMEOUT)
    except grpc.RpcError:
        return "NOT_READY"
    if not response.model_version_status:
        return "NOT_READY"
    if all(s.state == State.AVAILABLE for s in response.model_version_status):
        return "READY"
    if any(s.state == State.END for s in response.model_version_status):
        return "UNAVAILABLE"
    return "NOT_READY"


def test_tfx_infra_validator_check_loads_then_predicts_warmup_shaped_requests(grpc_serve, tmp_path):
    """TFX InfraValidator on TF Serving: wait for AVAILABLE over ModelService, then Predict its requests."""
    model = tmp_path / "half_plus_two"
    shutil.copytree(TESTDATA / "saved_model_half_plus_two_cpu", model)
    samples = {"x": np.array([[2.0], [3.0], [4.0]], np.float32)}
    write_warmup_file(model / "00000123", warmup_records(samples, [1, 3]))
    running = grpc_serve(model, "--enable_batching", "--max_batch_size=4", "--allowed_batch_sizes=2,4", wait=False)
    deadline = time.monotonic() + 180
    while (state := tfx_serving_status(running)) == "NOT_READY" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert state == "READY"
    for record in read_warmup_records(Path(model / "00000123")):
        request = record.predict_log.request
        request.model_spec.name = "default"
        result = running.prediction.Predict(request, RPC_TIMEOUT)
        rows = tf.make_ndarray(request.inputs["x"]).tolist()
        status, body = running.rest.post("/v1/models/default:predict", {"instances": rows})
        assert status == 200 and tf.make_ndarray(result.outputs["y"]).tolist() == body["predictions"]
    assert "2 warmup requests replayed" in running.server.log_path.read_text()


def listening_addresses(port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses with a listening TCP socket on `port`, from the kernel's own tables."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                raw = bytes.fromhex(address)  # each 32-bit word is in host (little-endian) order
                found.append(ipaddress.ip_address(b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))))
    return found


def test_the_grpc_port_listens_on_loopback_only(half_plus_two):
    addresses = listening_addresses(int(half_plus_two.address.rsplit(":", 1)[1]))
    assert addresses
    for address in addresses:
        mapped = getattr(address, "ipv4_mapped", None)
        assert (mapped or address).is_loopback, address


def test_the_grpc_port_must_differ_from_the_rest_port(tmp_path):
    port = free_port()
    server = start_model_server(
        str(TESTDATA / "saved_model_half_plus_two_cpu"), [f"--port={port}"], log_path=tmp_path / "log", port=port
    )
    assert server.process.wait(60) == 2
    assert f"--port={port} is not a free gRPC port" in server.log_path.read_text()


def test_predict_uds(serve_once, tmp_path):
    """TensorflowModelServerTest.testPredictUDS: Predict over the Unix socket of --grpc_socket_path."""
    socket_path = tmp_path / "tf-serving.sock"
    running = serve_once(TESTDATA / "saved_model_half_plus_two_cpu", f"--grpc_socket_path={socket_path}")
    verify_predict(GrpcServer(running.server, f"unix:{socket_path}"), 3.0, 123)


def test_tf_serving_test_harness_command_line(serve, tmp_path):
    """TensorflowModelServerTestBase.RunServer's flags, as its every test passes them: the server takes them all."""
    port, socket_path = free_port(), tmp_path / "tf-serving.sock"
    server = serve(
        str(TESTDATA / "saved_model_half_plus_two_cpu"),
        f"--port={port}",
        "--rest_api_timeout_in_ms=5000",
        f"--grpc_socket_path={socket_path}",
        "--model_name=default",
        f"--model_base_path={TESTDATA / 'saved_model_half_plus_two_cpu'}",
        "--grpc_channel_arguments=grpc.so_reuseaddr=1",
    )
    for address in (f"127.0.0.1:{port}", f"unix:{socket_path}"):
        verify_predict(GrpcServer(server, address), 3.0, 123)
    assert Client(server).post("/v1/models/default:predict", {"instances": [2.0]}) == (200, {"predictions": [3.0]})
    server.stop()
    assert not socket_path.exists()
