"""TF Serving's REST request and response formats, to and from numpy arrays keyed by signature input name.

Row format: `{"instances": [...]}` -> `{"predictions": [...]}`; columnar: `{"inputs": ...}` -> `{"outputs": ...}`;
binary values as `{"b64": "..."}`; outputs whose name ends in `_bytes` are returned that way (TF Serving's
RESTful API guide).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import numpy as np

from vertex_serving.tfserving.errors import ServingError
from vertex_serving.tfserving.servable import Signature, TensorSpec

REQUEST_KEYS = {"signature_name", "instances", "inputs", "parameters"}


@dataclass
class PredictRequest:
    signature_name: str
    feeds: dict[str, np.ndarray]
    columnar: bool
    batch_size: int | None  # None when inputs disagree on (or lack) a batch dimension


def signature_name(body: object) -> str:
    if not isinstance(body, dict):
        raise ServingError("INVALID_ARGUMENT", "JSON Value is not an object: the body must be a JSON object")
    name = body.get("signature_name", "")
    if not isinstance(name, str):
        raise ServingError("INVALID_ARGUMENT", "'signature_name' key must be a string")
    return name


def parse_predict(body: dict, signature: Signature) -> PredictRequest:
    has_rows, has_columns = "instances" in body, "inputs" in body
    if has_rows and has_columns:
        raise ServingError("INVALID_ARGUMENT", "Not both 'instances' and 'inputs': use one of the two formats")
    if not (has_rows or has_columns):
        raise ServingError("INVALID_ARGUMENT", "Missing 'instances' or 'inputs' key")
    feeds = _rows(body["instances"], signature) if has_rows else _columns(body["inputs"], signature)
    sizes = {a.shape[0] if a.ndim else None for a in feeds.values()}
    batch = sizes.pop() if len(sizes) == 1 else None
    return PredictRequest(signature.name, feeds, has_columns, batch)


def format_predict(outputs: dict[str, np.ndarray], columnar: bool, rows: int | None) -> dict:
    values = {k: _jsonable(k, v) for k, v in outputs.items()}
    if columnar:
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    for key, value in outputs.items():
        if value.ndim == 0 or value.shape[0] != rows:
            raise ServingError(
                "INVALID_ARGUMENT",
                f"Output '{key}' has batch size {value.shape[0] if value.ndim else 'none'} but the request had "
                f"{rows} instances: use the columnar 'inputs' format for this signature",
            )
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    return {"predictions": [{k: v[i] for k, v in values.items()} for i in range(rows)]}


def _rows(instances: object, signature: Signature) -> dict[str, np.ndarray]:
    if not isinstance(instances, list) or not instances:
        raise ServingError("INVALID_ARGUMENT", "'instances' must be a non-empty JSON list")
    keys = list(signature.inputs)
    named = all(isinstance(i, dict) and not _is_b64(i) for i in instances)
    if len(keys) == 1 and not named:
        return {keys[0]: to_array(instances, signature.inputs[keys[0]])}
    if not named:
        raise ServingError(
            "INVALID_ARGUMENT",
            f"Signature '{signature.name}' has inputs {keys}: each instance must be an object keyed by input name",
        )
    given = set().union(*(i.keys() for i in instances))
    check_input_names(given, signature)
    for position, instance in enumerate(instances):
        if set(instance) != given:
            raise ServingError(
                "INVALID_ARGUMENT", f"Instance {position} has inputs {sorted(instance)}, others have {sorted(given)}"
            )
    return {k: to_array([i[k] for i in instances], signature.inputs[k]) for k in keys}


def _columns(inputs: object, signature: Signature) -> dict[str, np.ndarray]:
    keys = list(signature.inputs)
    if not isinstance(inputs, dict) or _is_b64(inputs):
        if len(keys) != 1:
            raise ServingError(
                "INVALID_ARGUMENT", f"Signature '{signature.name}' has inputs {keys}: 'inputs' must be an object"
            )
        inputs = {keys[0]: inputs}
    check_input_names(set(inputs), signature)
    return {k: to_array(inputs[k], signature.inputs[k]) for k in keys}


def check_input_names(given: set[str], signature: Signature) -> None:
    expected = set(signature.inputs)
    if given != expected:
        extra, missing = sorted(given - expected), sorted(expected - given)
        raise ServingError(
            "INVALID_ARGUMENT",
            f"Inputs do not match signature '{signature.name}': unknown {extra}, missing {missing}; "
            f"it takes {sorted(expected)}",
        )


def to_array(values: object, spec: TensorSpec) -> np.ndarray:
    """One input tensor, with TF Serving's dtype rules and a check of the dimensions the signature fixes."""
    try:
        if spec.dtype == object:
            array = np.array(_binary(values), dtype=object)
        else:
            if spec.dtype.kind in "iub":
                source = np.asarray(values)
                if source.dtype.kind not in ("b" if spec.dtype.kind == "b" else "iub"):
                    raise TypeError(f"values of type {source.dtype.name}")
            array = np.asarray(values, dtype=spec.dtype)
    except (ValueError, TypeError, OverflowError) as e:
        shape_problem = "inhomogeneous" in str(e) or "sequence" in str(e)
        detail = "instances have different shapes" if shape_problem else f"not {spec.dtype_name} ({e})"
        raise ServingError("INVALID_ARGUMENT", f"Input '{spec.key}': {detail}") from None
    if array.dtype == object and spec.dtype != object:
        raise ServingError("INVALID_ARGUMENT", f"Input '{spec.key}': instances have different shapes")
    # The batch dimension is free (TF Serving feeds it as sent); fixed inner dimensions must match.
    expected = spec.shape
    same_rank = expected is not None and array.ndim == len(expected)
    if same_rank and any(want not in (-1, got) for want, got in zip(expected[1:], array.shape[1:], strict=True)):
        raise ServingError(
            "INVALID_ARGUMENT",
            f"Input '{spec.key}' has shape {list(array.shape)} but signature expects {list(expected)} (-1: any size)",
        )
    return array


def _binary(values: object) -> object:
    if isinstance(values, list):
        return [_binary(v) for v in values]
    if isinstance(values, dict) and _is_b64(values):
        try:
            return base64.b64decode(values["b64"], validate=True)
        except (binascii.Error, TypeError):
            raise ServingError("INVALID_ARGUMENT", "'b64' value is not valid base64") from None
    if isinstance(values, str):
        return values.encode()
    raise TypeError(f"{type(values).__name__} where a string or {{'b64': ...}} was expected")


def _is_b64(value: dict) -> bool:
    return len(value) == 1 and "b64" in value


def _jsonable(key: str, value: np.ndarray) -> object:
    if value.dtype == object:
        encode = (lambda b: {"b64": base64.b64encode(b).decode()}) if key.endswith("_bytes") else _text
        return _map_nested(value.tolist(), encode)
    if value.dtype.kind == "f" and value.dtype.itemsize < 4:
        value = value.astype(np.float32)
    return np.ascontiguousarray(value)


def _text(raw: bytes) -> object:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(raw).decode()}


def _map_nested(values: object, fn) -> object:
    return [_map_nested(v, fn) for v in values] if isinstance(values, list) else fn(values)
