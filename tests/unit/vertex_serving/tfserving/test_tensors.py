"""TF Serving's REST formats: rows and columns, several inputs and outputs, b64, and the errors it answers."""

import numpy as np
import pytest

from vertex_serving.tfserving.errors import ServingError
from vertex_serving.tfserving.servable import Signature, TensorSpec
from vertex_serving.tfserving.tensors import format_predict, parse_predict, signature_name


def spec(key, dtype, shape, name="DT_FLOAT"):
    return TensorSpec(key, f"{key}:0", np.dtype(dtype), name, shape)


ONE = Signature(
    "serving_default",
    "tensorflow/serving/predict",
    {"x": spec("x", "float32", (-1, 3))},
    {"y": spec("y", "float32", (-1,))},
)
TWO = Signature(
    "two",
    "tensorflow/serving/predict",
    {"a": spec("a", "float32", (-1, 2)), "tag": spec("tag", object, (-1,), "DT_STRING")},
    {"sum": spec("sum", "float32", (-1,)), "tag_bytes": spec("tag_bytes", object, (-1,), "DT_STRING")},
)
INTS = Signature("ints", "tensorflow/serving/predict", {"n": spec("n", "int32", (-1,), "DT_INT32")}, {})


def error(body, signature) -> ServingError:
    with pytest.raises(ServingError) as e:
        parse_predict(body, signature)
    return e.value


def test_row_format_with_one_input_takes_bare_values():
    request = parse_predict({"instances": [[1, 2, 3], [4, 5, 6]]}, ONE)
    assert request.batch_size == 2 and not request.columnar
    assert request.feeds["x"].dtype == np.float32 and request.feeds["x"].tolist() == [[1, 2, 3], [4, 5, 6]]


def test_row_format_with_named_inputs_and_b64():
    body = {"instances": [{"a": [1, 2], "tag": {"b64": "aGk="}}, {"a": [3, 4], "tag": "yo"}]}
    request = parse_predict(body, TWO)
    assert request.feeds["tag"].tolist() == [b"hi", b"yo"] and request.feeds["a"].shape == (2, 2)


def test_columnar_format():
    request = parse_predict({"inputs": {"a": [[1, 2]], "tag": ["x"]}}, TWO)
    assert request.columnar and request.batch_size == 1
    assert parse_predict({"inputs": [[1, 2, 3]]}, ONE).feeds["x"].shape == (1, 3)


def test_one_output_gives_bare_values_several_give_objects_and_bytes_outputs_come_back_as_b64():
    assert format_predict({"y": np.array([1.5, 2.5], np.float32)}, False, 2)["predictions"].tolist() == [1.5, 2.5]
    out = format_predict({"sum": np.array([3.0], np.float32), "tag_bytes": np.array([b"\x00\xff"], object)}, False, 1)
    assert out["predictions"][0]["tag_bytes"] == {"b64": "AP8="} and out["predictions"][0]["sum"] == 3.0
    columns = format_predict({"sum": np.array([3.0], np.float32), "tag_bytes": np.array([b"ok"], object)}, True, 1)
    assert columns["outputs"]["tag_bytes"] == [{"b64": "b2s="}]


def test_string_outputs_are_text():
    out = format_predict({"label": np.array([b"cat", b"dog"], object)}, False, 2)
    assert out == {"predictions": ["cat", "dog"]}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"instances": [[1, 2, 3]], "inputs": [[1, 2, 3]]}, "Not both 'instances' and 'inputs'"),
        ({"signature_name": "serving_default"}, "Missing 'instances' or 'inputs'"),
        ({"instances": []}, "non-empty"),
        ({"instances": [[1, 2]]}, "has shape [1, 2] but signature expects [-1, 3]"),
        ({"instances": [[1, 2, 3], [1, 2]]}, "different shapes"),
        ({"instances": [["a", "b", "c"]]}, "not DT_FLOAT"),
        ({"instances": [{"z": [1, 2, 3]}]}, "unknown ['z'], missing ['x']"),
    ],
)
def test_bad_requests_name_the_problem(body, needle):
    problem = error(body, ONE)
    assert problem.code == "INVALID_ARGUMENT" and problem.http_status == 400 and needle in problem.message


def test_several_inputs_need_named_instances():
    assert "each instance must be an object" in error({"instances": [[1, 2]]}, TWO).message
    assert "'b64' value is not valid base64" in error({"instances": [{"a": [1, 2], "tag": {"b64": "!!"}}]}, TWO).message


def test_integers_refuse_decimals_rather_than_truncating_them():
    assert "not DT_INT32" in error({"instances": [1.5]}, INTS).message
    assert parse_predict({"instances": [1, 2]}, INTS).feeds["n"].dtype == np.int32


def test_signature_name_must_be_a_string_in_an_object():
    with pytest.raises(ServingError):
        signature_name([1, 2])
    with pytest.raises(ServingError):
        signature_name({"signature_name": 3})
    assert signature_name({"instances": []}) == ""


def test_row_outputs_must_keep_the_batch():
    with pytest.raises(ServingError) as e:
        format_predict({"y": np.array(1.0, np.float32)}, False, 2)
    assert "columnar" in e.value.message
