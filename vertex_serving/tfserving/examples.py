"""TF Serving's REST classify and regress: JSON examples to serialized `tf.train.Example`s, signatures, results.

Request `{"signature_name"?, "context"?, "examples": [{feature: value | [values]}]}` -> `{"results": ...}`, as
json_tensor.cc reads and writes them. Whole numbers and booleans become int64 features, decimals float features,
strings and `{"b64": ...}` bytes features. The signature and result checks are those of TF Serving's classifier
and regressor (`servables/tensorflow/classifier.cc`, `regressor.cc`), without the optional method-name check.
"""

from __future__ import annotations

import numpy as np

from vertex_serving.tfserving.errors import ServingError
from vertex_serving.tfserving.jsondoc import debug_string, type_name
from vertex_serving.tfserving.servable import DEFAULT_SIGNATURE, Servable, Signature
from vertex_serving.tfserving.tensors import decode_base64

_INT64_MAX = 2**63 - 1


def _bad(message: str) -> ServingError:
    return ServingError("INVALID_ARGUMENT", message)


def parse_examples(body: dict) -> np.ndarray:
    """The serialized examples, each prefixed by the context: in the parsed proto the example's features win."""
    context = _example(body["context"]).SerializeToString() if "context" in body else b""
    if "examples" not in body:
        raise _bad(
            f"JSON Value: {debug_string(body)} When method is classify, key 'examples' is expected and was not found"
        )
    examples = body["examples"]
    if type(examples) is not list:
        raise _bad(f"JSON Value: {debug_string(body)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise _bad(f"JSON Value: {debug_string(body)} 'examples' value is an empty array")
    serialized = np.empty(len(examples), dtype=object)
    serialized[:] = [context + _example(e).SerializeToString() for e in examples]
    return serialized


def _example(value: object):
    from tensorflow.core.example import example_pb2

    if type(value) is not dict:
        raise _bad(f"Example must be JSON object but got JSON {type_name(value)}")
    example = example_pb2.Example()
    for name, content in value.items():
        kind, items = "", []
        for item in content if type(content) is list else [content]:
            kind = _add_value(item, name, kind, items)
        feature = example.features.feature[name]  # an empty list still makes an (empty) feature
        if kind:
            getattr(feature, f"{kind}_list").value.extend(items)
    return example


def _add_value(item: object, name: str, kind: str, items: list) -> str:
    """AddValueToFeature: the first value fixes the feature's kind; returns it."""
    if item is None or type(item) is list or (type(item) is dict and not _is_b64(item)):
        raise _bad(f"Feature: {name} has element with unexpected JSON type: {type_name(item)}")
    if type(item) is bool or type(item) is int:
        wanted = "int64"
    elif type(item) is float:
        wanted = "float"
    else:
        wanted = "bytes"
    if kind and kind != wanted:
        raise _bad(f"Unexpected element type in feature: {name} expecting type: {kind}")
    if type(item) is int and item > _INT64_MAX:
        raise _bad(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
    if type(item) is dict:
        item = decode_base64(item["b64"])
    elif type(item) is str:
        item = item.encode("utf-8", "surrogateescape")
    items.append(int(item) if type(item) is bool else item)
    return wanted


def _is_b64(value: dict) -> bool:
    return len(value) == 1 and type(value.get("b64")) is str


# Signatures ----------------------------------------------------------------------------------------------------


def _signature(servable: Servable, name: str) -> tuple[Signature, object]:
    key = name or DEFAULT_SIGNATURE
    if key not in servable.signatures:
        raise _bad(f"No signature was found with the name: {key}")
    signature = servable.signatures[key]
    if len(signature.inputs) != 1:
        raise _bad("Expected one input Tensor.")
    return signature, servable.meta_graph.signature_def[key]


def classify_signature(servable: Servable, name: str) -> Signature:
    signature, proto = _signature(servable, name)
    if len(signature.outputs) not in (1, 2):
        raise _bad(f"Expected one or two output Tensors, found {len(signature.outputs)}")
    if "inputs" not in signature.inputs:
        raise _bad(f"No classification inputs found in SignatureDef: {proto}")
    if "classes" not in signature.outputs and "scores" not in signature.outputs:
        raise _bad(
            'Expected classification signature outputs to contain at least one of "classes" or "scores". '
            f"Signature was: {proto}"
        )
    return signature


def regress_signature(servable: Servable, name: str) -> Signature:
    signature, proto = _signature(servable, name)
    if len(signature.outputs) != 1:
        raise _bad("Expected one output Tensor.")
    if "inputs" not in signature.inputs:
        raise _bad(f"No regression inputs found in SignatureDef: {proto}")
    if "outputs" not in signature.outputs:
        raise _bad(f"No regression outputs found in SignatureDef: {proto}")
    return signature


# Results -------------------------------------------------------------------------------------------------------


def format_classify(outputs: dict[str, np.ndarray], examples: int, signature: Signature) -> dict:
    """`{"results": [[[label, score], ...], ...]}`: "" without a classes output, 0.0 without a scores output."""
    classes, scores = outputs.get("classes"), outputs.get("scores")
    for key, tensor, dtype in (("classes", classes, "DT_STRING"), ("scores", scores, "DT_FLOAT")):
        if tensor is None:
            continue
        if tensor.ndim != 2:
            raise _bad(f"Expected Tensor shape: [batch_size num_classes] but got {_shape(tensor)}")
        if signature.outputs[key].dtype_name != dtype:
            raise _bad(f"Expected {key} Tensor of {dtype}. Got: {signature.outputs[key].dtype_name}")
        if tensor.shape[0] != examples:
            raise _bad(f"Expected {key} output batch size of {examples}. Got: {tensor.shape[0]}")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise _bad(f"Tensors class and score should match in dim_size(1). Got {classes.shape[1]} vs. {scores.shape[1]}")
    if not examples:
        raise _bad("Cannot convert empty ClassificationResults to JSON")
    width = (classes if classes is not None else scores).shape[1]

    def label(i: int, j: int) -> str:
        return classes[i, j].decode("utf-8", "replace") if classes is not None else ""

    def score(i: int, j: int) -> object:
        return scores[i, j] if scores is not None else 0.0

    return {"results": [[[label(i, j), score(i, j)] for j in range(width)] for i in range(examples)]}


def format_regress(outputs: dict[str, np.ndarray], examples: int, signature: Signature) -> dict:
    """`{"results": [value, ...]}`, one value per example."""
    values = outputs["outputs"]
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise _bad(
            f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got {_shape(values)}"
        )
    if values.shape[0] != examples:
        raise _bad(f"Input batch size did not match output batch size: {examples} vs. {values.shape[0]}")
    if signature.outputs["outputs"].dtype_name != "DT_FLOAT":
        raise _bad(f"Expected output Tensor of DT_FLOAT.  Got: {signature.outputs['outputs'].dtype_name}")
    if not examples:
        raise _bad("Cannot convert empty RegressionResults to JSON")
    return {"results": values.reshape(-1)}


def _shape(tensor: np.ndarray) -> str:
    return "[" + ",".join(map(str, tensor.shape)) + "]"
