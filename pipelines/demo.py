"""`vsp demo` (`make demo`): train a small digit classifier, then deploy it end to end on localvertex.

The data set is scikit-learn's bundled 8x8 digits (offline); the model is exported with the TPU function alias
that manual partitioning names, and deployed on ct5lp-hightpu-1t with the nightly TPU image, precompilation on,
warmup and server-side batching, then smoke-tested.
"""

import json
from pathlib import Path

import yaml

from components.train import ALIAS, export_classifier  # noqa: F401 - the demo's model, shared with the trainer


def train_and_export(target: Path, epochs: int = 40) -> tuple[Path, Path]:
    """Returns the SavedModel folder and a JSON Lines file of held-out sample instances."""
    from components.train import build_classifier, digits_examples

    (x_train, y_train), (x_test, y_test) = digits_examples()
    model = build_classifier(seed=0)
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
    print(f"demo: trained a digit classifier on {len(x_train)} images, test accuracy {accuracy:.1%}")
    saved = export_classifier(model, target / "model")
    samples = target / "samples.jsonl"
    samples.write_text("".join(json.dumps({"pixels": row.round(4).tolist()}) + "\n" for row in x_test[:32]))
    return saved, samples


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


def main(work: Path, data_dir: Path | None) -> int:
    from pipelines.run import Options, run

    work.mkdir(parents=True, exist_ok=True)
    model, samples = train_and_export(work)
    config = work / "deploy.yaml"
    config.write_text(yaml.safe_dump(demo_config(model, samples), sort_keys=False))
    print(f"demo: configuration written to {config}")
    print("demo: Vertex AI's TPU v5e serving quota is 0 by default; the local emulator is given 8 cores for this demo")
    return run(Options(config=config, local=True, data_dir=data_dir, tpu_v5e_cores=8))
