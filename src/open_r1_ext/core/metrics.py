"""Logging of a trainer's own metrics, the way TRL's `GRPOTrainer.log` does it, for trainers that are not GRPO's.

Trainers collect per-step values in `self._metrics[mode][key]` (lists) and `log` averages them: NaN values (a reward
that was None for a whole batch, say) are left out of the mean, a key with no valid value logs None (JSON loggers
reject NaN), and in evaluation every key gets the `eval_` prefix so it never lands under a training key.
"""

from __future__ import annotations

import math
from collections import defaultdict


def new_metrics() -> dict[str, defaultdict]:
    """`{"train": defaultdict(list), "eval": defaultdict(list)}`, the layout of `GRPOTrainer._metrics`."""
    return {"train": defaultdict(list), "eval": defaultdict(list)}


def average_metrics(values: dict[str, list[float]], mode: str) -> dict[str, float | None]:
    """NaN-safe means of `values`; keys prefixed `eval_` when `mode == "eval"` (as TRL's `GRPOTrainer.log`)."""
    out: dict[str, float | None] = {}
    for key, vals in values.items():
        valid = [float(v) for v in vals if not math.isnan(float(v))]
        out[key] = sum(valid) / len(valid) if valid else None
    if mode == "eval":
        out = {f"eval_{key}": v for key, v in out.items()}
    return out
