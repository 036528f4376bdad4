"""TF Serving's REST classify and regress format, ported from tensorflow_serving/util/json_tensor_test.cc.

Each test names the upstream test it ports. Upstream runs the request tests for ClassificationRequest and
RegressionRequest alike, through one function; here one function serves both verbs, so each runs once. Upstream
compares the request proto (context apart from the examples); here the examples are compared as the model gets
them, each one serialized after the context, so the parsed example holds the features of both.
"""

import json
import math

import numpy as np
import pytest

from vertex_serving.tfserving.errors import ServingError
from vertex_serving.tfserving.examples import format_classify, format_regress, parse_examples
from vertex_serving.tfserving.jsondoc import dumps, parse_body
from vertex_serving.tfserving.servable import Signature, TensorSpec
from vertex_serving.tfserving.tensors import signature_name


def examples(text: str) -> list[dict]:
    """The examples the model gets, as {feature: (kind, values)}."""
    from tensorflow.core.example import example_pb2

    body = parse_body(text.encode()).value
    signature_name(body)
    parsed = []
    for serialized in parse_examples(body):
        example = example_pb2.Example.FromString(serialized)
        features = {}
        for name, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            features[name] = (kind, list(getattr(feature, kind).value) if kind else [])
        parsed.append(features)
    return parsed


def refused(text: str) -> str:
    with pytest.raises(ServingError) as e:
        examples(text)
    assert e.value.code == "INVALID_ARGUMENT"
    return e.value.message


def test_request_no_context():  # ClassifyRegressRequestTest.RequestNoContext
    got = examples("""{"examples": [
        {"names": [ "foo", "bar" ], "ratings": [ 8.0, 9.0 ], "age": 20},
        {"names": [ "baz" ], "ratings": 6.0}
    ]}""")
    assert got == [
        {"names": ("bytes_list", [b"foo", b"bar"]), "ratings": ("float_list", [8.0, 9.0]), "age": ("int64_list", [20])},
        {"names": ("bytes_list", [b"baz"]), "ratings": ("float_list", [6.0])},
    ]


def test_request_with_context_and_signature():  # ClassifyRegressRequestTest.RequestWithContextAndSignature
    # api_rest.md "Classify and Regress API": the request format, signature_name, context and examples.
    text = """{
      "signature_name": "custom_signture",
      "context": {"query": "pizza", "location": [ "sfo" ]},
      "examples": [
        {"names": [ "foo", "bar" ], "ratings": [ 8.0, 9.0, NaN, Infinity ], "age": 20},
        {"names": [ "baz", { "b64": "aGVsbG8=" } ], "ratings": 6.0, "intboolmix": [ 1, true, false ]},
        {"names": "bar", "ratings": -Infinity}
      ]
    }"""
    assert signature_name(parse_body(text.encode()).value) == "custom_signture"
    first, second, third = examples(text)
    context = {"query": ("bytes_list", [b"pizza"]), "location": ("bytes_list", [b"sfo"])}
    kind, ratings = first.pop("ratings")
    assert kind == "float_list" and ratings[:2] == [8.0, 9.0] and math.isnan(ratings[2]) and ratings[3] == math.inf
    assert first == {**context, "names": ("bytes_list", [b"foo", b"bar"]), "age": ("int64_list", [20])}
    assert second == {
        **context,
        "names": ("bytes_list", [b"baz", b"hello"]),
        "ratings": ("float_list", [6.0]),
        "intboolmix": ("int64_list", [1, 1, 0]),
    }
    assert third == {**context, "names": ("bytes_list", [b"bar"]), "ratings": ("float_list", [-math.inf])}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            '{"signature_name": [ "hello" ], "examples": [ { "names": [ "foo", "bar" ] } ]}',
            "'signature_name' key must be a string",
        ),
        ('{"context": [ { "names": [ "foo", "bar" ] } ]}', "Example must be JSON object"),
        ('{"examples": { "names": [ "foo", "bar" ] }}', "list/array"),
        ('{"examples": [ [ { "names": [ "foo", "bar" ] } ] ]}', "Example must be JSON object"),
        ('{"examples": [ { "names": [ 10, null ] } ]}', "names has element with unexpected JSON type: Null"),
        ('{"examples": [ { "names": [ 10, 10.0 ] } ]}', "feature: names expecting type: int64"),
        (
            '{"examples": [ { "names": [ 10, { "test": 10 } ] } ]}',
            "names has element with unexpected JSON type: Object",
        ),
        ('{"examples": [ { "names": [ [10], 20 ] } ]}', "names has element with unexpected JSON type: Array"),
        ('{"examples": [ { "names": [ 20, 18446744073709551603 ] } ]}', "Only int64_t is supported"),
    ],
)
def test_json_errors(text, needle):  # ClassifyRegressRequestTest.JsonErrors
    assert needle in refused(text)


SCORES = {"scores": TensorSpec("scores", "scores:0", np.dtype(np.float32), "DT_FLOAT", (-1, 3))}
CLASSES = {"classes": TensorSpec("classes", "classes:0", np.dtype(object), "DT_STRING", (-1, 3))}
CLASSIFY = Signature("c", "tensorflow/serving/classify", {}, {**CLASSES, **SCORES})
REGRESS = Signature(
    "r",
    "tensorflow/serving/regress",
    {},
    {"outputs": TensorSpec("outputs", "o:0", np.dtype(np.float32), "DT_FLOAT", (-1,))},
)


def test_json_from_classification_result():  # ClassifyRegressnResultTest.JsonFromClassificationResult
    outputs = {
        "classes": np.array([[b"car", b"bike", b"bus"], [b"car", b"bike", b"bus"]], object),
        "scores": np.array([[0.2, 0.7, 0.1], [0.7, 0.1, 0.2]], np.float32),
    }
    assert json.loads(dumps(format_classify(outputs, 2, CLASSIFY))) == {
        "results": [[["car", 0.2], ["bike", 0.7], ["bus", 0.1]], [["car", 0.7], ["bike", 0.1], ["bus", 0.2]]]
    }


def test_json_from_regression_result():  # ClassifyRegressnResultTest.JsonFromRegressionResult
    outputs = {"outputs": np.array([0.2, 0.9, 1.0], np.float32)}
    assert json.loads(dumps(format_regress(outputs, 3, REGRESS))) == {"results": [0.2, 0.9, 1.0]}


def test_json_from_regression_result_with_non_finite():  # ClassifyRegressnResultTest.JsonFromRegressionResultWithNonFinite
    outputs = {"outputs": np.array([0.2, math.inf, 1.0, -math.inf, math.nan], np.float32)}
    assert dumps(format_regress(outputs, 5, REGRESS)) == b'{"results":[0.2,Infinity,1.0,-Infinity,NaN]}'


def test_json_from_result_errors():  # ClassifyRegressnResultTest.JsonFromResultErrors
    with pytest.raises(ServingError, match="empty ClassificationResults"):
        format_classify({"scores": np.zeros((0, 3), np.float32)}, 0, CLASSIFY)
    with pytest.raises(ServingError, match="empty RegressionResults"):
        format_regress({"outputs": np.zeros((0,), np.float32)}, 0, REGRESS)


def test_encoding_binary_values():  # api_rest.md "Encoding binary values": the guide's classification request
    got = examples("""{
      "signature_name": "classify_objects",
      "examples": [
        {"image": { "b64": "aW1hZ2UgYnl0ZXM=" }, "caption": "seaside"},
        {"image": { "b64": "YXdlc29tZSBpbWFnZSBieXRlcw==" }, "caption": "mountains"}
      ]
    }""")
    assert got == [
        {"image": ("bytes_list", [b"image bytes"]), "caption": ("bytes_list", [b"seaside"])},
        {"image": ("bytes_list", [b"awesome image bytes"]), "caption": ("bytes_list", [b"mountains"])},
    ]


# Beyond the upstream tests: the classifier's and regressor's own result checks (classifier.cc, regressor.cc) ----


def test_classification_without_classes_or_scores_fills_in_tf_serving_defaults():
    scores_only = format_classify({"scores": np.array([[0.5]], np.float32)}, 1, CLASSIFY)
    assert json.loads(dumps(scores_only)) == {"results": [[["", 0.5]]]}
    classes_only = format_classify({"classes": np.array([[b"a"]], object)}, 1, CLASSIFY)
    assert json.loads(dumps(classes_only)) == {"results": [[["a", 0.0]]]}


@pytest.mark.parametrize(
    ("outputs", "examples_sent", "needle"),
    [
        ({"scores": np.zeros(3, np.float32)}, 3, "Expected Tensor shape: [batch_size num_classes] but got [3]"),
        ({"scores": np.zeros((2, 1), np.float32)}, 3, "Expected scores output batch size of 3. Got: 2"),
        (
            {"scores": np.zeros((1, 2), np.float32), "classes": np.zeros((1, 3), object)},
            1,
            "Tensors class and score should match in dim_size(1). Got 3 vs. 2",
        ),
    ],
)
def test_classification_results_are_checked(outputs, examples_sent, needle):
    with pytest.raises(ServingError) as e:
        format_classify(outputs, examples_sent, CLASSIFY)
    assert needle in e.value.message


@pytest.mark.parametrize(
    ("values", "examples_sent", "needle"),
    [
        (np.zeros((2, 2), np.float32), 2, "either [batch_size] or [batch_size, 1] but got [2,2]"),
        (np.zeros((2, 1), np.float32), 3, "Input batch size did not match output batch size: 3 vs. 2"),
    ],
)
def test_regression_results_are_checked(values, examples_sent, needle):
    with pytest.raises(ServingError) as e:
        format_regress({"outputs": values}, examples_sent, REGRESS)
    assert needle in e.value.message


def test_an_example_feature_overrides_the_context_feature_of_its_name():
    (example,) = examples('{"context": {"x": 1.0, "c": "k"}, "examples": [{"x": 2.0}]}')
    assert example == {"x": ("float_list", [2.0]), "c": ("bytes_list", [b"k"])}


def test_missing_examples_are_named_as_tf_serving_names_them():
    assert "When method is classify, key 'examples' is expected and was not found" in refused('{"context": {}}')
    assert "'examples' value is an empty array" in refused('{"examples": []}')
