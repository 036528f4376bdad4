"""TF Serving's REST predict format, ported from tensorflow_serving/util/json_tensor_test.cc.

Each test names the upstream test it ports. Tensors are compared as numpy arrays: shape, dtype and values stand
for the TensorProto the upstream test compares. Output JSON is compared after parsing, except where the upstream
test compares the text (non-finite tokens).

Ported with a difference, and why:
- FromJsonSingleFloatTensorSixDigitPrecision compares number text (`9e+06`, `3e-05`); orjson writes the same
  float32 values in its own shortest form (`9000000.0`, `3e-5`). The values parsed by any JSON reader are equal,
  so the test compares values; matching the text would cost the common path a formatter of our own.
- FromJsonSingleTensorErrors' complex64 case: numpy holds the tensor; the message is the same.
- TensorFromNonNullTerminatedBuffer is about C string handling; here it pins that the body's bytes are read up to
  their length and no further.
"""

import json
import math

import numpy as np
import pytest

from vertex_serving.tfserving.errors import ServingError
from vertex_serving.tfserving.jsondoc import dumps, parse_body
from vertex_serving.tfserving.servable import Signature, TensorSpec
from vertex_serving.tfserving.tensors import format_predict, parse_predict, signature_name

DTYPES = {
    "DT_INT32": np.int32,
    "DT_FLOAT": np.float32,
    "DT_DOUBLE": np.float64,
    "DT_STRING": object,
    "DT_INT64": np.int64,
    "DT_BOOL": bool,
    "DT_HALF": np.float16,
    "DT_UINT64": np.uint64,
    "DT_INT8": np.int8,
    "DT_UINT8": np.uint8,
    "DT_INT16": np.int16,
    "DT_UINT32": np.uint32,
}


def signature(**inputs: str) -> Signature:
    """A signature with the given inputs (name=DT_TYPE) of unknown shape, like the upstream tests' infomap."""
    specs = {k: TensorSpec(k, f"{k}:0", np.dtype(DTYPES[v]), v, None) for k, v in sorted(inputs.items())}
    return Signature("serving_default", "tensorflow/serving/predict", specs, {})


def predict(text: str, sig: Signature):
    """FillPredictRequestFromJson: the body through the server's parser, its signature name, then the tensors."""
    body = parse_body(text.encode())
    signature_name(body.value)
    return parse_predict(body.value, sig, body.raw)


def row(text: str, sig: Signature) -> dict:
    """The tensors of a request that must be read in the row ("instances") format, as upstream's kRow checks."""
    request = predict(text, sig)
    assert not request.columnar
    return request.feeds


def refused(text: str, sig: Signature) -> ServingError:
    with pytest.raises(ServingError) as e:
        predict(text, sig)
    assert e.value.code == "INVALID_ARGUMENT"
    return e.value


def as_json(outputs: dict, columnar: bool) -> dict:
    return json.loads(dumps(format_predict(outputs, columnar)))


def test_single_unnamed_tensor():  # JsontensorTest.SingleUnnamedTensor
    request = predict('{"instances": [[1,2],[3,4],[5,6]]}', signature(default="DT_INT32"))
    tensor = request.feeds["default"]
    assert not request.columnar and list(request.feeds) == ["default"]
    assert tensor.dtype == np.int32 and tensor.shape == (3, 2) and tensor.tolist() == [[1, 2], [3, 4], [5, 6]]


def test_deeply_nested_well_formed():  # JsontensorTest.DeeplyNestedWellFormed
    text = '{"instances":[1], "nested":' + "[" * 500000 + "]" * 500000 + "}"
    assert predict(text, signature(default="DT_INT32")).feeds["default"].tolist() == [1]


def test_deeply_nested_malformed():  # JsontensorTest.DeeplyNestedMalformed
    text = '{"signature_name":' + "[" * 500000 + "]" * 500000 + "}"
    assert "key must be a string value" in refused(text, signature(default="DT_INT32")).message


def test_mixed_input_for_float_tensor():  # JsontensorTest.MixedInputForFloatTensor
    tensor = row('{"instances": [1, 2.0, 3, 4, 5.003, 0.007, 0.0]}', signature(default="DT_FLOAT"))["default"]
    assert tensor.dtype == np.float32 and tensor.shape == (7,)
    assert tensor.tolist() == np.array([1, 2.0, 3, 4, 5.003, 0.007, 0.0], np.float32).tolist()


def test_mixed_input_for_double_tensor():  # JsontensorTest.MixedInputForDoubleTensor
    tensor = row('{"instances": [1.0, 2, 3, 4, 0.662, 0, 0.0]}', signature(default="DT_DOUBLE"))["default"]
    assert tensor.dtype == np.float64 and tensor.tolist() == [1.0, 2, 3, 4, 0.662, 0, 0.0]


def test_float_tensor_with_precision_loss():  # JsontensorTest.FloatTensorWithPrecisionLoss
    # api_rest.md "Floating Point Precision": 1435774380 reaches a float input as 1435774336.
    whole = row('{"instances": [1435774380]}', signature(default="DT_FLOAT"))["default"]
    decimal = row('{"instances": [1435774380.0]}', signature(default="DT_FLOAT"))["default"]
    assert whole.tolist() == decimal.tolist() == [1435774336.0]


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # pytest resets the module's own filter
def test_float_tensor_that_exceeds_max_returns_inf():  # JsontensorTest.FloatTensorThatExceedsMaxReturnsInf
    sig = signature(default="DT_FLOAT")
    assert row('{ "instances": [1.79769e+308] }', sig)["default"].tolist() == [math.inf]
    assert row('{ "instances": [-1.79769e+308] }', sig)["default"].tolist() == [-math.inf]


def test_float_tensor_that_exceeds_min_returns_zero():  # JsontensorTest.FloatTensorThatExceedsMinReturnsZero
    sig = signature(default="DT_FLOAT")
    assert row('{ "instances": [2.22507e-308] }', sig)["default"].tolist() == [0.0]
    negative = row('{ "instances": [-2.22507e-308] }', sig)["default"]
    assert negative.tolist() == [0.0] and math.copysign(1, negative[0]) == -1


def test_single_unnamed_tensor_with_signature():  # JsontensorTest.SingleUnnamedTensorWithSignature
    text = '{"signature_name": "predict_images", "instances": [[1,2]]}'
    assert signature_name(parse_body(text.encode()).value) == "predict_images"
    assert row(text, signature(default="DT_INT32"))["default"].tolist() == [[1, 2]]


def test_tensor_from_non_null_terminated_buffer():  # JsontensorTest.TensorFromNonNullTerminatedBuffer
    raw = b'{"instances": [[1,2],[3,4],[5,6]]}X'
    body = parse_body(raw[:-1])
    request = parse_predict(body.value, signature(default="DT_INT32"))
    assert not request.columnar and request.feeds["default"].tolist() == [[1, 2], [3, 4], [5, 6]]


def test_single_unnamed_tensor_base64_scalars():  # JsontensorTest.SingleUnnamedTensorBase64Scalars
    text = '{"instances": [ { "b64" : "aGVsbG8=" }, { "b64": "d29ybGQ=" } ]}'
    tensor = row(text, signature(default="DT_STRING"))["default"]
    assert tensor.shape == (2,) and tensor.tolist() == [b"hello", b"world"]


def test_single_unnamed_tensor_base64_lists():  # JsontensorTest.SingleUnnamedTensorBase64Lists
    text = '{"instances": [ [{ "b64" : "aGVsbG8=" }], [{ "b64": "d29ybGQ=" }] ]}'
    tensor = row(text, signature(default="DT_STRING"))["default"]
    assert tensor.shape == (2, 1) and tensor.tolist() == [[b"hello"], [b"world"]]


def test_single_named_tensor_base64():  # JsontensorTest.SingleNamedTensorBase64
    text = '{"instances": [{"default": [ [{ "b64" : "aGVsbG8=" }], [{ "b64": "d29ybGQ=" }] ]}]}'
    tensor = row(text, signature(default="DT_STRING"))["default"]
    assert tensor.shape == (1, 2, 1) and tensor.tolist() == [[[b"hello"], [b"world"]]]


def test_multiple_named_tensor():  # JsontensorTest.MultipleNamedTensor
    text = """{"instances": [
        {"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"], "float_tensor": [1.0, NaN],
         "dbl_tensor": [NaN]},
        {"int_tensor": [[7,8],[9,0],[1,2]], "str_tensor": ["baz", "bat"], "float_tensor": [2.0, Infinity],
         "dbl_tensor": [2.0]}
    ]}"""
    sig = signature(int_tensor="DT_INT32", str_tensor="DT_STRING", float_tensor="DT_FLOAT", dbl_tensor="DT_DOUBLE")
    feeds = row(text, sig)
    assert feeds["int_tensor"].shape == (2, 3, 2) and feeds["int_tensor"].dtype == np.int32
    assert feeds["int_tensor"].reshape(-1).tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]
    assert feeds["str_tensor"].tolist() == [[b"foo", b"bar"], [b"baz", b"bat"]]
    floats = feeds["float_tensor"]
    assert floats.dtype == np.float32 and floats.shape == (2, 2)
    assert floats[0, 0] == 1.0 and math.isnan(floats[0, 1]) and floats[1].tolist() == [2.0, math.inf]
    doubles = feeds["dbl_tensor"]
    assert (
        doubles.dtype == np.float64 and doubles.shape == (2, 1) and math.isnan(doubles[0, 0]) and doubles[1, 0] == 2.0
    )


def test_single_unnamed_tensor_columnar_format():  # JsontensorTest.SingleUnnamedTensorColumnarFormat
    sig = signature(int_tensor="DT_INT32")
    for text in ('{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]]}}', '{"inputs": [[[1,2],[3,4],[5,6]]]}'):
        request = predict(text, sig)
        assert request.columnar and request.feeds["int_tensor"].shape == (1, 3, 2)
        assert request.feeds["int_tensor"].reshape(-1).tolist() == [1, 2, 3, 4, 5, 6]


def test_multiple_named_tensor_columnar_format():  # JsontensorTest.MultipleNamedTensorColumnarFormat
    text = """{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]], "str_tensor": ["foo", "bar"],
                          "bin_tensor": { "b64" : "aGVsbG8=" }}}"""
    feeds = predict(text, signature(int_tensor="DT_INT32", str_tensor="DT_STRING", bin_tensor="DT_STRING")).feeds
    assert feeds["int_tensor"].shape == (1, 3, 2)
    assert feeds["str_tensor"].shape == (2,) and feeds["str_tensor"].tolist() == [b"foo", b"bar"]
    assert feeds["bin_tensor"].shape == () and feeds["bin_tensor"][()] == b"hello"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"signature_name": 5, "instances": [[1,2],[3,4],[5,6,7]]}', "must be a string value"),
        ('{"instances": [[1,2],[3,4],[5,6,7]], "inputs": [[1,2],[3,4],[5,6,7]]}', "Not formatted correctly"),
        ('{"instances": [[1,2],[3,4],[5,6,7]]}', "Expecting tensor size"),
        ('{"instances": [[1,2],[3,4],[[5,6]]]}', "Expecting shape"),
        ('{"instances": [1, [1]]}', "Expecting shape"),
        ('{"instances": [[1,2],["a", "b"]]}', "not of expected type"),
    ],
)
def test_single_unnamed_tensor_errors(text, needle):  # JsontensorTest.SingleUnnamedTensorErrors
    assert needle in refused(text, signature(default="DT_INT32")).message


def test_single_unnamed_tensor_errors_empty_document():  # JsontensorTest.SingleUnnamedTensorErrors
    assert "document is empty" in refused("", signature(default="DT_INT32")).message


@pytest.mark.parametrize(
    ("instances", "needle"),
    [
        (
            '[{"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"]},'
            ' {"int_tensor": [[[7,8],[9,0],[1,2]]], "str_tensor": ["baz", "bat"]}]',
            "Expecting shape",
        ),
        (
            '[{"int_tensor": [[1,2],[3,4],[5,6],[7,8]], "str_tensor": ["foo", "bar"]},'
            ' {"int_tensor": [[7,8],[9,0],[1,2]], "str_tensor": ["baz", "bat"]}]',
            "Expecting tensor size",
        ),
        (
            '[{"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"]}, [1, 20, 30],'
            ' {"int_tensor": [[[7,8],[9,0],[1,2]]], "str_tensor": ["baz", "bat"]}]',
            "Expecting object but got list",
        ),
    ],
)
def test_multiple_named_tensor_errors(instances, needle):  # JsontensorTest.MultipleNamedTensorErrors
    sig = signature(int_tensor="DT_INT32", str_tensor="DT_STRING")
    assert needle in refused('{"instances": ' + instances + "}", sig).message


def test_multiple_named_tensor_errors_list_then_object():  # JsontensorTest.MultipleNamedTensorErrors
    text = '{"instances": [["baz", "bar"], {"str_tensor": ["baz", "bat"]}]}'
    assert "Expecting value/list but got object" in refused(text, signature(str_tensor="DT_STRING")).message


# Outputs: MakeJsonFromTensors ----------------------------------------------------------------------------------

INTS_2x3x2 = np.array([[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]], np.int32)


def test_from_json_single_tensor():  # JsontensorTest.FromJsonSingleTensor
    assert as_json({"int_tensor": INTS_2x3x2}, False) == {"predictions": INTS_2x3x2.tolist()}
    assert as_json({"int_tensor": INTS_2x3x2}, True) == {"outputs": INTS_2x3x2.tolist()}


def test_from_json_single_scalar_tensor():  # JsontensorTest.FromJsonSingleScalarTensor
    tensor = np.array([1, 2, 3, 4, 5], np.int32)
    assert as_json({"int_tensor": tensor}, False) == {"predictions": [1, 2, 3, 4, 5]}
    assert as_json({"int_tensor": tensor}, True) == {"outputs": [1, 2, 3, 4, 5]}


def test_from_json_single_bytes_tensor():  # JsontensorTest.FromJsonSingleBytesTensor
    # api_rest.md "Output of binary values": an output whose name ends in _bytes is written as {"b64": ...}.
    tensor = np.array([[b"hello", b"world"], [b"tf", b"serving"]], object)
    assert as_json({"str_tensor_bytes": tensor}, False) == {
        "predictions": [[{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}], [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]]
    }


def test_from_json_single_float_tensor_six_digit_precision():  # JsontensorTest.FromJsonSingleFloatTensorSixDigitPrecision
    tensor = np.array([[9000000, 999999, 0.50000], [0.0003, 0.00003, 555557.5]], np.float32)
    predictions = as_json({"float_tensor": tensor}, False)["predictions"]
    assert np.array(predictions, np.float32).tolist() == tensor.tolist()
    assert predictions == [[9e06, 999999.0, 0.5], [0.0003, 3e-05, 555557.5]]


def test_from_json_single_float_tensor_non_finite():  # JsontensorTest.FromJsonSingleFloatTensorNonFinite
    tensor = np.array([[math.nan, math.inf], [3, -math.inf]], np.float32)
    assert dumps(format_predict({"float_tensor": tensor}, False)) == b'{"predictions":[[NaN,Infinity],[3.0,-Infinity]]}'


def test_from_json_single_tensor_errors():  # JsontensorTest.FromJsonSingleTensorErrors
    with pytest.raises(ServingError, match="empty tensor map"):
        format_predict({}, False)
    with pytest.raises(ServingError, match="tensor type: complex64"):
        format_predict({"tensor": np.array([1.0, 2.0], np.complex64)}, False)
    with pytest.raises(ServingError, match="no shape information"):
        format_predict({"tensor": np.array(1, np.int32)}, False)


def test_from_json_multiple_named_tensors():  # JsontensorTest.FromJsonMultipleNamedTensors
    outputs = {
        "int_tensor": INTS_2x3x2,
        "str_tensor": np.array([[b"foo", b"bar"], [b"baz", b"bat"]], object),
        "float_tensor": np.array([[1.0], [2.0]], np.float32),
        "double_scalar_tensor": np.array([8.0, 9.0], np.float64),
        "str_tensor_bytes": np.array([[b"hello", b"world"], [b"tf", b"serving"]], object),
    }
    assert as_json(outputs, False) == {
        "predictions": [
            {
                "double_scalar_tensor": 8.0,
                "float_tensor": [1.0],
                "int_tensor": [[1, 2], [3, 4], [5, 6]],
                "str_tensor": ["foo", "bar"],
                "str_tensor_bytes": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}],
            },
            {
                "double_scalar_tensor": 9.0,
                "float_tensor": [2.0],
                "int_tensor": [[7, 8], [9, 0], [1, 2]],
                "str_tensor": ["baz", "bat"],
                "str_tensor_bytes": [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}],
            },
        ]
    }
    assert as_json(outputs, True) == {
        "outputs": {
            "double_scalar_tensor": [8.0, 9.0],
            "float_tensor": [[1.0], [2.0]],
            "int_tensor": INTS_2x3x2.tolist(),
            "str_tensor": [["foo", "bar"], ["baz", "bat"]],
            "str_tensor_bytes": [
                [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}],
                [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}],
            ],
        }
    }


def test_from_json_multiple_named_tensors_errors():  # JsontensorTest.FromJsonMultipleNamedTensorsErrors
    outputs = {"int_tensor": np.zeros((2, 3), np.int32), "str_tensor": np.array([[b"foo", b"bar", b"baz"]], object)}
    with pytest.raises(ServingError, match="inconsistent batch size"):
        format_predict(outputs, False)


def test_from_json_single_zero_batch_tensor():  # JsontensorTest.FromJsonSingleZeroBatchTensor
    assert as_json({"int_tensor": np.zeros((0, 2), np.int32)}, False) == {"predictions": []}


def test_from_json_multiple_zero_batch_tensors():  # JsontensorTest.FromJsonMultipleZeroBatchTensors
    outputs = {"str_tensor": np.zeros((0, 1, 2), object), "float_tensor": np.zeros((0, 3, 4), np.float32)}
    assert as_json(outputs, False) == {"predictions": []}


def test_from_json_multiple_zero_batch_tensors_errors():  # JsontensorTest.FromJsonMultipleZeroBatchTensorsErrors
    outputs = {"int_tensor": np.zeros((0, 2), np.int32), "str_tensor": np.array([[b"foo", b"bar"]], object)}
    with pytest.raises(ServingError, match="inconsistent batch size"):
        format_predict(outputs, False)


# g3doc/api_rest.md's request formats and JSON mapping -----------------------------------------------------------


def test_api_rest_row_and_columnar_formats():  # api_rest.md "Predict API": the guide's request examples
    strings = row('{"instances": [ "foo", "bar", "baz" ]}', signature(default="DT_STRING"))["default"]
    assert strings.shape == (3,) and strings.tolist() == [b"foo", b"bar", b"baz"]
    pairs = row('{"instances": [ [[1, 2]], [[3, 4]] ]}', signature(default="DT_INT32"))["default"]
    assert pairs.shape == (2, 1, 2)
    sig = signature(tag="DT_STRING", signal="DT_INT32", sensor="DT_INT32")
    rows = predict(
        """{"instances": [
            {"tag": "foo", "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]},
            {"tag": "bar", "signal": [3, 4, 1, 2, 5], "sensor": [[4, 5], [6, 8]]}
        ]}""",
        sig,
    )
    columns = predict(
        """{"inputs": {"tag": ["foo", "bar"], "signal": [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]],
                       "sensor": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]]}}""",
        sig,
    )
    assert not rows.columnar and columns.columnar
    assert {k: (v.shape, v.tolist()) for k, v in rows.feeds.items()} == {
        k: (v.shape, v.tolist()) for k, v in columns.feeds.items()
    }
    assert rows.feeds["sensor"].shape == (2, 2, 2) and rows.feeds["tag"].tolist() == [b"foo", b"bar"]


@pytest.mark.parametrize(
    ("dtype", "text", "values"),
    [
        ("DT_BOOL", "[true, false]", [True, False]),
        ("DT_STRING", '["Hello World!"]', [b"Hello World!"]),
        ("DT_INT8", "[1, -10, 0]", [1, -10, 0]),
        ("DT_UINT8", "[1, 10, 0]", [1, 10, 0]),
        ("DT_INT16", "[1, -10, 0]", [1, -10, 0]),
        ("DT_INT32", "[1, -10, 0]", [1, -10, 0]),
        ("DT_UINT32", "[1, 10, 0]", [1, 10, 0]),
        ("DT_INT64", "[1, -10, 0]", [1, -10, 0]),
        ("DT_UINT64", "[1, 10, 0]", [1, 10, 0]),
        ("DT_FLOAT", "[1.1, -10.0, 0, 2.5e2]", np.array([1.1, -10.0, 0, 250.0], np.float32).tolist()),
        ("DT_DOUBLE", "[1.1, -10.0, 0, 2.5E-1]", [1.1, -10.0, 0, 0.25]),
    ],
)
def test_json_mapping(dtype, text, values):  # api_rest.md "JSON mapping": each type row, exponent notation too
    tensor = row('{"instances": ' + text + "}", signature(default=dtype))["default"]
    assert tensor.dtype == np.dtype(DTYPES[dtype]) and tensor.tolist() == values


def test_json_mapping_non_finite_floats():  # api_rest.md "JSON mapping": NaN, Infinity and -Infinity tokens
    for dtype in ("DT_FLOAT", "DT_DOUBLE"):
        tensor = row('{"instances": [NaN, Infinity, -Infinity]}', signature(default=dtype))["default"]
        assert math.isnan(tensor[0]) and tensor[1:].tolist() == [math.inf, -math.inf]


# Beyond the upstream tests: the issues found against TF Serving, and our own documented choices -----------------


def test_a_zero_dimensional_output_is_a_bare_value_in_columnar_form():
    assert as_json({"y": np.array(3.5, np.float32)}, True) == {"outputs": 3.5}


def test_json_booleans_never_fill_numeric_tensors_even_among_numbers():
    sig = signature(default="DT_FLOAT")
    problem = refused('{"instances": [1.0, true]}', sig)
    assert "JSON Value: true Type: True is not of expected type: float" in problem.message
    assert "Failed to process element: 1 of 'instances' list" in problem.message
    assert row('{"instances": [true, false]}', signature(default="DT_BOOL"))["default"].tolist() == [
        True,
        False,
    ]


@pytest.mark.parametrize(
    ("text", "dtype", "needle"),
    [
        ('{"instances": [1.5]}', "DT_INT32", "JSON Value: 1.5 Type: Number is not of expected type: int32"),
        ('{"instances": [2147483648]}', "DT_INT32", "is not of expected type: int32"),
        ('{"instances": [9223372036854775808]}', "DT_INT64", "is not of expected type: int64"),
        ('{"instances": [-1]}', "DT_UINT64", "is not of expected type: uint64"),
        ('{"instances": [null]}', "DT_FLOAT", "JSON Value: null Type: Null is not of expected type: float"),
        ('{"instances": ["1.5"]}', "DT_FLOAT", 'JSON Value: "1.5" Type: String is not of expected type: float'),
        (
            '{"inputs": {"default": [1, "2"]}}',
            "DT_DOUBLE",
            'JSON Value: "2" Type: String is not of expected type: double',
        ),
        ('{"instances": [[{"a": 1}]]}', "DT_STRING", "not formatted correctly for base64 data"),
        ('{"instances": [{"b64": "!!"}]}', "DT_STRING", "Unable to base64 decode"),
        ('{"instances": [[1], [2, 3]]}', "DT_FLOAT", "Expecting tensor size: 1 but got: 2"),
        (
            '{"inputs": [[1], [2, 3]]}',
            "DT_FLOAT",
            "Encountered list at unexpected size: 2 at level: 1 expected size: 1",
        ),
        ('{"inputs": [[1], 2]}', "DT_FLOAT", "JSON Value: 2 found at incorrect level: 2 in the JSON DOM"),
        ('{"instances": []}', "DT_FLOAT", "No values in 'instances' array"),
        ('{"instances": 5}', "DT_FLOAT", "Expecting 'instances' to be an list/array"),
        ('{"signature_name": "x"}', "DT_FLOAT", "Missing 'inputs' or 'instances' key"),
        ("[1, 2]", "DT_FLOAT", "JSON Value: [1, 2] Is not object"),
    ],
)
def test_refusals_use_tf_serving_wording(text, dtype, needle):
    assert needle in refused(text, signature(default=dtype)).message


def test_types_tf_serving_cannot_fill_from_json_are_unimplemented():
    with pytest.raises(ServingError) as e:
        predict('{"inputs": [1.5]}', signature(default="DT_HALF"))
    assert e.value.code == "UNIMPLEMENTED" and e.value.http_status == 501
    assert e.value.message == "Conversion of JSON Value: 1.5 to type: half"


def test_integers_wrap_into_narrow_types_as_tf_serving_casts_them():
    assert row('{"instances": [300, -1]}', signature(default="DT_INT8"))["default"].tolist() == [44, -1]


def test_columnar_inputs_ignore_keys_the_signature_does_not_name():
    feeds = predict('{"inputs": {"a": [1], "extra": "x"}}', signature(a="DT_INT64")).feeds
    assert list(feeds) == ["a"] and feeds["a"].tolist() == [1]
    assert (
        "Missing named input: b in 'inputs' object."
        in refused('{"inputs": {"a": [1]}}', signature(a="DT_INT64", b="DT_INT64")).message
    )


def test_instances_name_every_input_or_none():
    sig = signature(a="DT_INT64", b="DT_STRING")
    assert "instances is a plain list, but expecting list of objects" in refused('{"instances": [[1]]}', sig).message
    problem = refused('{"instances": [{"a": 1}]}', sig).message
    assert "Failed to process element: 0 of 'instances' list. JSON object:" in problem
    assert "keys must be equal to: a,b" in problem
    problem = refused('{"instances": [{"a": 1, "b": "x", "c": 2}]}', sig).message
    assert "key: c of 'instances' list. Error: INVALID_ARGUMENT: JSON object: does not have named input: c" in problem


@pytest.mark.parametrize("dtype", ["DT_FLOAT", "DT_UINT64", "DT_INT8"])
def test_the_three_conversions_agree(dtype):
    # Only numbers: straight to the type; a string elsewhere: numpy's inference; "true" anywhere: value by value.
    bodies = ('{"instances": [[1, 2], [3, 4]]}', '{"instances": [[1, 2], [3, 4]], "note": "x"}')
    bodies += ('{"instances": [[1, 2], [3, 4]], "note": "true"}',)
    tensors = [predict(text, signature(default=dtype)).feeds["default"] for text in bodies]
    assert {t.dtype for t in tensors} == {np.dtype(DTYPES[dtype])}
    assert [t.tolist() for t in tensors] == [[[1, 2], [3, 4]]] * 3


def test_half_and_uint16_outputs_are_refused_as_tf_serving_refuses_them():
    with pytest.raises(ServingError, match="Failed to write JSON value for tensor type: half"):
        format_predict({"y": np.array([1.0], np.float16)}, True)
    with pytest.raises(ServingError, match="tensor type: uint16"):
        format_predict({"y": np.array([1], np.uint16)}, True)


def test_string_outputs_that_are_not_utf8_come_back_as_b64():
    out = as_json({"label": np.array([b"cat", b"\xff"], object)}, False)
    assert out == {"predictions": ["cat", {"b64": "/w=="}]}
