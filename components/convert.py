"""Checks the SavedModel can be served, prepares it for the chosen TPU mode, and records reference predictions.

A model is only worth uploading if its serving signature is batchable and speaks JSON; the reference predictions
on the sample instances are what the smoke test later compares the live endpoint against.
"""

import json
import shutil
from pathlib import Path

import numpy as np
from kfp import dsl
from kfp.dsl.component_decorator import component  # importable inside a running component, unlike dsl.component

from components.image import COMPONENT_IMAGE

JSON_KINDS = "fiub"  # floats, ints, unsigned, bools; strings are objects
SYNTHETIC_ROWS = 8


class ModelError(ValueError):
    """The model itself cannot be served as configured: names the model, the problem and the fix."""


def read_instances(uri: str) -> list:
    """JSON Lines, one instance a line, from a local path or gs://."""
    if uri.startswith("gs://"):
        from google.cloud import storage

        bucket, _, name = uri.removeprefix("gs://").partition("/")
        text = storage.Client().bucket(bucket).blob(name).download_as_text()
    else:
        text = Path(uri).read_text()
    instances = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not instances:
        raise ModelError(f"sample_instances_uri={uri!r} holds no instances: write one JSON instance per line")
    return instances


def synthetic_instances(signature, rows: int = SYNTHETIC_ROWS, seed: int = 0) -> list:
    """Instances built from the signature alone, for models whose users gave no samples."""
    rng = np.random.default_rng(seed)
    columns = {}
    for key, spec in signature.inputs.items():
        if spec.dtype == object:
            raise ModelError(f"input {key!r} takes strings, which cannot be made up: set sample_instances_uri")
        shape = (rows, *(d if d > 0 else 1 for d in (spec.shape or (-1,))[1:]))
        if spec.dtype.kind == "f":
            columns[key] = rng.normal(size=shape).astype(spec.dtype)
        elif spec.dtype.kind == "b":
            columns[key] = rng.random(shape) > 0.5
        else:
            columns[key] = rng.integers(0, 10, size=shape).astype(spec.dtype)
    if len(columns) == 1:
        return next(iter(columns.values())).tolist()
    return [{k: v[i].tolist() for k, v in columns.items()} for i in range(rows)]


def check_signature(signature) -> None:
    for key, spec in {**signature.inputs, **signature.outputs}.items():
        if spec.dtype != object and spec.dtype.kind not in JSON_KINDS:
            raise ModelError(
                f"tensor {key!r} of signature {signature.name!r} is {spec.dtype_name}, which JSON cannot carry"
            )
    for key, spec in signature.inputs.items():
        if spec.shape is not None and (not spec.shape or spec.shape[0] != -1):
            raise ModelError(
                f"input {key!r} of signature {signature.name!r} has shape {list(spec.shape)}: its first dimension must "
                "be unknown (None) so requests can be batched"
            )


def prepare(model_dir: str, target: Path, tpu_mode: str, tpu_function_alias: str, batching_config: str) -> Path:
    """Copies (or, for manual partitioning without the alias, re-saves) the model into `target`."""
    from localvertex.modelserver.storage import fetch_model

    source = fetch_model(model_dir, target.parent / "download")
    if tpu_mode == "preconverted":
        tags = _tag_sets(source)
        if "serve,tpu" not in tags and "tpu,serve" not in tags:
            raise ModelError(
                f"model_dir={model_dir!r} has tag sets {tags}, but tpu_mode='preconverted' needs 'serve,tpu': run the Cloud TPU Inference Converter first, or use tpu_mode='manual_partition'"
            )
    if tpu_mode == "manual_partition" and tpu_function_alias not in _aliases(source):
        _resave_with_alias(source, target, tpu_function_alias)
    else:
        shutil.copytree(source, target, dirs_exist_ok=True)
    if batching_config:
        from pipelines.artifacts import BATCHING_CONFIG

        (target / BATCHING_CONFIG).parent.mkdir(parents=True, exist_ok=True)
        (target / BATCHING_CONFIG).write_text(batching_config)
    return target


def reference_predictions(model: Path, instances: list, tags: tuple) -> dict:
    """The model's own answers on the samples, computed the way TF Serving computes them."""
    from localvertex.modelserver.servable import Servable
    from localvertex.modelserver.tensors import format_predict, parse_predict
    from pipelines.options import RuntimeOptions

    servable = Servable(model, 1, RuntimeOptions(saved_model_tags=tags))
    try:
        signature = servable.signature(None)
        check_signature(signature)
        instances = instances or synthetic_instances(signature)
        request = parse_predict({"instances": instances}, signature)
        outputs = format_predict(signature.run(request.feeds), False, request.batch_size)
        predictions = json.loads(json.dumps(outputs["predictions"], default=lambda a: a.tolist()))
        inputs = {k: {"dtype": s.dtype_name, "shape": s.shape} for k, s in signature.inputs.items()}
        return {"signature": inputs, "instances": instances, "predictions": predictions}
    finally:
        servable.close()


def _tag_sets(model: Path) -> list[str]:
    from tensorflow.python.saved_model import loader_impl

    return [",".join(m.meta_info_def.tags) for m in loader_impl.parse_saved_model(str(model)).meta_graphs]


def _aliases(model: Path) -> set[str]:
    from tensorflow.python.saved_model import loader_impl

    return {
        a
        for m in loader_impl.parse_saved_model(str(model)).meta_graphs
        for a in m.meta_info_def.function_aliases.values()
    }


def _resave_with_alias(source: Path, target: Path, alias: str) -> None:
    """Exports the serving function under `alias`, the name the converter options will point the TPU converter at."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(source))
    serve = loaded.signatures["serving_default"]
    tf.saved_model.save(
        loaded,
        str(target),
        signatures={"serving_default": serve},
        options=tf.saved_model.SaveOptions(function_aliases={alias: serve}),
    )
    for extra in ("assets.extra",):
        if (source / extra).exists():
            shutil.copytree(source / extra, target / extra, dirs_exist_ok=True)


@component(base_image=COMPONENT_IMAGE)
def convert(
    model_dir: str,
    tpu_mode: str,
    tpu_function_alias: str,
    sample_instances_uri: str,
    batching_config: str,
    model: dsl.Output[dsl.Model],
    reference: dsl.Output[dsl.Dataset],
):
    import json
    from pathlib import Path

    from components.convert import prepare, read_instances, reference_predictions

    target = prepare(model_dir, Path(model.path), tpu_mode, tpu_function_alias, batching_config)
    instances = read_instances(sample_instances_uri) if sample_instances_uri else []
    tags = ("serve", "tpu") if tpu_mode == "preconverted" else ("serve",)
    found = reference_predictions(target, instances, tags)
    Path(reference.path).write_text(json.dumps(found))
    reference.metadata["instances"] = len(found["instances"])
    model.metadata["framework"] = "tensorflow"
