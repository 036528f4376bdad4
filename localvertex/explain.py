"""Explanations with Sampled Shapley, the one method the optimized TensorFlow runtime supports (Vertex AI's
"Optimized TensorFlow runtime" limits; the method: Vertex Explainable AI's feature-based attributions).

Each numeric element of an explained input is a feature. For each of `path_count` random orders of the features, the
features go one by one from the baseline to the instance's value, and each takes the change of the output it causes;
a feature's attribution is the mean over the paths. All the steps are predicted in one batch by the model server.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass

from google.cloud.aiplatform_v1 import types

from localvertex.errors import VertexError
from vertex_serving.catalog import Catalog

MAX_PATH_COUNT = 50  # ExplanationParameters.sampled_shapley_attribution.path_count: 1 to 50
SAMPLED_SHAPLEY = "sampled_shapley_attribution"
_CAMEL = {
    SAMPLED_SHAPLEY: "sampledShapleyAttribution",
    "integrated_gradients_attribution": "integratedGradientsAttribution",
    "xrai_attribution": "xraiAttribution",
    "examples": "examples",
}


def check_spec(spec: types.ExplanationSpec, image_uri: str, catalog: Catalog, field: str) -> None:
    """Vertex AI's refusals of an explanation spec: a method is required, and the optimized runtime takes only
    Sampled Shapley, with 1 to 50 paths."""
    method = method_of(spec)
    if method is None:
        raise VertexError(
            "INVALID_ARGUMENT",
            f"{field}.parameters names no explanation method: set sampledShapleyAttribution {{pathCount: 10}}",
        )
    image = catalog.find(image_uri)
    if image is not None and image.runtime == "optimized" and method != SAMPLED_SHAPLEY:
        raise VertexError(
            "INVALID_ARGUMENT",
            f"{field}.parameters.{_CAMEL.get(method, method)} is not supported by the optimized TensorFlow runtime "
            f"({image_uri}), which explains with Sampled Shapley only: use sampledShapleyAttribution",
        )
    if method == SAMPLED_SHAPLEY:
        paths = spec.parameters.sampled_shapley_attribution.path_count
        if not 1 <= paths <= MAX_PATH_COUNT:
            raise VertexError(
                "INVALID_ARGUMENT",
                f"{field}.parameters.sampledShapleyAttribution.pathCount is {paths}: use 1 to {MAX_PATH_COUNT}",
            )


def method_of(spec: types.ExplanationSpec) -> str | None:
    return types.ExplanationParameters.pb(spec.parameters).WhichOneof("method")


@dataclass
class Paths:
    """The steps of one instance's paths: what to predict, and how to read the answers back."""

    instance: object
    features: list[tuple[str | None, int | None]]  # (input name, element index); None: the instance itself / scalar
    orders: list[list[int]]
    steps: list  # the instances to predict: the baseline, then each path's steps


def plan(instance, metadata: dict, path_count: int, rng: random.Random) -> Paths:
    """The instances to predict for one instance's Sampled Shapley paths; `metadata` is the explanation metadata's
    JSON form (`inputs` with `inputBaselines`, `outputs` with `outputTensorName`)."""
    baseline = _baseline(instance, metadata)
    features = _features(instance, metadata)
    if not features:
        raise VertexError(
            "INVALID_ARGUMENT",
            "The instance has no numeric input to explain: name its inputs in the explanation metadata's inputs",
        )
    orders, steps = [], [baseline]
    for _ in range(path_count):
        order = list(range(len(features)))
        rng.shuffle(order)
        orders.append(order)
        current = copy.deepcopy(baseline)
        for index in order:
            current = copy.deepcopy(current)
            _set(current, features[index], _get(instance, features[index]))
            steps.append(current)
    return Paths(instance, features, orders, steps)


def attribution(
    paths: Paths, predictions: list, metadata: dict, output_indices: list[int]
) -> tuple[types.Attribution, object]:
    """The attribution of one instance from the predictions of its steps, and the instance's own prediction."""
    name, key = _output(predictions[0], metadata)
    prediction = predictions[-1]  # every path ends at the instance itself
    index = list(output_indices) or _top(_read(prediction, key))
    values = [_scalar(_read(p, key), index) for p in predictions]
    marginals: list[list[float]] = [[] for _ in paths.features]
    position = 1
    for order in paths.orders:
        previous = values[0]
        for feature in order:
            marginals[feature].append(values[position] - previous)
            previous = values[position]
            position += 1
    means = [sum(m) / len(m) for m in marginals]
    errors = [
        math.sqrt(sum((x - mean) ** 2 for x in m) / len(m) / len(m)) for m, mean in zip(marginals, means, strict=True)
    ]
    display = _display_name(metadata, name, index)
    return (
        types.Attribution(
            baseline_output_value=values[0],
            instance_output_value=values[-1],
            feature_attributions=_shape(paths, means),
            output_index=index,
            output_display_name=display,
            approximation_error=math.sqrt(sum(e * e for e in errors)),
            output_name=name,
        ),
        prediction,
    )


def _inputs(instance, metadata: dict) -> list[str | None]:
    if not isinstance(instance, dict):
        return [None]
    named = list(metadata.get("inputs", {})) or sorted(instance)
    missing = [n for n in named if n not in instance]
    if missing:
        raise VertexError(
            "INVALID_ARGUMENT", f"The instance lacks the inputs {missing} that the explanation metadata names"
        )
    return named


def _features(instance, metadata) -> list[tuple[str | None, int | None]]:
    found = []
    for name in _inputs(instance, metadata):
        value = instance if name is None else instance[name]
        if _number(value):
            found.append((name, None))
        elif isinstance(value, list) and value and all(_number(v) for v in value):
            found += [(name, i) for i in range(len(value))]
    return found


def _baseline(instance, metadata: dict):
    baseline = copy.deepcopy(instance)
    for name in _inputs(instance, metadata):
        value = instance if name is None else instance[name]
        given = (metadata.get("inputs", {}).get(name, {}).get("inputBaselines") or [None])[0]
        if _number(value):
            new = given if _number(given) else 0.0
        elif isinstance(value, list) and all(_number(v) for v in value):
            new = given if isinstance(given, list) and len(given) == len(value) else [given or 0.0] * len(value)
        else:
            continue
        if name is None:
            baseline = new
        else:
            baseline[name] = new
    return baseline


def _get(instance, feature):
    name, index = feature
    value = instance if name is None else instance[name]
    return value if index is None else value[index]


def _set(target, feature, value) -> None:
    name, index = feature
    if name is None:
        target[index] = value
    elif index is None:
        target[name] = value
    else:
        target[name][index] = value


def _shape(paths: Paths, means: list[float]):
    """Attributions shaped like the inputs: a number for a scalar input, a list for a list input."""
    if paths.features[0][0] is None:
        return means if paths.features[0][1] is not None else means[0]
    shaped: dict = {}
    for (name, index), mean in zip(paths.features, means, strict=True):
        if index is None:
            shaped[name] = mean
        else:
            shaped.setdefault(name, []).append(mean)
    return shaped


def _output(prediction, metadata: dict) -> tuple[str, str | None]:
    """The output explained: the metadata's, else the prediction's only numeric one."""
    outputs = metadata.get("outputs", {})
    if not isinstance(prediction, dict):
        return next(iter(outputs), ""), None
    for name, output in outputs.items():
        key = output.get("outputTensorName") if output.get("outputTensorName") in prediction else name
        if key in prediction:
            return name, key
    numeric = [k for k, v in prediction.items() if _number(v) or (isinstance(v, list) and all(map(_number, v)))]
    if len(numeric) != 1:
        raise VertexError(
            "INVALID_ARGUMENT",
            f"The model answers with outputs {sorted(prediction)}: name the one to explain in the explanation "
            "metadata's outputs",
        )
    return numeric[0], numeric[0]


def _read(prediction, key):
    return prediction if key is None else prediction[key]


def _top(value) -> list[int]:
    if _number(value):
        return []
    flat = list(value)
    return [max(range(len(flat)), key=flat.__getitem__)]


def _scalar(value, index: list[int]) -> float:
    for i in index:
        value = value[i]
    if not _number(value):
        raise VertexError("INVALID_ARGUMENT", f"The explained output is not a number at index {index}: {value!r}")
    return float(value)


def _display_name(metadata: dict, name: str, index: list[int]) -> str:
    mapping = metadata.get("outputs", {}).get(name, {}).get("indexDisplayNameMapping")
    return str(mapping[index[0]]) if isinstance(mapping, list) and index[0] < len(mapping) else ""


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
