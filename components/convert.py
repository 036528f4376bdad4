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

from components import COMPONENT_IMAGE
from vertex_serving.errors import UserError

JSON_KINDS = "fiub"  # floats, ints, unsigned, bools; strings are objects
SYNTHETIC_ROWS = 8


def read_instances(uri: str) -> list:
    """JSON Lines, one instance a line, from a local path or gs://."""
    from vertex_serving.sdk import read_text

    text = read_text(uri, "sample_instances_uri")
    instances = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            instances.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise UserError(
                "sample_instances_uri",
                uri,
                f"is not JSON Lines ({e.msg} on line {number})",
                "write one JSON instance per line",
            ) from None
    if not instances:
        raise UserError("sample_instances_uri", uri, "holds no instances", "write one JSON instance per line")
    return instances


def synthetic_instances(signature, rows: int = SYNTHETIC_ROWS, seed: int = 0) -> list:
    """Instances built from the signature alone, for models whose users gave no samples."""
    rng = np.random.default_rng(seed)
    columns = {}
    for key, spec in signature.inputs.items():
        if spec.dtype == object:
            raise UserError(
                "sample_instances_uri",
                "",
                f"is empty, but input {key!r} takes strings, which cannot be made up",
                "give sample instances as JSON Lines",
            )
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


def check_signature(signature, model_dir: str = "") -> None:
    """The serving signature must speak JSON and take batches: Vertex AI's prediction requests are both."""
    for key, spec in {**signature.inputs, **signature.outputs}.items():
        if spec.dtype != object and spec.dtype.kind not in JSON_KINDS:
            raise UserError(
                "model_dir",
                model_dir,
                f"has tensor {key!r} of signature {signature.name!r} as {spec.dtype_name}, which JSON cannot carry",
                "export the signature with numeric, bool or string tensors",
            )
    for key, spec in signature.inputs.items():
        if spec.shape is not None and (not spec.shape or spec.shape[0] != -1):
            raise UserError(
                "model_dir",
                model_dir,
                f"has input {key!r} of signature {signature.name!r} with shape {list(spec.shape)}, which cannot be "
                "batched",
                "export it with an unknown (None) first dimension",
            )


def prepare(model_dir: str, target: Path, tpu_mode: str, tpu_function_alias: str, batching_config: str) -> Path:
    """Copies (or, for manual partitioning without the alias, re-saves) the model into `target`."""
    from vertex_serving.tfserving.errors import ServingError
    from vertex_serving.tfserving.storage import fetch_model

    try:
        source = fetch_model(model_dir, target.parent / "download")
    except ServingError as e:
        raise UserError(
            "model_dir", model_dir, f"cannot be read ({e.message})", "give a SavedModel folder or gs:// URI"
        ) from None
    if not any((source / name).is_file() for name in ("saved_model.pb", "saved_model.pbtxt")):
        raise UserError(
            "model_dir",
            model_dir,
            "holds no saved_model.pb or saved_model.pbtxt",
            "give the folder of a SavedModel export",
        )
    if tpu_mode == "preconverted":
        tags = _tag_sets(source)
        if "serve,tpu" not in tags and "tpu,serve" not in tags:
            raise UserError(
                "model_dir",
                model_dir,
                f"has tag sets {tags}, but tpu_mode='preconverted' needs 'serve,tpu'",
                "run the Cloud TPU Inference Converter first, or use tpu_mode='manual_partition'",
            )
    if tpu_mode == "manual_partition" and tpu_function_alias not in _aliases(source):
        _resave_with_alias(source, target, tpu_function_alias)
    else:
        shutil.copytree(source, target, dirs_exist_ok=True)
    if batching_config:
        from vertex_serving.tfserving.layout import BATCHING_CONFIG

        (target / BATCHING_CONFIG).parent.mkdir(parents=True, exist_ok=True)
        (target / BATCHING_CONFIG).write_text(batching_config)
    return target


def reference_predictions(
    model: Path, instances: list, tags: tuple, model_dir: str = "", sample_instances_uri: str = ""
) -> dict:
    """The model's own answers on the samples, computed the way TF Serving computes them."""
    from vertex_serving.options import RuntimeOptions
    from vertex_serving.tfserving.errors import ServingError
    from vertex_serving.tfserving.servable import Servable
    from vertex_serving.tfserving.tensors import format_predict, parse_predict

    try:
        servable = Servable(model, 1, RuntimeOptions(saved_model_tags=tags))
    except ServingError as e:
        raise UserError(
            "model_dir", model_dir, f"does not load as TF Serving loads it ({e.message})", "fix the export"
        ) from None
    try:
        signature = servable.signature(None)
        check_signature(signature, model_dir)
        samples = instances or synthetic_instances(signature)
        try:  # as TF Serving, the graph has the last word on shapes: a run can refuse what parsing took
            request = parse_predict({"instances": samples}, signature)
            outputs = format_predict(signature.run(request.feeds), False)
        except ServingError as e:
            if not instances:
                raise
            raise UserError(
                "sample_instances_uri",
                sample_instances_uri,
                f"does not match the model's signature ({e.message})",
                "write instances the signature takes",
            ) from None
        instances = samples
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


@component(base_image=COMPONENT_IMAGE, install_kfp_package=False)  # the image carries kfp
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
    found = reference_predictions(target, instances, tags, model_dir, sample_instances_uri)
    Path(reference.path).write_text(json.dumps(found))
    reference.metadata["instances"] = len(found["instances"])
    model.metadata["framework"] = "tensorflow"
