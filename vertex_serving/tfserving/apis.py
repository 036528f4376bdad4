"""TF Serving's gRPC messages (`tensorflow_serving.apis`) to and from numpy arrays, with its checks and wording.

Requests are checked as TF Serving's predict_util, classifier, regressor, multi_inference and
get_model_metadata_impl check them, before anything runs; outputs are written the way its default
`Tensor::AsProtoField` writes them (typed `*_val` fields, not `tensor_content`), which is what clients read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vertex_serving.tfserving.errors import ServingError
from vertex_serving.tfserving.servable import DEFAULT_SIGNATURE, Servable, Signature

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
MAX_ERROR_CHARS = 1024  # grpc_status_util.cc: longer messages are cut and marked


def require_model_spec(request) -> None:
    if not request.HasField("model_spec"):
        raise ServingError("INVALID_ARGUMENT", "Missing ModelSpec")


def grpc_message(message: str) -> str:
    return message if len(message) <= MAX_ERROR_CHARS else message[:MAX_ERROR_CHARS] + "...TRUNCATED"


def model_spec(name: str, signature_name: str | None, version: int):
    """The ModelSpec a response echoes: the name asked for, the signature actually run, the version that ran it."""
    from tensorflow_serving.apis import model_pb2

    spec = model_pb2.ModelSpec(name=name)
    if signature_name is not None:
        spec.signature_name = signature_name or DEFAULT_SIGNATURE
    spec.version.value = version
    return spec


# Tensors ---------------------------------------------------------------------------------------------------------


def to_array(proto, alias: str) -> np.ndarray:
    import tensorflow as tf

    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError):
        raise ServingError("INVALID_ARGUMENT", f"tensor parsing error: {alias}") from None


def to_tensor_proto(array: np.ndarray):
    """A TensorProto holding its values in the typed field for the dtype, as Tensor::AsProtoField does."""
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2 as t

    proto = tf.make_tensor_proto(array)
    if not proto.tensor_content:
        return proto
    values = np.ascontiguousarray(array).ravel()
    if proto.dtype in (t.DT_HALF, t.DT_BFLOAT16):
        values = values.view(np.uint16)
    elif proto.dtype in (t.DT_COMPLEX64, t.DT_COMPLEX128):
        values = values.view(np.float32 if proto.dtype == t.DT_COMPLEX64 else np.float64)
    field = {
        t.DT_FLOAT: "float_val",
        t.DT_DOUBLE: "double_val",
        t.DT_INT64: "int64_val",
        t.DT_UINT32: "uint32_val",
        t.DT_UINT64: "uint64_val",
        t.DT_BOOL: "bool_val",
        t.DT_HALF: "half_val",
        t.DT_BFLOAT16: "half_val",
        t.DT_COMPLEX64: "scomplex_val",
        t.DT_COMPLEX128: "dcomplex_val",
    }.get(proto.dtype, "int_val")  # int32, int16, int8, uint16, uint8
    proto.tensor_content = b""
    getattr(proto, field).extend(values.tolist())
    return proto


def _shape(array: np.ndarray) -> str:
    return "[" + ",".join(str(d) for d in array.shape) + "]"


def _dtype_name(array: np.ndarray) -> str:
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2

    if array.dtype == object:
        return "DT_STRING"
    return types_pb2.DataType.Name(tf.dtypes.as_dtype(array.dtype).as_datatype_enum)


# Predict ---------------------------------------------------------------------------------------------------------


@dataclass
class Prediction:
    signature: Signature
    feeds: dict[str, np.ndarray]
    outputs: list[str]  # the aliases to answer with, in the order asked
    batch_size: int | None


def predict_signature(servable: Servable, name: str) -> Signature:
    """Unlike REST, gRPC Predict answers a missing signature with FAILED_PRECONDITION (predict_util.cc)."""
    name = name or DEFAULT_SIGNATURE
    if name not in servable.signatures:
        raise ServingError("FAILED_PRECONDITION", f'Serving signature key "{name}" not found.')
    return servable.signatures[name]


def parse_predict(request, servable: Servable) -> Prediction:
    signature = predict_signature(servable, request.model_spec.signature_name)
    given, expected, defaults = set(request.inputs), set(signature.inputs), set(signature.defaults)
    if len(given) > len(expected) or (len(given) < len(expected) and not defaults):
        raise ServingError(
            "INVALID_ARGUMENT",
            f"input size does not match signature: {len(given)}!={len(expected)} len({{{_join(given)}}}) != "
            f"len({{{_join(expected)}}}). Sent extra: {{{_join(given - expected)}}}. "
            f"Missing but required: {{{_join(expected - given)}}}.",
        )
    feeds = {}
    for alias in sorted(signature.inputs):
        if alias in request.inputs:
            feeds[alias] = to_array(request.inputs[alias], alias)
        elif alias in signature.defaults:
            feeds[alias] = signature.defaults[alias]
        else:
            raise ServingError(
                "INVALID_ARGUMENT",
                f"Signature input alias: {alias}(feed name: {signature.inputs[alias].tensor}) not found in request "
                f"and no default value provided. Inputs expected to be in the request {{{_join(given)}}}, or "
                f"default input alias set: {_join(defaults)}",
            )
    used = given & expected
    if given and used != given:
        raise ServingError(
            "INVALID_ARGUMENT",
            f"Inputs contains invalid name. Used request inputs: {_join(used)}, request input: {_join(given)}",
        )
    outputs: list[str] = []
    for alias in request.output_filter:
        if alias not in signature.outputs:
            raise ServingError(
                "INVALID_ARGUMENT",
                f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                f"{{{_join(signature.outputs)}}}.",
            )
        if alias in outputs:
            raise ServingError("INVALID_ARGUMENT", f"duplicate output tensor alias: {alias}")
        outputs.append(alias)
    sizes = {a.shape[0] if a.ndim else None for a in feeds.values()}
    batch = sizes.pop() if len(sizes) == 1 else None
    return Prediction(signature, feeds, outputs or list(signature.outputs), batch)


def predict_response(name: str, version: int, prediction: Prediction, outputs: dict[str, np.ndarray]):
    from tensorflow_serving.apis import predict_pb2

    response = predict_pb2.PredictResponse(model_spec=model_spec(name, prediction.signature.name, version))
    for alias in prediction.outputs:
        response.outputs[alias].CopyFrom(to_tensor_proto(outputs[alias]))
    return response


def _join(names) -> str:
    return ",".join(sorted(names))


# Classify and regress ----------------------------------------------------------------------------------------------


def examples(request_input) -> np.ndarray:
    """The `tensorflow.serving.Input` as the string tensor of serialized Examples its signatures take (util.cc)."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        serialized = [e.SerializeToString() for e in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        listed = request_input.example_list_with_context
        # Serialized protos concatenate as a merge, so context + example is the example with the context's features.
        context = listed.context.SerializeToString()
        serialized = [context + e.SerializeToString() for e in listed.examples]
    else:
        serialized = []
    if not serialized:
        raise ServingError("INVALID_ARGUMENT", "Input is empty.")
    return np.array(serialized, dtype=object)


def _signature_def(servable: Servable, name: str):
    name = name or DEFAULT_SIGNATURE
    if name not in servable.meta_graph.signature_def:
        raise ServingError("INVALID_ARGUMENT", f"No signature was found with the name: {name}")
    return name, servable.meta_graph.signature_def[name]


def classify_signature(servable: Servable, name: str) -> Signature:
    """The signature a Classify request runs, checked as classifier.cc's PreProcessClassification checks it."""
    name, sig = _signature_def(servable, name)
    check_classify(sig)
    return servable.signatures[name]


def check_classify(sig) -> None:
    if len(sig.inputs) != 1:
        raise ServingError("INVALID_ARGUMENT", "Expected one input Tensor.")
    if len(sig.outputs) not in (1, 2):
        raise ServingError("INVALID_ARGUMENT", f"Expected one or two output Tensors, found {len(sig.outputs)}")
    if "inputs" not in sig.inputs:
        raise ServingError("INVALID_ARGUMENT", f"No classification inputs found in SignatureDef: {sig}")
    if "classes" not in sig.outputs and "scores" not in sig.outputs:
        raise ServingError(
            "INVALID_ARGUMENT",
            'Expected classification signature outputs to contain at least one of "classes" or "scores". '
            f"Signature was: {sig}",
        )


def regress_signature(servable: Servable, name: str) -> Signature:
    """The signature a Regress request runs, checked as regressor.cc's PreProcessRegression checks it."""
    name, sig = _signature_def(servable, name)
    check_regress(sig)
    return servable.signatures[name]


def check_regress(sig) -> None:
    if len(sig.inputs) != 1:
        raise ServingError("INVALID_ARGUMENT", "Expected one input Tensor.")
    if len(sig.outputs) != 1:
        raise ServingError("INVALID_ARGUMENT", "Expected one output Tensor.")
    if "inputs" not in sig.inputs:
        raise ServingError("INVALID_ARGUMENT", f"No regression inputs found in SignatureDef: {sig}")
    if "outputs" not in sig.outputs:
        raise ServingError("INVALID_ARGUMENT", f"No regression outputs found in SignatureDef: {sig}")


def classification_result(outputs: dict[str, np.ndarray], rows: int):
    from tensorflow_serving.apis import classification_pb2

    classes, scores = outputs.get("classes"), outputs.get("scores")
    for tensor, kind, dtype in ((classes, "classes", "DT_STRING"), (scores, "scores", "DT_FLOAT")):
        if tensor is None:
            continue
        if tensor.ndim != 2:
            raise ServingError(
                "INVALID_ARGUMENT", f"Expected Tensor shape: [batch_size num_classes] but got {_shape(tensor)}"
            )
        if _dtype_name(tensor) != dtype:
            raise ServingError("INVALID_ARGUMENT", f"Expected {kind} Tensor of {dtype}. Got: {_dtype_name(tensor)}")
        if tensor.shape[0] != rows:
            raise ServingError(
                "INVALID_ARGUMENT", f"Expected {kind} output batch size of {rows}. Got: {tensor.shape[0]}"
            )
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise ServingError(
            "INVALID_ARGUMENT",
            f"Tensors class and score should match in dim_size(1). Got {classes.shape[1]} vs. {scores.shape[1]}",
        )
    width = (classes if classes is not None else scores).shape[1]
    result = classification_pb2.ClassificationResult()
    for i in range(rows):
        row = result.classifications.add()
        for j in range(width):
            entry = row.classes.add()
            if classes is not None:
                entry.label = classes[i, j].decode("utf-8", "replace")
            if scores is not None:
                entry.score = float(scores[i, j])
    return result


def regression_result(outputs: dict[str, np.ndarray], rows: int):
    from tensorflow_serving.apis import regression_pb2

    values = outputs["outputs"]
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise ServingError(
            "INVALID_ARGUMENT",
            f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got {_shape(values)}",
        )
    if values.shape[0] != rows:
        raise ServingError(
            "INVALID_ARGUMENT", f"Input batch size did not match output batch size: {rows} vs. {values.shape[0]}"
        )
    if _dtype_name(values) != "DT_FLOAT":
        raise ServingError("INVALID_ARGUMENT", f"Expected output Tensor of DT_FLOAT.  Got: {_dtype_name(values)}")
    result = regression_pb2.RegressionResult()
    for value in values.reshape(-1):
        result.regressions.add(value=float(value))
    return result


def multi_inference_tasks(request, servable: Servable) -> list[tuple[str, Signature]]:
    """(method, signature) per task, refused as multi_inference.cc refuses them before running anything."""
    model, seen, tasks = "", set(), []
    for task in request.tasks:
        if not task.model_spec.name:
            raise ServingError("INVALID_ARGUMENT", "Found ModelSpec with an empty model name.")
        if model and task.model_spec.name != model:
            raise ServingError(
                "INVALID_ARGUMENT", "All ModelSpecs in a MultiInferenceRequest must access the same model name."
            )
        model = task.model_spec.name
        name = task.model_spec.signature_name or DEFAULT_SIGNATURE
        if name in seen:
            raise ServingError("INVALID_ARGUMENT", f"Duplicate evaluation of signature: {name}")
        seen.add(name)
        if name not in servable.meta_graph.signature_def:
            raise ServingError("INVALID_ARGUMENT", f"Requested signature not found in model graph: {name}")
        sig = servable.meta_graph.signature_def[name]
        if task.method_name == CLASSIFY_METHOD:
            check_classify(sig)
        elif task.method_name == REGRESS_METHOD:
            check_regress(sig)
        else:
            raise ServingError("UNIMPLEMENTED", f"Unsupported signature method_name: {task.method_name}")
        tasks.append((task.method_name, servable.signatures[name]))
    return tasks


# Metadata --------------------------------------------------------------------------------------------------------


def metadata_response(name: str, version: int, servable: Servable):
    """GetModelMetadata: only the `signature_def` field exists (get_model_metadata_impl.cc)."""
    from tensorflow_serving.apis import get_model_metadata_pb2

    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = name
    response.model_spec.version.value = version
    defs = get_model_metadata_pb2.SignatureDefMap()
    for key, sig in servable.meta_graph.signature_def.items():
        defs.signature_def[key].CopyFrom(sig)
    response.metadata["signature_def"].Pack(defs)
    return response


def check_metadata_request(request) -> None:
    require_model_spec(request)
    if not request.metadata_field:
        raise ServingError("INVALID_ARGUMENT", "GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != "signature_def":
            raise ServingError("INVALID_ARGUMENT", f"Metadata field {field} is not supported")
