"""The optimize step's choice against the configuration it was given, measured side by side on the bench's CNN.

The configuration asks for XLA precompilation at the batch sizes a batching server sends; the step measures every
candidate interleaved and chooses. The row is the chosen candidate's latency over the configured one's, from the
same interleaved rounds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BATCH_SIZES = [1, 8, 32]


def chosen_against_configured(
    model_dir: Path, shape: tuple[int, ...], work: Path, rounds: int | None = None, round_seconds: float | None = None
) -> list[str]:
    """One row for the bench's table: chosen / configured p50 at the largest batch size, with the decision."""
    from components.convert import prepare, reference_predictions
    from components.optimize import optimize_model
    from components.validate import resolve
    from components.warmup import warm
    from vertex_serving.config import DeployConfig

    config = DeployConfig(
        project="bench-project",
        model_dir=str(model_dir),
        model_display_name="bench",
        endpoint_display_name="bench",
        allow_precompilation=True,
        allowed_batch_sizes=tuple(BATCH_SIZES),
        optimization="measure",
    )
    resolved = resolve(config.to_parameters())
    converted = prepare(str(model_dir), work / "optimize-converted", "", "", "")
    instances = np.random.default_rng(3).random((16, *shape), dtype=np.float32).round(4).tolist()
    reference = reference_predictions(converted, instances, ("serve",))
    warm(converted, work / "optimize-warmed", instances, resolved.warmup_batch_sizes)
    found = optimize_model(
        config, resolved.container_args, work / "optimize-warmed", reference, rounds=rounds, round_seconds=round_seconds
    )
    trials = {t.flags: t for t in found.trials}
    chosen, configured = trials[found.decision.chosen], trials[frozenset({"allow_precompilation"})]
    size = BATCH_SIZES[-1]
    return [
        f"CNN, optimize step: chosen `{found.decision.chosen_name}` / configured `allow_precompilation`, p50 at batch {size}",
        f"{chosen.p50_ms[size] / configured.p50_ms[size]:.2f}",
        f"<= 1.00 (chosen {chosen.p50_ms[size]:.2f} ms, configured {configured.p50_ms[size]:.2f} ms; "
        f"{found.decision.reasons[found.decision.chosen_name]})",
    ]
