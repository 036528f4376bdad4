"""Writes the SavedModel warmup file, so the first real request meets compiled, warmed kernels.

TF Serving replays `assets.extra/tf_serving_warmup_requests` (PredictionLog TFRecords, at most 1000) before it
serves; with XLA precompilation each batch size compiles on first use, so the file holds one request per batch
size production will send (the allowed batch sizes when server-side batching is on).
"""

from pathlib import Path

from kfp import dsl
from kfp.dsl.component_decorator import component  # importable inside a running component, unlike dsl.component

from components import COMPONENT_IMAGE

# XLA's auto-clustering compiles a cluster lazily, once it has run a few times with the same shapes: one replay per
# batch size would leave the compilation to the first real request.


def warm(model_dir: Path, target: Path, instances: list, batch_sizes: list[int]) -> int:
    """Copies the model to `target` with a warmup file for `batch_sizes`, built from the sample instances."""
    import shutil

    from vertex_serving.errors import UserError
    from vertex_serving.options import RuntimeOptions
    from vertex_serving.tfserving.errors import ServingError
    from vertex_serving.tfserving.layout import WARMUP_REPEATS
    from vertex_serving.tfserving.servable import Servable
    from vertex_serving.tfserving.tensors import parse_predict
    from vertex_serving.tfserving.warmup import warmup_records, write_warmup_file

    shutil.copytree(model_dir, target, dirs_exist_ok=True)
    servable = Servable(target, 1, RuntimeOptions())
    try:
        signature = servable.signature(None)
        samples = parse_predict({"instances": instances}, signature).feeds
    finally:
        servable.close()
    try:
        records = warmup_records(samples, batch_sizes, signature.name, repeats=WARMUP_REPEATS)
    except ServingError as e:
        raise UserError(
            "allowed_batch_sizes",
            batch_sizes,
            f"need more warmup requests than TF Serving replays ({e.message})",
            "allow fewer batch sizes",
        ) from None
    write_warmup_file(target, records)
    return len(records)


@component(base_image=COMPONENT_IMAGE, install_kfp_package=False)  # the image carries kfp
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
