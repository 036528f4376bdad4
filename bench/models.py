"""The two reference models of the benchmark, built here so the bench needs nothing from outside."""

from __future__ import annotations

import json
from pathlib import Path

MLP_FEATURES = 32
CNN_SHAPE = (16, 16, 3)


def export(model, input_shape: tuple[int, ...], path: Path) -> Path:
    """Saves `model` as a SavedModel with a batchable `serving_default` signature taking `x`.

    Keras' ExportArchive, not tf.saved_model.save on a tf.Module: Keras 3 variables saved the latter way are not
    restored by TF Serving's session loader.
    """
    import tensorflow as tf
    from keras.export import ExportArchive

    archive = ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        lambda x: {"scores": model(x, training=False)},
        input_signature=[tf.TensorSpec((None, *input_shape), tf.float32, name="x")],
    )
    archive.write_out(str(path), verbose=False)
    return path


def mlp(path: Path) -> Path:
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((MLP_FEATURES,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    return export(model, (MLP_FEATURES,), path)


def cnn(path: Path) -> Path:
    import keras

    keras.utils.set_random_seed(2)
    layers = [keras.Input(CNN_SHAPE)]
    for filters in (128, 256, 512):
        layers += [
            keras.layers.Conv2D(filters, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(filters, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
        ]
    layers += [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax")]
    return export(keras.Sequential(layers), CNN_SHAPE, path)


def body(shape: tuple[int, ...]) -> bytes:
    """A one-instance predict request for a model taking `shape`, the same in every run."""
    import numpy as np

    x = np.random.default_rng(1).random((1, *shape), dtype=np.float32).round(4)
    return json.dumps({"instances": x.tolist()}).encode()
