"""`vsp demo` (`make demo`): train a small digit classifier, then deploy it end to end on localvertex.

The data set is scikit-learn's bundled 8x8 digits (offline); the model is exported with the TPU function alias
that manual partitioning names, and deployed on ct5lp-hightpu-1t with the nightly TPU image, precompilation on,
warmup and server-side batching, then smoke-tested.
"""

import json
from pathlib import Path

import yaml

ALIAS = "tpu_func"


def train_and_export(target: Path, epochs: int = 40) -> tuple[Path, Path]:
    """Returns the SavedModel folder and a JSON Lines file of held-out sample instances."""
    import keras
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, digits.target, test_size=0.2, random_state=0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
    print(f"demo: trained a digit classifier on {len(x_train)} images, test accuracy {accuracy:.1%}")
    saved = export_classifier(model, target / "model")
    samples = target / "samples.jsonl"
    samples.write_text("".join(json.dumps({"pixels": row.round(4).tolist()}) + "\n" for row in x_test[:32]))
    return saved, samples


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


def demo_config(model: Path, samples: Path) -> dict:
    return {
        "model_dir": str(model),
        "model_display_name": "digits",
        "endpoint_display_name": "digits-endpoint",
        "sample_instances_uri": str(samples),
        "accelerator": "tpu",
        "container_version": "nightly",
        "machine_type": "ct5lp-hightpu-1t",
        "tpu_mode": "manual_partition",
        "tpu_function_alias": ALIAS,
        "allow_precompilation": True,
        "allowed_batch_sizes": [1, 8, 32],
        "batch_timeout_micros": 1000,
        "smoke_requests": 30,
        "undeploy_zero_traffic": True,  # a re-run retires the version it replaced, so the demo's quota never runs out
    }


def main(work: Path, data_dir: Path) -> int:
    from pipelines.run import run_local

    work.mkdir(parents=True, exist_ok=True)
    model, samples = train_and_export(work)
    config = work / "deploy.yaml"
    config.write_text(yaml.safe_dump(demo_config(model, samples), sort_keys=False))
    print(f"demo: configuration written to {config}")
    print("demo: Vertex AI's TPU v5e serving quota is 0 by default; the local emulator is given 8 cores for this demo")
    return run_local(config, data_dir=data_dir, tpu_v5e_cores=8)
