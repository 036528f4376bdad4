"""TF Serving's REST classify and regress formats: JSON examples to serialized `tf.train.Example`s, and results.

Request `{"signature_name"?, "context"?, "examples": [{feature: value | [values]}]}`; whole numbers become
int64 features, decimals float features, strings and `{"b64": ...}` bytes features. Responses are
`{"result": [[[label, score], ...], ...]}` for classify and `{"result": [value, ...]}` for regress.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np

from vertex_serving.tfserving.errors import ServingError


def parse_examples(body: dict) -> np.ndarray:
    from tensorflow.core.example import example_pb2

    examples, context = body.get("examples"), body.get("context", {})
    if not isinstance(examples, list) or not examples:
        raise ServingError("INVALID_ARGUMENT", "'examples' must be a non-empty JSON list of objects")
    if not isinstance(context, dict):
        raise ServingError("INVALID_ARGUMENT", "'context' must be a JSON object")
    serialized = []
    for position, features in enumerate(examples):
        if not isinstance(features, dict):
            raise ServingError("INVALID_ARGUMENT", f"Example {position} is not a JSON object")
        clash = sorted(set(features) & set(context))
        if clash:
            raise ServingError("INVALID_ARGUMENT", f"Example {position} repeats context features {clash}")
        example = example_pb2.Example()
        for name, value in {**context, **features}.items():
            _set_feature(example.features.feature[name], name, value)
        serialized.append(example.SerializeToString())
    return np.array(serialized, dtype=object)


def _set_feature(feature, name: str, value: object) -> None:
    values = value if isinstance(value, list) else [value]
    if all(isinstance(v, bool) for v in values) or not values:
        raise ServingError("INVALID_ARGUMENT", f"Feature '{name}' must hold numbers or strings")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        feature.int64_list.value.extend(values)
    elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        feature.float_list.value.extend(values)
    elif all(isinstance(v, str | dict) for v in values):
        feature.bytes_list.value.extend(_bytes(name, v) for v in values)
    else:
        raise ServingError("INVALID_ARGUMENT", f"Feature '{name}' mixes numbers and strings")


def _bytes(name: str, value: str | dict) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if set(value) != {"b64"}:
        raise ServingError("INVALID_ARGUMENT", f"Feature '{name}' has an object that is not {{'b64': ...}}")
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, TypeError):
        raise ServingError("INVALID_ARGUMENT", f"Feature '{name}' has invalid base64") from None


def format_classify(outputs: dict[str, np.ndarray]) -> dict:
    scores, classes = outputs.get("scores"), outputs.get("classes")
    if scores is None and classes is None:
        raise ServingError("INVALID_ARGUMENT", "Classification signature outputs neither 'classes' nor 'scores'")
    rows = len(scores if scores is not None else classes)
    scores = scores.reshape(rows, -1) if scores is not None else None
    classes = classes.reshape(rows, -1) if classes is not None else None
    width = (scores if scores is not None else classes).shape[1]

    def pair(i: int, j: int) -> list:
        label = classes[i][j].decode() if classes is not None else ""
        return [label, float(scores[i][j]) if scores is not None else 0.0]

    return {"result": [[pair(i, j) for j in range(width)] for i in range(rows)]}


def format_regress(outputs: dict[str, np.ndarray]) -> dict:
    if "outputs" not in outputs:
        raise ServingError("INVALID_ARGUMENT", "Regression signature has no 'outputs' output")
    values = outputs["outputs"]
    if values.ndim > 2 or (values.ndim == 2 and values.shape[1] != 1):
        raise ServingError(
            "INVALID_ARGUMENT", f"Regression output must have one value per example, not {list(values.shape)}"
        )
    return {"result": [float(v) for v in values.reshape(-1)]}
