"""Writes the SavedModel warmup file, so the first real request meets compiled, warmed kernels.

TF Serving replays `assets.extra/tf_serving_warmup_requests` (PredictionLog TFRecords, at most 1000) before it
serves; with XLA precompilation each batch size compiles on first use, so the file holds one request per batch
size production will send (the allowed batch sizes when server-side batching is on).
"""

from pathlib import Path

import numpy as np
from kfp import dsl
from kfp.dsl.component_decorator import component  # importable inside a running component, unlike dsl.component

from components.image import COMPONENT_IMAGE
from pipelines.artifacts import MAX_WARMUP_RECORDS, WARMUP_FILE

# XLA's auto-clustering compiles a cluster lazily, once it has run a few times with the same shapes: one replay per
# batch size would leave the compilation to the first real request.
WARMUP_REPEATS = 3


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
        raise ValueError(f"{len(records)} warmup records exceed TF Serving's limit of {MAX_WARMUP_RECORDS}")
    return records


def write_warmup_file(model_dir: Path, records: list) -> Path:
    import tensorflow as tf

    path = Path(model_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record.SerializeToString())
    return path


def warm(model_dir: Path, target: Path, instances: list, batch_sizes: list[int]) -> int:
    """Copies the model to `target` with a warmup file for `batch_sizes`, built from the sample instances."""
    import shutil

    from localvertex.modelserver.servable import Servable
    from localvertex.modelserver.tensors import parse_predict
    from pipelines.options import RuntimeOptions

    shutil.copytree(model_dir, target, dirs_exist_ok=True)
    servable = Servable(target, 1, RuntimeOptions())
    try:
        signature = servable.signature(None)
        samples = parse_predict({"instances": instances}, signature).feeds
    finally:
        servable.close()
    records = warmup_records(samples, batch_sizes, signature.name, repeats=WARMUP_REPEATS)
    write_warmup_file(target, records)
    return len(records)


@component(base_image=COMPONENT_IMAGE)
def warmup(
    model: dsl.Input[dsl.Model],
    reference: dsl.Input[dsl.Dataset],
    batch_sizes: list,
    warmed_model: dsl.Output[dsl.Model],
):
    import json
    from pathlib import Path

    from components.warmup import warm

    instances = json.loads(Path(reference.path).read_text())["instances"]
    count = warm(Path(model.path), Path(warmed_model.path), instances, [int(b) for b in batch_sizes])
    warmed_model.metadata["warmup_records"] = count
    print(f"warmup: {count} records for batch sizes {batch_sizes}")
