"""Adaptive KL coefficient shared by the trainers that steer `beta` toward a target KL."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class AdaptiveKLController:
    """Proportional KL control (Ziegler et al. 2019, arXiv:1909.08593).

    After each step `beta *= 1 + rate * clip(kl / target - 1, -0.2, 0.2)`: it grows while the measured KL is above
    `target` and shrinks while below, by at most `0.2 * rate` per step. A non-finite KL leaves `beta` unchanged.
    """

    beta: float
    target: float
    rate: float = 0.1

    def update(self, kl: float) -> float:
        if math.isfinite(kl):
            self.beta *= 1.0 + self.rate * min(0.2, max(-0.2, kl / self.target - 1.0))
        return self.beta

    def state_dict(self) -> dict:
        return {"beta": self.beta, "target": self.target, "rate": self.rate}

    def load_state_dict(self, state: dict) -> None:
        self.beta, self.target, self.rate = float(state["beta"]), float(state["target"]), float(state["rate"])
