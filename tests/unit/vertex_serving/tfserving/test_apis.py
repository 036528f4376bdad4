"""TF Serving's gRPC messages: tensors as clients read them, and the request checks of its servables code."""

from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, inference_pb2, input_pb2, predict_pb2

from vertex_serving.tfserving import apis
from vertex_serving.tfserving.errors import ServingError
from vertex_serving.tfserving.servable import Signature, TensorSpec


def spec(key, dtype=np.float32, name="DT_FLOAT"):
    return TensorSpec(key, f"{key}:0", np.dtype(dtype), name, (-1,))


def signature(name, inputs, outputs, defaults=None):
    return Signature(
        name, "tensorflow/serving/predict", {k: spec(k) for k in inputs}, {k: spec(k) for k in outputs}, defaults or {}
    )


def signature_def(inputs, outputs, method=apis.CLASSIFY_METHOD):
    sig = meta_graph_pb2.SignatureDef(method_name=method)
    for key in inputs:
        sig.inputs[key].name = f"{key}:0"
    for key in outputs:
        sig.outputs[key].name = f"{key}:0"
    return sig


SIGNATURES = {
    "serving_default": signature("serving_default", ["x"], ["y"]),
    "two": signature("two", ["a", "b"], ["y", "z"]),
    "defaulted": signature("defaulted", ["a", "b"], ["y"], {"b": np.array(1.0, np.float32)}),
    "classify": signature("classify", ["inputs"], ["classes", "scores"]),
    "regress": signature("regress", ["inputs"], ["outputs"]),
}
SERVABLE = SimpleNamespace(
    signatures=SIGNATURES,
    meta_graph=SimpleNamespace(
        signature_def={
            "classify": signature_def(["inputs"], ["classes", "scores"]),
            "regress": signature_def(["inputs"], ["outputs"], apis.REGRESS_METHOD),
            "two_outputs": signature_def(["inputs"], ["outputs", "extra"], apis.REGRESS_METHOD),
            "no_scores": signature_def(["inputs"], ["probabilities"]),
            "serving_default": signature_def(["x"], ["y"], "tensorflow/serving/predict"),
        }
    ),
)


def refused(fn, *args) -> ServingError:
    with pytest.raises(ServingError) as e:
        fn(*args)
    return e.value


def predict_request(signature_name="", **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    request.model_spec.signature_name = signature_name
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


@pytest.mark.parametrize(
    ("array", "field", "values"),
    [
        (np.array([1.5, 2.0], np.float32), "float_val", [1.5, 2.0]),
        (np.array([[1.0], [2.0]], np.float64), "double_val", [1.0, 2.0]),
        (np.array([1, -2], np.int8), "int_val", [1, -2]),
        (np.array([7], np.int64), "int64_val", [7]),
        (np.array([True, False]), "bool_val", [True, False]),
        (np.array([1.0], np.float16), "half_val", [15360]),
        (np.array([b"a", b"\x00"], object), "string_val", [b"a", b"\x00"]),
    ],
)
def test_outputs_are_written_in_typed_fields_as_tensor_as_proto_field_does(array, field, values):
    proto = apis.to_tensor_proto(array)
    assert not proto.tensor_content
    assert list(getattr(proto, field)) == values
    assert [d.size for d in proto.tensor_shape.dim] == list(array.shape)
    np.testing.assert_array_equal(apis.to_array(proto, "y"), array)


def test_a_scalar_stays_a_scalar():
    """PredictImplTest.PredictionSuccess: float_val 3 with an empty tensor_shape."""
    proto = apis.to_tensor_proto(np.array(3.0, np.float32))
    assert (list(proto.float_val), len(proto.tensor_shape.dim), proto.dtype) == ([3.0], 0, types_pb2.DT_FLOAT)


def test_an_unparsable_tensor_is_named():
    proto = tf.make_tensor_proto(np.array([1.0, 2.0], np.float32))
    proto.tensor_content = proto.tensor_content[:3]
    error = refused(apis.to_array, proto, "x")
    assert (error.code, error.message) == ("INVALID_ARGUMENT", "tensor parsing error: x")


def test_a_missing_signature_is_a_failed_precondition_over_grpc():
    error = refused(apis.parse_predict, predict_request("nope", x=[1.0]), SERVABLE)
    assert (error.code, error.message) == ("FAILED_PRECONDITION", 'Serving signature key "nope" not found.')


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (  # PredictImplTest.EmptyInputList
            predict_request(),
            "input size does not match signature: 0!=1 len({}) != len({x}). Sent extra: {}. Missing but required: {x}.",
        ),
        (  # PredictImplTest.InputTensorsDontMatchModelSpecInputs
            predict_request(key=np.array([b"any_key"], object)),
            "Signature input alias: x(feed name: x:0) not found in request and no default value provided. "
            "Inputs expected to be in the request {key}, or default input alias set: ",
        ),
        (
            predict_request(x=[1.0], z=[2.0]),
            "input size does not match signature: 2!=1 len({x,z}) != len({x}). Sent extra: {z}. "
            "Missing but required: {}.",
        ),
        (
            predict_request("defaulted", c=[1.0]),
            "Signature input alias: a(feed name: a:0) not found in request and no default value provided. "
            "Inputs expected to be in the request {c}, or default input alias set: b",
        ),
        (
            predict_request("defaulted", a=[1.0], c=[2.0]),
            "Inputs contains invalid name. Used request inputs: a, request input: a,c",
        ),
    ],
)
def test_inputs_that_do_not_match_the_signature_are_refused_with_tf_serving_words(request_, message):
    error = refused(apis.parse_predict, request_, SERVABLE)
    assert (error.code, error.message) == ("INVALID_ARGUMENT", message)


def test_a_default_fills_a_missing_input():
    prediction = apis.parse_predict(predict_request("defaulted", a=np.array([1.0, 2.0], np.float32)), SERVABLE)
    assert set(prediction.feeds) == {"a", "b"} and prediction.batch_size is None


def test_output_filter_must_name_distinct_outputs():
    """PredictImplTest.OutputFiltersDontMatchModelSpecOutputs."""
    request = predict_request("two", a=[1.0], b=[2.0])
    request.output_filter.append("output_filter")
    error = refused(apis.parse_predict, request, SERVABLE)
    assert (
        error.message
        == "output tensor alias not found in signature: output_filter Outputs expected to be in the set {y,z}."
    )
    del request.output_filter[:]
    request.output_filter.extend(["z"])
    assert apis.parse_predict(request, SERVABLE).outputs == ["z"]
    request.output_filter.append("z")
    assert refused(apis.parse_predict, request, SERVABLE).message == "duplicate output tensor alias: z"


def test_response_carries_the_signature_run_and_the_version():
    prediction = apis.parse_predict(predict_request(x=np.array([2.0], np.float32)), SERVABLE)
    assert prediction.batch_size == 1
    response = apis.predict_response("m", 123, prediction, {"y": np.array([3.0], np.float32)})
    assert (response.model_spec.name, response.model_spec.signature_name, response.model_spec.version.value) == (
        "m",
        "serving_default",
        123,
    )
    assert list(response.outputs["y"].float_val) == [3.0]


def test_examples_with_context_carry_the_context_features():
    request_input = input_pb2.Input()
    listed = request_input.example_list_with_context
    listed.context.features.feature["c"].float_list.value.append(1.0)
    listed.examples.add().features.feature["x"].float_list.value.append(2.0)
    (serialized,) = apis.examples(request_input)
    example = tf.train.Example.FromString(serialized)
    assert set(example.features.feature) == {"c", "x"}
    assert refused(apis.examples, input_pb2.Input()).message == "Input is empty."


def test_classification_and_regression_signatures_are_checked_before_running():
    assert apis.classify_signature(SERVABLE, "classify").name == "classify"
    assert apis.regress_signature(SERVABLE, "regress").name == "regress"
    assert refused(apis.classify_signature, SERVABLE, "nope").message == "No signature was found with the name: nope"
    assert refused(apis.regress_signature, SERVABLE, "two_outputs").message == "Expected one output Tensor."
    assert refused(apis.classify_signature, SERVABLE, "no_scores").message.startswith(
        'Expected classification signature outputs to contain at least one of "classes" or "scores".'
    )
    assert refused(apis.regress_signature, SERVABLE, "").message.startswith(
        "No regression inputs found in SignatureDef"
    )


def test_classification_result_pairs_labels_and_scores():
    outputs = {"classes": np.array([[b"a", b"b"]], object), "scores": np.array([[0.25, 0.75]], np.float32)}
    (row,) = apis.classification_result(outputs, 1).classifications
    assert [(c.label, c.score) for c in row.classes] == [("a", 0.25), ("b", 0.75)]


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({"scores": np.array([1.0], np.float32)}, "Expected Tensor shape: [batch_size num_classes] but got [1]"),
        ({"scores": np.array([[1.0]], np.float64)}, "Expected scores Tensor of DT_FLOAT. Got: DT_DOUBLE"),
        ({"classes": np.array([[b"a"], [b"b"]], object)}, "Expected classes output batch size of 1. Got: 2"),
        (
            {"classes": np.array([[b"a"]], object), "scores": np.array([[1.0, 2.0]], np.float32)},
            "Tensors class and score should match in dim_size(1). Got 1 vs. 2",
        ),
    ],
)
def test_classification_outputs_of_the_wrong_shape_are_refused(outputs, message):
    assert refused(apis.classification_result, outputs, 1).message == message


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            np.array([[1.0, 2.0]], np.float32),
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got [1,2]",
        ),
        (np.array([1.0, 2.0], np.float32), "Input batch size did not match output batch size: 1 vs. 2"),
        (np.array([1.0], np.float64), "Expected output Tensor of DT_FLOAT.  Got: DT_DOUBLE"),
    ],
)
def test_regression_outputs_of_the_wrong_shape_are_refused(values, message):
    assert refused(apis.regression_result, {"outputs": values}, 1).message == message


def test_regression_takes_one_value_per_example():
    result = apis.regression_result({"outputs": np.array([[3.0], [4.0]], np.float32)}, 2)
    assert [r.value for r in result.regressions] == [3.0, 4.0]


def multi(*tasks):
    request = inference_pb2.MultiInferenceRequest()
    for name, signature_name, method in tasks:
        task = request.tasks.add(method_name=method)
        task.model_spec.name, task.model_spec.signature_name = name, signature_name
    return request


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        (
            multi(("", "classify", apis.CLASSIFY_METHOD)),
            "INVALID_ARGUMENT",
            "Found ModelSpec with an empty model name.",
        ),
        (
            multi(("m", "classify", apis.CLASSIFY_METHOD), ("n", "regress", apis.REGRESS_METHOD)),
            "INVALID_ARGUMENT",
            "All ModelSpecs in a MultiInferenceRequest must access the same model name.",
        ),
        (
            multi(("m", "classify", apis.CLASSIFY_METHOD), ("m", "classify", apis.CLASSIFY_METHOD)),
            "INVALID_ARGUMENT",
            "Duplicate evaluation of signature: classify",
        ),
        (
            multi(("m", "nope", apis.CLASSIFY_METHOD)),
            "INVALID_ARGUMENT",
            "Requested signature not found in model graph: nope",
        ),
        (
            multi(("m", "regress", "tensorflow/serving/predict")),
            "UNIMPLEMENTED",
            "Unsupported signature method_name: tensorflow/serving/predict",
        ),
    ],
)
def test_multi_inference_requests_tf_serving_refuses(request_, code, message):
    error = refused(apis.multi_inference_tasks, request_, SERVABLE)
    assert (error.code, error.message) == (code, message)


def test_metadata_requests_name_the_signature_def_field():
    """GetModelMetadataImplTest.EmptyOrInvalidMetadataFieldList and MissingOrEmptyModelSpec."""
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    assert refused(apis.check_metadata_request, request).message == "Missing ModelSpec"
    request.model_spec.name = "m"
    assert refused(apis.check_metadata_request, request).message == (
        "GetModelMetadataRequest must specify at least one metadata_field"
    )
    request.metadata_field.append("some_stuff")
    assert refused(apis.check_metadata_request, request).message == "Metadata field some_stuff is not supported"


def test_long_grpc_messages_are_cut_as_tf_serving_cuts_them():
    assert apis.grpc_message("x" * 2000) == "x" * 1024 + "...TRUNCATED"
    assert apis.grpc_message("short") == "short"
