"""TF Serving's REST predict format: JSON to input tensors and output tensors to JSON, as its json_tensor.cc does.

Row format `{"instances": [...]}` -> `{"predictions": [...]}`; columnar `{"inputs": ...}` -> `{"outputs": ...}`;
binary values as `{"b64": "..."}`; outputs named `*_bytes` are written that way (TF Serving's RESTful API guide).
A tensor is fed with the shape it was sent in: the graph, not the signature's declared shape, decides.
Numbers take numpy's vectorized conversion; anything else (strings, `true`/`false`, ragged lists, a wrong type)
takes the value-by-value conversion that reproduces TF Serving's checks and error messages.
"""

from __future__ import annotations

import base64
import binascii
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import orjson

from vertex_serving.tfserving.errors import ServingError
from vertex_serving.tfserving.jsondoc import count_quotes, debug_string, may_hold_literals, type_name
from vertex_serving.tfserving.servable import Signature, TensorSpec

MAX_DIMS = 254  # TensorShape::MaxDimensions()
# A number past float32's range fills a float tensor with inf, as TF Serving's cast does. numpy warns on it; a
# filter costs nothing per request, where np.errstate costs about a microsecond.
warnings.filterwarnings("ignore", "overflow encountered in cast", RuntimeWarning, re.escape(__name__))


@dataclass
class PredictRequest:
    signature_name: str
    feeds: dict[str, np.ndarray]
    columnar: bool
    batch_size: int | None  # None when inputs disagree on (or lack) a batch dimension


@dataclass(frozen=True)
class _Kind:
    """How JSON values fill a tensor of one TF type: rapidjson's test for a value, and the numpy type."""

    name: str  # TF's DataTypeString: float, int32, ...
    dtype: np.dtype
    accepts: Callable[[object], bool] | None  # None: TF Serving cannot fill this type from JSON
    low: int = 0
    high: int = 0


def _number(v: object) -> bool:
    return type(v) is int or type(v) is float


def _ints(low: int, high: int) -> Callable[[object], bool]:
    return lambda v: type(v) is int and low <= v <= high


_INT32 = (-(2**31), 2**31 - 1)
_KINDS = {
    "DT_FLOAT": _Kind("float", np.dtype(np.float32), _number),
    "DT_DOUBLE": _Kind("double", np.dtype(np.float64), _number),
    "DT_INT32": _Kind("int32", np.dtype(np.int32), _ints(*_INT32), *_INT32),
    "DT_INT16": _Kind("int16", np.dtype(np.int16), _ints(*_INT32), *_INT32),  # stored in int_val, then cast
    "DT_INT8": _Kind("int8", np.dtype(np.int8), _ints(*_INT32), *_INT32),
    "DT_UINT8": _Kind("uint8", np.dtype(np.uint8), _ints(*_INT32), *_INT32),
    "DT_STRING": _Kind("string", np.dtype(object), lambda v: type(v) is str),
    "DT_INT64": _Kind("int64", np.dtype(np.int64), _ints(-(2**63), 2**63 - 1), -(2**63), 2**63 - 1),
    "DT_BOOL": _Kind("bool", np.dtype(bool), lambda v: type(v) is bool),
    "DT_UINT32": _Kind("uint32", np.dtype(np.uint32), _ints(0, 2**32 - 1), 0, 2**32 - 1),
    "DT_UINT64": _Kind("uint64", np.dtype(np.uint64), _ints(0, 2**64 - 1), 0, 2**64 - 1),
}


def _kind(spec: TensorSpec) -> _Kind:
    return _KINDS.get(spec.dtype_name) or _Kind(spec.dtype_name[3:].lower(), spec.dtype, None)


def _bad(message: str) -> ServingError:
    return ServingError("INVALID_ARGUMENT", message)


def signature_name(body: object) -> str:
    """The requested signature ("" for the default), after TF Serving's checks on the body's top level."""
    if not isinstance(body, dict):
        raise _bad(f"JSON Value: {debug_string(body)} Is not object")
    name = body.get("signature_name", "")
    if not isinstance(name, str):
        raise _bad(
            f"JSON Value: {debug_string(body)} not formatted correctly. 'signature_name' key must be a string value."
        )
    return name


def parse_predict(body: dict, signature: Signature, raw: bytes | None = None) -> PredictRequest:
    """The input tensors of a predict body; `raw`, the bytes it was parsed from, speeds up numeric inputs."""
    if not signature.inputs:
        raise _bad(f"Failed to get input map for signature: {body.get('signature_name') or 'DEFAULT'}")
    has_rows, has_columns = "instances" in body, "inputs" in body
    numbers = _numbers(body, raw)
    if has_rows:
        if has_columns:
            raise _bad(
                f"JSON Value: {debug_string(body)} Not formatted correctly expecting only one of 'inputs' or "
                "'instances' keys to exist "
            )
        instances = body["instances"]
        if type(instances) is not list:
            raise _bad(f"JSON Value: {debug_string(body)} Expecting 'instances' to be an list/array")
        if not instances:
            raise _bad(f"JSON Value: {debug_string(body)} No values in 'instances' array")
        feeds = _rows_fast(instances, signature, numbers) or _rows(instances, signature)
    elif has_columns:
        feeds = _columns(body["inputs"], signature, numbers)
    else:
        raise _bad("Missing 'inputs' or 'instances' key")
    sizes = {a.shape[0] if a.ndim else None for a in feeds.values()}
    batch = sizes.pop() if len(sizes) == 1 else None
    return PredictRequest(signature.name, feeds, has_columns, batch)


_PREDICT_KEYS = frozenset(("instances", "inputs", "signature_name"))
_EXACT, _INFER, _DIRECT = range(3)  # how numeric inputs may be converted; see _numbers


def _numbers(body: dict, raw: bytes | None) -> int:
    """_DIRECT when every value in the body is a number (numpy converts straight to the tensor's type); _INFER
    when `true`, `false` and `null` are absent (numpy's type inference catches strings); else _EXACT."""
    if raw is None:
        try:
            raw = orjson.dumps(body)
        except TypeError:
            return _EXACT
    if may_hold_literals(raw):
        return _EXACT
    expected = _key_quotes(body)
    return _DIRECT if expected is not None and count_quotes(raw, expected + 1) == expected else _INFER


def _key_quotes(body: dict) -> int | None:
    """The `"` that the keys and the signature name account for; None when the body has more than those."""
    if not body.keys() <= _PREDICT_KEYS:
        return None
    quotes = 2 * len(body) + 2 * ("signature_name" in body)
    instances, inputs = body.get("instances"), body.get("inputs")
    if type(instances) is list and instances and type(instances[0]) is dict:
        if not all(type(i) is dict for i in instances):
            return None
        quotes += 2 * sum(map(len, instances))
    if type(inputs) is dict:
        quotes += 2 * len(inputs)
    return quotes


def check_input_names(given: set[str], signature: Signature) -> None:
    expected = set(signature.inputs)
    if given != expected:
        extra, missing = sorted(given - expected), sorted(expected - given)
        raise _bad(
            f"Inputs do not match signature '{signature.name}': unknown {extra}, missing {missing}; "
            f"it takes {sorted(expected)}"
        )


# Row format ---------------------------------------------------------------------------------------------------


def _is_b64(value: object) -> bool:
    return type(value) is dict and len(value) == 1 and type(value.get("b64")) is str


def _is_object(value: object) -> bool:
    return type(value) is dict and not _is_b64(value)


def _rows_fast(instances: list, signature: Signature, numbers: int) -> dict[str, np.ndarray] | None:
    """Regular numeric instances in one numpy conversion per input; None when the exact path must decide."""
    names = signature.inputs.keys()
    if len(names) == 1 and not _is_object(instances[0]):
        (name,) = names
        columns = {name: instances}
    elif all(type(i) is dict and i.keys() == names and not _is_b64(i) for i in instances):
        columns = {name: [i[name] for i in instances] for name in names}
    else:
        return None
    feeds = {}
    for name, values in columns.items():
        array = _fast(values, _kind(signature.inputs[name]), numbers)
        if array is None:
            return None
        feeds[name] = array
    return feeds


def _rows(instances: list, signature: Signature) -> dict[str, np.ndarray]:
    """FillTensorMapFromInstancesList: each instance a tensor of one shape, stacked on a new batch dimension."""
    names = signature.inputs
    if not isinstance(instances[0], dict) and len(names) > 1:
        raise _bad(
            "instances is a plain list, but expecting list of objects as multiple input tensors required as per "
            "tensorinfo_map"
        )
    objects = _is_object(instances[0])
    parts: dict[str, list] = {}
    shapes: dict[str, list[int]] = {}
    for position, instance in enumerate(instances):
        if objects:
            if not _is_object(instance):
                raise _bad(f"Expecting object but got list at item {position} of input list")
            for name, value in instance.items():
                try:
                    _add_instance(value, name, signature, parts, shapes)
                except ServingError as e:
                    raise _bad(
                        f"Failed to process element: {position} key: {name} of 'instances' list. "
                        f"Error: {e.code}: {e.message}"
                    ) from None
            if set(instance) != set(names):
                raise _bad(
                    f"Failed to process element: {position} of 'instances' list. JSON object: "
                    f"{debug_string(instance)} keys must be equal to: {','.join(sorted(names))}"
                )
        else:
            if _is_object(instance):
                raise _bad(f"Expecting value/list but got object at item {position} of input list")
            try:
                _add_instance(instance, next(iter(names)), signature, parts, shapes)
            except ServingError as e:
                raise _bad(
                    f"Failed to process element: {position} of 'instances' list. Error: {e.code}: {e.message}"
                ) from None
    kinds = {name: _kind(signature.inputs[name]) for name in parts}
    return {name: _array(flat, [len(instances), *shapes[name]], kinds[name]) for name, flat in parts.items()}


def _add_instance(value: object, name: str, signature: Signature, parts: dict, shapes: dict) -> None:
    if name not in signature.inputs:
        raise _bad(f"JSON object: does not have named input: {name}")
    shape = _dense_shape(value)
    flat = _fill(value, shape, _kind(signature.inputs[name]))
    if name not in parts:
        parts[name], shapes[name] = flat, shape
        return
    expected = shapes[name]
    if _size(expected) != len(flat):
        raise _bad(f"Expecting tensor size: {_size(expected)} but got: {len(flat)}")
    if expected != shape:
        raise _bad(f"Expecting shape {_shape_text(expected)} but got: {_shape_text(shape)}")
    parts[name].extend(flat)


# Columnar format ----------------------------------------------------------------------------------------------


def _columns(inputs: object, signature: Signature, numbers: int) -> dict[str, np.ndarray]:
    """FillTensorMapFromInputsMap: one tensor per input; keys the signature does not name are not read."""
    names = sorted(signature.inputs)
    if type(inputs) is not dict or _is_b64(inputs):
        if len(names) > 1:
            raise _bad(
                "inputs is a plain value/list, but expecting an object as multiple input tensors required as per "
                "tensorinfo_map"
            )
        return {names[0]: _tensor(inputs, _kind(signature.inputs[names[0]]), numbers)}
    feeds = {}
    for name in names:
        if name not in inputs:
            raise _bad(f"Missing named input: {name} in 'inputs' object.")
        feeds[name] = _tensor(inputs[name], _kind(signature.inputs[name]), numbers)
    return feeds


# One tensor from nested lists ---------------------------------------------------------------------------------


def _tensor(value: object, kind: _Kind, numbers: int) -> np.ndarray:
    array = _fast(value, kind, numbers)
    if array is not None:
        return array
    shape = _dense_shape(value)
    return _array(_fill(value, shape, kind), shape, kind)


def _fast(values: object, kind: _Kind, numbers: int) -> np.ndarray | None:
    """numpy's conversion where it provably agrees with TF Serving's: numbers of the right sort, regular nesting."""
    if kind.accepts is None or kind.name == "string" or (numbers == _EXACT and kind.name != "bool"):
        return None
    try:
        if numbers == _DIRECT and kind.dtype.kind == "f":
            return np.asarray(values, dtype=kind.dtype)
        array = np.asarray(values)
    except (ValueError, TypeError, OverflowError):
        return None
    got = array.dtype.kind
    if kind.name == "bool" or got not in "iuf":
        return array if kind.name == "bool" and got == "b" else None
    if kind.dtype.kind == "f":
        return array.astype(kind.dtype, copy=False)
    if got == "f" or (array.size and (array.min() < kind.low or array.max() > kind.high)):
        return None
    return array.astype(kind.dtype, copy=False)


def _dense_shape(value: object) -> list[int]:
    """GetDenseTensorShape: the shape the first element at each level implies."""
    shape = []
    while type(value) is list:
        shape.append(len(value))
        if len(shape) > MAX_DIMS:
            raise _bad(f"Too many dimensions in tensor: TF Serving takes at most {MAX_DIMS}")
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: object, shape: list[int], kind: _Kind) -> list:
    """FillTensorProto: every list the size its level implies, every value at the last level and of the type."""
    rank, flat, stack = len(shape), [], [(value, 0)]
    while stack:
        item, level = stack.pop()
        if type(item) is list:
            if level >= rank:
                raise _bad(f"Encountered list at unexpected level: {level} expected < {rank}")
            if len(item) != shape[level]:
                raise _bad(
                    f"Encountered list at unexpected size: {len(item)} at level: {level} expected size: {shape[level]}"
                )
            stack.extend((x, level + 1) for x in reversed(item))
        elif level != rank:
            raise _bad(
                f"JSON Value: {debug_string(item)} found at incorrect level: {level + 1} in the JSON DOM. "
                f"Expected at level: {rank}"
            )
        else:
            flat.append(_value(item, kind))
    return flat


def _value(item: object, kind: _Kind) -> object:
    if type(item) is dict:
        if kind.name != "string":
            raise _type_error(item, kind)
        return _b64(item)
    if kind.accepts is None:
        raise ServingError("UNIMPLEMENTED", f"Conversion of JSON Value: {debug_string(item)} to type: {kind.name}")
    if not kind.accepts(item):
        raise _type_error(item, kind)
    return item.encode("utf-8", "surrogateescape") if kind.name == "string" else item


def _type_error(item: object, kind: _Kind) -> ServingError:
    return _bad(f"JSON Value: {debug_string(item)} Type: {type_name(item)} is not of expected type: {kind.name}")


def _b64(item: dict) -> bytes:
    if not _is_b64(item):
        raise _bad(f"JSON Value: {debug_string(item)} not formatted correctly for base64 data")
    return decode_base64(item["b64"])


def decode_base64(text: str) -> bytes:
    """absl::Base64Unescape's leniency: whitespace is skipped and padding may be left out."""
    data = re.sub(r"[ \t\n\r\f\v]", "", text)
    try:
        return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _bad("Unable to base64 decode") from None


def _array(flat: list, shape: list[int], kind: _Kind) -> np.ndarray:
    if kind.dtype == object:
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
    elif kind.dtype.kind == "f":
        array = np.array(flat, dtype=np.float64).astype(kind.dtype)
    elif kind.dtype.kind == "i" or kind.name in ("uint8", "uint32"):
        array = np.array(flat, dtype=np.int64).astype(kind.dtype)  # int_val, then cast as TensorProto does
    else:
        array = np.array(flat, dtype=kind.dtype)
    return array.reshape(shape)


def _size(shape: list[int]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def _shape_text(shape: list[int]) -> str:
    return "[" + ",".join(map(str, shape)) + "]"


# Responses ----------------------------------------------------------------------------------------------------


def format_predict(outputs: dict[str, np.ndarray], columnar: bool) -> dict:
    """MakeJsonFromTensors: one output as bare values, several as objects; the row format needs a batch dimension."""
    if not outputs:
        raise _bad("Cannot convert empty tensor map to JSON")
    batch = -1
    if not columnar:
        for name, value in outputs.items():
            if value.ndim == 0:
                raise _bad(f"Tensor name: {name} has no shape information ")
            if batch >= 0 and value.shape[0] != batch:
                raise _bad(f"Tensor name: {name} has inconsistent batch size: {value.shape[0]} expecting: {batch}")
            batch = value.shape[0]
    values = {name: _jsonable(name, value) for name, value in outputs.items()}
    if columnar:
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    return {"predictions": [{name: value[i] for name, value in values.items()} for i in range(batch)]}


def _jsonable(name: str, value: np.ndarray) -> object:
    """What orjson (through jsondoc.dumps) writes as TF Serving writes the tensor."""
    if value.dtype == object:
        encode = (lambda b: {"b64": base64.b64encode(b).decode()}) if name.endswith("_bytes") else _text
        return encode(value[()]) if value.ndim == 0 else _map_nested(value.tolist(), encode)
    if not _writable(value.dtype):
        if value.size:
            raise _bad(f"Failed to write JSON value for tensor type: {_type_name(value.dtype)}")
        return value.tolist()
    return value[()] if value.ndim == 0 else np.ascontiguousarray(value)


def _writable(dtype: np.dtype) -> bool:
    """The types AddSingleValueAndAdvance writes: not half, bfloat16, uint16, complex or quantized ones."""
    if dtype.kind == "f":
        return dtype.itemsize in (4, 8)
    if dtype.kind == "u":
        return dtype.itemsize != 2
    return dtype.kind in "ib"


def _type_name(dtype: np.dtype) -> str:
    return {"float16": "half"}.get(dtype.name, dtype.name)


def _text(raw: bytes) -> object:
    try:
        return raw.decode()
    except UnicodeDecodeError:  # TF Serving writes the raw bytes, which is not valid JSON; b64 keeps it valid
        return {"b64": base64.b64encode(raw).decode()}


def _map_nested(values: object, fn) -> object:
    return [_map_nested(v, fn) for v in values] if isinstance(values, list) else fn(values)
