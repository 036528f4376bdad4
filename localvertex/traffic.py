"""Endpoint traffic splits, with Vertex AI's rules (DeployModelRequest, UndeployModelRequest, UpdateEndpoint)."""

from __future__ import annotations

import random

from localvertex.errors import VertexError

NEW_MODEL_KEY = "0"  # in a deploy request, "the DeployedModel being created now"


def deploy_split(
    current: dict[str, int], requested: dict[str, int], new_id: str, deployed: set[str], private: bool
) -> dict[str, int]:
    """The endpoint's split after deploying `new_id`; an empty request leaves it as it is, as on Vertex AI (so a
    first model deployed with no split gets no traffic until the split is updated)."""
    if not requested:
        return dict(current)
    split = {new_id if key == NEW_MODEL_KEY else key: value for key, value in requested.items()}
    return _checked(split, deployed | {new_id})


def update_split(requested: dict[str, int], deployed: set[str]) -> dict[str, int]:
    """A split set with `Endpoint.update`: empty (no traffic), or whole percentages of deployed models summing to 100."""
    return _checked(dict(requested), deployed) if requested else {}


def undeploy_split(
    current: dict[str, int], requested: dict[str, int], removed: str, remaining: set[str]
) -> dict[str, int]:
    """The split after undeploying `removed`: it must not keep traffic, and the rest must still sum to 100."""
    if not remaining:
        return {}
    if requested:
        if requested.get(removed, 0):
            raise VertexError(
                "INVALID_ARGUMENT",
                f"trafficSplit gives {requested[removed]}% to DeployedModel {removed}, which is being undeployed",
            )
        return _checked({k: v for k, v in requested.items() if k != removed}, remaining)
    if current.get(removed, 0):
        raise VertexError(
            "FAILED_PRECONDITION",
            f"DeployedModel {removed} still receives {current[removed]}% of the traffic: pass a trafficSplit that moves it to the others",
        )
    return {k: v for k, v in current.items() if k != removed}


def _checked(split: dict[str, int], known: set[str]) -> dict[str, int]:
    unknown = sorted(set(split) - known)
    if unknown:
        raise VertexError(
            "INVALID_ARGUMENT", f"trafficSplit names DeployedModels {unknown} that are not on this endpoint"
        )
    if any(not isinstance(v, int) or v < 0 or v > 100 for v in split.values()):
        raise VertexError("INVALID_ARGUMENT", f"trafficSplit values must be whole percentages from 0 to 100: {split}")
    if sum(split.values()) != 100:
        raise VertexError(
            "INVALID_ARGUMENT", f"trafficSplit must sum to 100, but {split} sums to {sum(split.values())}"
        )
    return split


def pick(split: dict[str, int], rng: random.Random | None = None) -> str:
    """A DeployedModel id drawn with the split's weights, as Vertex routes each prediction."""
    ids = [k for k, v in split.items() if v > 0]
    if not ids:
        raise VertexError(
            "FAILED_PRECONDITION",
            "The endpoint has no traffic split to route the prediction: deploy a model with traffic",
        )
    return (rng or random).choices(ids, weights=[split[k] for k in ids])[0]
