"""Small SavedModels the tests build themselves, with answers that are easy to compute by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TESTDATA = Path(__file__).resolve().parent / "testdata" / "tf-serving"  # TF Serving's own test models
SAMPLES = TESTDATA.parent / "samples" / "half_plus_two.jsonl"  # instances for half_plus_two, one per line
WEIGHTS = np.array([[1.0], [2.0], [3.0]], dtype=np.float32)


def expected_sum(a) -> np.ndarray:
    return (np.asarray(a, dtype=np.float32) @ WEIGHTS)[:, 0]


def tagged_sum(path: Path, alias: str = "") -> Path:
    """Two inputs (`a` float [-1, 3], `tag` string [-1]) and three outputs, two of them strings.

    `sum` = a @ [1, 2, 3]; `tag_bytes` echoes the tag (returned as b64); `label` is the tag with "!" appended.
    A second signature `scaled` doubles the sum. `alias` exports `serve` under that TPU function alias.
    """
    import tensorflow as tf

    class TaggedSum(tf.Module):
        def __init__(self):
            super().__init__()
            self.weights = tf.Variable(WEIGHTS)

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 3], tf.float32, name="a"),
                tf.TensorSpec([None], tf.string, name="tag"),
            ]
        )
        def serve(self, a, tag):
            return {"sum": tf.squeeze(a @ self.weights, -1), "tag_bytes": tag, "label": tf.strings.join([tag, "!"])}

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="a")])
        def scaled(self, a):
            return {"sum": 2.0 * tf.squeeze(a @ self.weights, -1)}

    module = TaggedSum()
    options = tf.saved_model.SaveOptions(function_aliases={alias: module.serve}) if alias else None
    tf.saved_model.save(
        module, str(path), signatures={"serving_default": module.serve, "scaled": module.scaled}, options=options
    )
    return path


def _export_keras(model, input_shape: tuple[int, ...], path: Path, output: str = "scores") -> Path:
    """A Keras model as a SavedModel with a batchable `serving_default` taking `x` (TF Serving's loader restores
    Keras 3 variables from an ExportArchive)."""
    import tensorflow as tf
    from keras.export import ExportArchive

    archive = ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        lambda x: {output: model(x, training=False)},
        input_signature=[tf.TensorSpec((None, *input_shape), tf.float32, name="x")],
    )
    archive.write_out(str(path), verbose=False)
    return path


CNN_SHAPE = (12, 12, 3)


def small_cnn(path: Path) -> Path:
    """A small image classifier: two convolutions and a softmax over 10 classes."""
    import keras

    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input(CNN_SHAPE),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    return _export_keras(model, CNN_SHAPE, path)


def bf16_sensitive(path: Path) -> Path:
    """Four scores `512 * sum(x) + 0.25 * x_j`: the winner is the largest input, by a margin that bfloat16 (8 bits of
    mantissa, a step of 4 at 512) rounds away, so compressed arithmetic loses the top-1."""
    import keras

    dense = keras.layers.Dense(4, use_bias=False)
    model = keras.Sequential([keras.Input((4,)), dense])
    dense.set_weights([np.full((4, 4), 512.0, dtype=np.float32) + 0.25 * np.eye(4, dtype=np.float32)])
    return _export_keras(model, (4,), path)
