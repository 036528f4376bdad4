"""SavedModel warmup records, written and replayed with TF Serving's rules (SavedModel Warmup guide).

`assets.extra/tf_serving_warmup_requests` is a TFRecord file of `PredictionLog`s: a missing file means no
warmup; more than 1000 records or a corrupt record fails the load rather than being truncated or skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from vertex_serving.tfserving.apis import examples
from vertex_serving.tfserving.errors import ServingError
from vertex_serving.tfserving.layout import MAX_WARMUP_RECORDS, WARMUP_FILE

Predict = Callable[[str, dict[str, np.ndarray]], object]


def warmup_records(
    samples: dict[str, np.ndarray], batch_sizes: list[int], signature_name: str = "serving_default", repeats: int = 1
) -> list:
    """PredictionLogs for each batch size, built by cycling through the sample rows (never invented data).

    Largest first: the last sizes replayed are the ones whose kernels are still warm in the caches, and the
    smallest batches are the ones a lightly loaded server sees first.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    rows = len(next(iter(samples.values())))
    records = []
    for size in sorted(set(batch_sizes), reverse=True):
        index = np.arange(size) % rows
        request = predict_pb2.PredictRequest()
        request.model_spec.signature_name = signature_name
        for name, values in samples.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(values[index]))
        record = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
        records.extend([record] * repeats)
    if len(records) > MAX_WARMUP_RECORDS:
        raise ServingError(
            "INVALID_ARGUMENT",
            f"{len(records)} warmup records exceed TF Serving's limit of {MAX_WARMUP_RECORDS}",
        )
    return records


def write_warmup_file(model_dir: Path, records: list) -> Path:
    import tensorflow as tf

    path = Path(model_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record.SerializeToString())
    return path


def read_warmup_records(model_dir: Path) -> list:
    """The warmup `PredictionLog`s of a SavedModel, in file order."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError
    from tensorflow_serving.apis import prediction_log_pb2

    path = model_dir / WARMUP_FILE
    if not path.exists():
        return []
    records = []
    try:
        for position, raw in enumerate(tf.data.TFRecordDataset(str(path)).as_numpy_iterator()):
            if position == MAX_WARMUP_RECORDS:
                raise ServingError(
                    "INVALID_ARGUMENT",
                    f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}",
                )
            record = prediction_log_pb2.PredictionLog()
            record.ParseFromString(raw)
            records.append(record)
    except tf.errors.DataLossError as e:
        raise ServingError("DATA_LOSS", f"Corrupt warmup file {path}: {e.message}") from None
    except DecodeError:
        raise ServingError(
            "INVALID_ARGUMENT", f"Warmup record {len(records)} of {path} is not a PredictionLog"
        ) from None
    return records


def replay(records: list, predict: Predict) -> int:
    """Runs each record through `predict(signature_name, feeds)`; returns how many requests ran."""
    import tensorflow as tf

    count = 0
    for record in records:
        kind = record.WhichOneof("log_type")
        if kind == "predict_log":
            request = record.predict_log.request
            feeds = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            predict(request.model_spec.signature_name, feeds)
        elif kind in ("classify_log", "regress_log"):
            request = getattr(record, kind).request
            predict(request.model_spec.signature_name, {"inputs": examples(request.input)})
        elif kind == "multi_inference_log":
            request = record.multi_inference_log.request
            for task in request.tasks:
                predict(task.model_spec.signature_name, {"inputs": examples(request.input)})
        else:
            raise ServingError("UNIMPLEMENTED", f"Unsupported warmup log type {kind!r}: use predict_log")
        count += 1
    return count
