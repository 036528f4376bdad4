"""TF Serving's JSON dialect: rapidjson's grammar and error wording in, NaN/Infinity tokens out.

Sources: json_tensor.cc's ParseJson (iterative parsing, NaN/Inf tokens, stop after the root value), its test
MakeJsonFromTensors.StatusError, and api_rest.md's "JSON conformance".
"""

import json
import math

import numpy as np
import orjson
import pytest

from vertex_serving.tfserving.errors import ServingError
from vertex_serving.tfserving.jsondoc import (
    count_quotes,
    debug_string,
    dumps,
    error_body,
    fast_body,
    may_hold_literals,
    parse_body,
)


def refusal(raw: bytes) -> str:
    with pytest.raises(ServingError) as e:
        parse_body(raw)
    assert e.value.code == "INVALID_ARGUMENT" and e.value.http_status == 400
    return e.value.message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "JSON Parse error: The document is empty"),
        (b"  \n", "JSON Parse error: The document is empty. at offset: 3"),
        (b"instances = [1, 2]", "JSON Parse error: Invalid value. at offset: 0"),
        (b'{"a" 1}', "JSON Parse error: Missing a colon after a name of object member. at offset: 5"),
        (b'{"a": 1,}', "JSON Parse error: Missing a name for object member. at offset: 8"),
        (b'{"a": 1 "b": 2}', "JSON Parse error: Missing a comma or '}' after an object member. at offset: 8"),
        (b"[1 2]", "JSON Parse error: Missing a comma or ']' after an array element. at offset: 3"),
        (b"[1,]", "JSON Parse error: Invalid value. at offset: 3"),
        (b'"abc', "JSON Parse error: Missing a closing quotation mark in string. at offset: 4"),
        (b'"a\\x"', "JSON Parse error: Invalid escape character in string. at offset: 2"),
        (b'"\\u12"', "JSON Parse error: Incorrect hex digit after \\u escape in string. at offset: 1"),
        (b'"\\ud800"', "JSON Parse error: The surrogate pair in string is invalid. at offset: 1"),
        (b'"a\x01"', "JSON Parse error: Invalid encoding in string. at offset: 2"),
        (b"[1.]", "JSON Parse error: Miss fraction part in number. at offset: 3"),
        (b"[1e+]", "JSON Parse error: Miss exponent part in number. at offset: 4"),
        (b"[1e400]", "JSON Parse error: Number too big to be stored in double. at offset: 1"),
        (b"[Nan]", "JSON Parse error: Invalid value. at offset: 3"),
        (b"[tru]", "JSON Parse error: Invalid value. at offset: 4"),
        (b'{"a": [1, 2', "JSON Parse error: Missing a comma or ']' after an array element. at offset: 11"),
    ],
)
def test_refusals_are_worded_as_rapidjson_words_them(raw, message):
    assert refusal(raw) == message


def test_nan_and_infinity_tokens_are_numbers():  # api_rest.md "JSON conformance"
    value = parse_body(b'{"x": [1.0, -3.14, NaN, Infinity, -Infinity, Inf, -Inf, -NaN]}').value["x"]
    assert value[:2] == [1.0, -3.14] and math.isnan(value[2]) and value[3:5] == [math.inf, -math.inf]
    assert value[5:7] == [math.inf, -math.inf] and math.isnan(value[7])


def test_what_follows_the_root_value_is_not_read():  # kParseStopWhenDoneFlag
    assert parse_body(b'{"instances": [1]} and more').value == {"instances": [1]}
    assert parse_body(b'\xef\xbb\xbf{"a": 1}').value == {"a": 1}


def test_nesting_depth_is_limited_by_the_body_size_only():  # json_tensor_test DeeplyNested*
    depth = 200_000
    value = parse_body(b'{"a": ' + b"[" * depth + b"]" * depth + b', "b": 2}').value
    assert value["b"] == 2
    level, inner = 0, value["a"]
    while inner:
        level, inner = level + 1, inner[0]
    assert level == depth - 1


def test_numbers_keep_rapidjsons_types():
    value = parse_body(b"[18446744073709551615, 18446744073709551616, -9223372036854775809, NaN]").value
    assert value[0] == 2**64 - 1 and type(value[0]) is int
    assert type(value[1]) is float and type(value[2]) is float


def test_strict_json_takes_the_fast_parser():
    assert fast_body(b"[NaN]") is None
    assert fast_body(b'{"x": [true]}') == ({"x": [True]}, b'{"x": [true]}')


def test_scans_that_spare_per_value_checks():
    assert may_hold_literals(b'{"x": [1, true]}') and may_hold_literals(b"[null]") and may_hold_literals(b'["false"]')
    assert not may_hold_literals(b'{"inputs": [1.5, 2], "signature_name": "u"}')
    assert count_quotes(b'{"a": "b", "c": 1}', 10) == 6 and count_quotes(b'{"a": "b", "c": 1}', 3) == 3


def test_bytes_that_are_not_utf8_reach_the_model_unchanged():
    text = parse_body(b'["\xff\xfe"]').value[0]
    assert text.encode("utf-8", "surrogateescape") == b"\xff\xfe"
    assert json.loads(error_body(f"bad {text}")) == {"error": "bad \ufffd\ufffd"}


def test_non_finite_floats_are_written_as_tokens():  # api_rest.md "JSON conformance"
    response = {
        "outputs": {"a": np.array([[1.5, math.nan], [math.inf, -math.inf]], np.float32), "b": np.float32(math.nan)},
        "results": [["", np.float32(-math.inf)]],
    }
    assert dumps(response) == (b'{"outputs":{"a":[[1.5,NaN],[Infinity,-Infinity]],"b":NaN},"results":[["",-Infinity]]}')
    assert dumps({"predictions": ["null", np.array([0.1], np.float32)]}) == b'{"predictions":["null",[0.1]]}'


def test_status_error():  # MakeJsonFromTensors.StatusError
    assert orjson.loads(error_body('Bad key: "key"')) == {"error": 'Bad key: "key"'}
    assert orjson.loads(error_body("Bad key: 'key'")) == {"error": "Bad key: 'key'"}


def test_debug_strings_print_as_rapidjsons_pretty_writer():
    assert debug_string({"a": [1, 2.5, "x"], "b": None}) == '{\n    "a": [1, 2.5, "x"],\n    "b": null\n}'
    assert debug_string([1e21, 1e-7, 100.0, 0.001234, True]) == "[1e21, 1e-7, 100.0, 0.001234, true]"
    long = debug_string(list(range(1000)))
    assert long.startswith("[0, 1, 2") and 256 <= len(long) < 270 and not long.endswith("]")
