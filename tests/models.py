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
