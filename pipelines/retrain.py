"""The retrain-and-deploy pipeline: the user's trainer, a gate against the serving champion, then the deploy pipeline.

Training belongs to the user, so `build(train_op)` composes any kfp component that outputs a SavedModel
(`Output[Model]`) and `Output[Metrics]`. The new model is evaluated on the user's evaluation set and deployed only
when it beats the champion (the version with most of the endpoint's traffic) by `min_improvement`; the deploy
pipeline runs whole, nested as one sub-pipeline, so everything it checks and proves still holds.
"""

from __future__ import annotations

import inspect

from kfp import dsl

from components import COMPONENT_IMAGE
from components.gate import gate, model_uri
from pipelines import deploy
from vertex_serving.config import DeployConfig

PIPELINE_NAME = "vertex-serving-retrain"
# The gate's own parameters: (name, type, default); no default means required.
GATE_PARAMETERS = (
    ("eval_data_uri", str, inspect.Parameter.empty),
    ("gate_metric", str, "accuracy"),
    ("min_improvement", float, 0.0),
)
# What the run hands the deploy pipeline instead of taking it from its parameters: the trained model and the gate's
# record of its score.
FROM_GATE = ("model_dir", "version_description")
_KFP_TYPES = {"String": str, "Integer": int, "Float": float, "Boolean": bool, "List": list, "Dict": dict}


def train_parameters(train_op) -> list[inspect.Parameter]:
    """The trainer's parameter inputs, as pipeline parameters of the same names, types and defaults."""
    found = []
    for name, spec in (train_op.component_spec.inputs or {}).items():
        kind = _KFP_TYPES.get(str(spec.type).split(".")[-1])
        if kind is None:
            raise ValueError(f"train_op input {name!r} is an artifact ({spec.type}): a trainer takes parameters only")
        default = spec.default if spec.default is not None or spec.optional else inspect.Parameter.empty
        found.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind))
    return found


def model_output(train_op) -> str:
    """The trainer's SavedModel output; it must also output Metrics, which the Vertex AI UI shows."""
    outputs = {name: str(spec.type) for name, spec in (train_op.component_spec.outputs or {}).items()}
    models = [name for name, kind in outputs.items() if kind.startswith("system.Model")]
    if len(models) != 1 or not any(kind.startswith("system.Metrics") for kind in outputs.values()):
        raise ValueError(
            f"train_op {train_op.name!r} outputs {outputs}: it must output one Output[Model] (the SavedModel) and an "
            "Output[Metrics]"
        )
    return models[0]


def signature(train_op) -> inspect.Signature:
    """The trainer's parameters, the gate's, then the deploy pipeline's but what the gate supplies."""
    deploy_parameters = [p for name, p in deploy.signature().parameters.items() if name not in FROM_GATE]
    gate_parameters = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
        for name, kind, default in GATE_PARAMETERS
    ]
    parameters = train_parameters(train_op) + gate_parameters + deploy_parameters
    names = [p.name for p in parameters]
    if clash := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"train_op's inputs {clash} clash with the gate's or the deploy pipeline's parameters")
    # Positional order for kfp, required ones first (kfp calls the pipeline function positionally).
    ordered = sorted(parameters, key=lambda p: p.default is not inspect.Parameter.empty)
    return inspect.Signature([p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in ordered])


def build(train_op, component_image: str = COMPONENT_IMAGE, name: str = PIPELINE_NAME):
    """A pipeline of three stages: `train_op`, the gate, and the deploy pipeline when the new model is better."""
    model_key = model_output(train_op)
    trainer_inputs = [p.name for p in train_parameters(train_op)]
    checked_gate = deploy.on_image(gate, component_image)
    located = deploy.on_image(model_uri, component_image)
    deploy_pipeline = deploy.build(component_image)
    deploy_names = [n for n, *_ in DeployConfig.parameters() if n not in FROM_GATE]
    names = list(signature(train_op).parameters)

    def retrain_pipeline(*values):
        p = dict(zip(names, values, strict=True))
        trained = train_op(**{k: p[k] for k in trainer_inputs}).set_display_name("train")
        gated = checked_gate(
            project=p["project"],
            location=p["location"],
            api_endpoint=p["api_endpoint"],
            endpoint_display_name=p["endpoint_display_name"],
            endpoint_network=p["endpoint_network"],
            model=trained.outputs[model_key],
            eval_data_uri=p["eval_data_uri"],
            gate_metric=p["gate_metric"],
            min_improvement=p["min_improvement"],
        ).set_display_name("gate")
        where = located(model=trained.outputs[model_key]).set_display_name("model-uri")
        record = gated.outputs["Output"]  # the new model's score to record on its version; "" skips the deploy
        with dsl.If(record != "", name="better-than-champion"):
            deploy_pipeline(
                **{k: p[k] for k in deploy_names}, model_dir=where.output, version_description=record
            ).set_display_name("deploy")

    retrain_pipeline.__signature__ = signature(train_op)
    return dsl.pipeline(
        name=name,
        description="Retrain, evaluate against the serving champion, and deploy the new model only if it is better.",
    )(retrain_pipeline)


def example(component_image: str = COMPONENT_IMAGE):
    """The package's example: the demo's Keras digits classifier as the trainer, in the steps' image."""
    from components.train import train

    return build(deploy.on_image(train, component_image), component_image)
