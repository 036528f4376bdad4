"""Trains the package's example model, a Keras digit classifier, and exports it as a SavedModel ready to serve.

The examples are JSON Lines rows `{"pixels": [64 floats], "label": 0-9}` (scikit-learn's 8x8 digits, scaled to
[0, 1]); the export takes `pixels` [-1, 64] to `probabilities` and names its serving function with the TPU function
alias that manual partitioning converts. It is the demo's model and the retrain pipeline's trainer; replace it with
your own trainer that writes a SavedModel to `model.path`.
"""

import json
from pathlib import Path

import numpy as np
from kfp import dsl
from kfp.dsl.component_decorator import component  # importable inside a running component, unlike dsl.component

from components import COMPONENT_IMAGE
from vertex_serving.errors import UserError
from vertex_serving.sdk import read_text

ALIAS = "tpu_func"
PIXELS, CLASSES = 64, 10
ROW_FIX = 'write one {"pixels": [64 numbers], "label": 0-9} per line'


def build_classifier(seed: int):
    """The demo's classifier, seeded so the same data and seed train the same model."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((PIXELS,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def export_classifier(model, path: Path, training: bool = False) -> Path:
    """A SavedModel taking `pixels` [-1, 64] to `probabilities`, with its serving function under the TPU alias."""
    import tensorflow as tf
    from keras.export import ExportArchive

    archive = ExportArchive()
    archive.track(model)
    serve = archive.add_endpoint(
        "serving_default",
        lambda x: {"probabilities": model(x, training=training)},
        input_signature=[tf.TensorSpec((None, 64), tf.float32, name="pixels")],
    )
    archive.write_out(str(path), options=tf.saved_model.SaveOptions(function_aliases={ALIAS: serve}), verbose=False)
    return path


def digits_examples(seed: int = 0, test_size: float = 0.2) -> tuple[tuple, tuple]:
    """scikit-learn's bundled digits (offline) as ((x_train, y_train), (x_eval, y_eval)); sklearn is only a dev tool."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_train, x_eval, y_train, y_eval = train_test_split(x, digits.target, test_size=test_size, random_state=seed)
    return (x_train, y_train), (x_eval, y_eval)


def write_examples(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    """The rows `read_examples` reads back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(
            json.dumps({"pixels": row.tolist(), "label": int(label)}) + "\n" for row, label in zip(x, y, strict=True)
        )
    )
    return path


def read_examples(uri: str) -> tuple[np.ndarray, np.ndarray]:
    """Pixels as float32 [n, 64] and labels as int64 [n], from JSON Lines at a local path or gs://."""
    pixels, labels = [], []
    for number, line in enumerate(read_text(uri, "data_uri").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError("data_uri", uri, f"is not JSON Lines ({e.msg} on line {number})", ROW_FIX) from None
        pixels.append(_pixels(row, uri, number))
        labels.append(_label(row, uri, number))
    if not pixels:
        raise UserError("data_uri", uri, "holds no examples", ROW_FIX)
    return np.stack(pixels), np.array(labels, dtype=np.int64)


def train_digits(data_uri: str, epochs: int, seed: int, target: Path) -> dict:
    """Trains on the examples at `data_uri` and exports to `target`; returns the last epoch's accuracy and loss."""
    if epochs < 1:
        raise UserError("epochs", epochs, "trains nothing", "give 1 or more")
    x, y = read_examples(data_uri)
    model = build_classifier(seed)
    history = model.fit(x, y, epochs=epochs, batch_size=64, verbose=0).history
    export_classifier(model, target)
    return {"accuracy": float(history["accuracy"][-1]), "loss": float(history["loss"][-1])}


def _pixels(row: object, uri: str, number: int) -> np.ndarray:
    values = row.get("pixels") if isinstance(row, dict) else None
    numbers = isinstance(values, list) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if not numbers or len(values) != PIXELS:
        raise UserError("data_uri", uri, f"has no list of {PIXELS} numbers as 'pixels' on line {number}", ROW_FIX)
    return np.asarray(values, dtype=np.float32)


def _label(row: dict, uri: str, number: int) -> int:
    label = row.get("label")
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < CLASSES:
        raise UserError(
            "data_uri", uri, f"has label {label!r} on line {number}, not a class from 0 to {CLASSES - 1}", ROW_FIX
        )
    return label


@component(base_image=COMPONENT_IMAGE, install_kfp_package=False)  # the image carries kfp
def train(data_uri: str, epochs: int, seed: int, model: dsl.Output[dsl.Model], metrics: dsl.Output[dsl.Metrics]):
    from pathlib import Path

    from components.train import train_digits

    found = train_digits(data_uri, epochs, seed, Path(model.path))
    for name, value in found.items():
        metrics.log_metric(name, value)
    model.metadata["framework"] = "tensorflow"
    print(f"train: {epochs} epochs, training accuracy {found['accuracy']:.4f}, loss {found['loss']:.4f}")
