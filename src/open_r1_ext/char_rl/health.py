"""The seed's health monitor: calibration, confidence collapse and gradient stability, as `health/*` metrics.

- `health/ece`: expected calibration error of the top-1 prediction (15 equal-width confidence bins,
  sum_b n_b/N |acc_b - conf_b|) on the training positions of each step.
- `health/confidence`, `health/accuracy`, `health/overconfidence` (= confidence - accuracy): batch means.
- `health/confidence_collapse`: 1 when, over the last `window` steps, mean max-probability rose by more than
  `collapse_conf_rise` while accuracy rose by less than `collapse_acc_rise` (the model grows sure without getting
  better: the failure of the public version), else 0.
- `health/grad_norm`, `health/grad_norm_cv` (std / mean of the pre-clip gradient norm over the window) and
  `health/grad_spike` (the last norm divided by the window's median).

A warning is logged (at most once per `window` steps per kind) when ECE exceeds `ece_warn`, when collapse is
detected, or when `grad_norm_cv` exceeds `grad_cv_warn` or a spike exceeds `grad_spike_warn`.
"""

from __future__ import annotations

import logging
import statistics
from collections import deque
from dataclasses import asdict, dataclass

import torch


logger = logging.getLogger(__name__)


def expected_calibration_error(confidence: torch.Tensor, correct: torch.Tensor, n_bins: int = 15) -> float:
    """ECE of top-1 predictions. confidence: `(N,)` max-probabilities in [0, 1]; correct: `(N,)` bool/0-1."""
    confidence = confidence.detach().float().flatten()
    correct = correct.detach().float().flatten()
    if confidence.numel() == 0:
        return 0.0
    bins = (confidence * n_bins).long().clamp_(0, n_bins - 1)
    conf_sum = torch.bincount(bins, weights=confidence, minlength=n_bins)
    acc_sum = torch.bincount(bins, weights=correct, minlength=n_bins)
    return float((acc_sum - conf_sum).abs().sum() / confidence.numel())


@dataclass
class HealthThresholds:
    window: int = 50
    ece_warn: float = 0.1
    collapse_conf_rise: float = 0.05
    collapse_acc_rise: float = 0.01
    grad_cv_warn: float = 1.0
    grad_spike_warn: float = 10.0


class HealthMonitor:
    """Keeps a window of per-step confidence, accuracy and gradient norms; `observe_*` return `health/*` metrics."""

    def __init__(self, thresholds: HealthThresholds | None = None):
        self.th = thresholds or HealthThresholds()
        self.conf: deque[float] = deque(maxlen=self.th.window)
        self.acc: deque[float] = deque(maxlen=self.th.window)
        self.grad: deque[float] = deque(maxlen=self.th.window)
        self.step = 0
        self.warnings: dict[str, int] = {}  # kind -> count
        self._last_warned: dict[str, int] = {}

    def _warn(self, kind: str, msg: str) -> None:
        self.warnings[kind] = self.warnings.get(kind, 0) + 1
        if self.step - self._last_warned.get(kind, -(10**9)) >= self.th.window:
            self._last_warned[kind] = self.step
            logger.warning("[health] step %d: %s", self.step, msg)

    @torch.no_grad()
    def observe_predictions(self, probs: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """probs: `(..., V)` predicted distributions; y: `(...)` targets. Call once per optimizer step."""
        self.step += 1
        conf, pred = probs.max(-1)
        correct = pred == y
        ece = expected_calibration_error(conf, correct)
        c, a = float(conf.float().mean()), float(correct.float().mean())
        self.conf.append(c)
        self.acc.append(a)
        collapse = 0.0
        if len(self.conf) == self.conf.maxlen:
            half = len(self.conf) // 2
            conf_rise = statistics.fmean(list(self.conf)[half:]) - statistics.fmean(list(self.conf)[:half])
            acc_rise = statistics.fmean(list(self.acc)[half:]) - statistics.fmean(list(self.acc)[:half])
            if conf_rise > self.th.collapse_conf_rise and acc_rise < self.th.collapse_acc_rise:
                collapse = 1.0
                self._warn(
                    "confidence_collapse",
                    f"confidence collapse: mean max-prob rose {conf_rise:+.3f} over {len(self.conf)} steps "
                    f"while accuracy moved {acc_rise:+.3f}",
                )
        if ece > self.th.ece_warn:
            self._warn(
                "ece", f"calibration error {ece:.3f} > {self.th.ece_warn} (confidence {c:.3f}, accuracy {a:.3f})"
            )
        return {
            "health/ece": ece,
            "health/confidence": c,
            "health/accuracy": a,
            "health/overconfidence": c - a,
            "health/confidence_collapse": collapse,
        }

    def observe_grad_norm(self, norm: float) -> dict[str, float]:
        """Pre-clip global gradient norm of one optimizer step."""
        norm = float(norm)
        self.grad.append(norm)
        mean = statistics.fmean(self.grad)
        cv = statistics.pstdev(self.grad) / mean if len(self.grad) > 1 and mean > 0 else 0.0
        median = statistics.median(self.grad)
        spike = norm / median if median > 0 else 1.0
        if len(self.grad) >= 10:
            if cv > self.th.grad_cv_warn:
                self._warn("grad_cv", f"unstable gradients: norm std/mean {cv:.2f} > {self.th.grad_cv_warn}")
            if spike > self.th.grad_spike_warn:
                self._warn("grad_spike", f"gradient spike: norm {norm:.3g} is {spike:.1f}x the window median")
        return {"health/grad_norm": norm, "health/grad_norm_cv": cv, "health/grad_spike": spike}

    def state_dict(self) -> dict:
        return {
            "thresholds": asdict(self.th),
            "conf": list(self.conf),
            "acc": list(self.acc),
            "grad": list(self.grad),
            "step": self.step,
            "warnings": dict(self.warnings),
            "last_warned": dict(self._last_warned),
        }

    def load_state_dict(self, state: dict) -> None:
        self.th = HealthThresholds(**state.get("thresholds", asdict(self.th)))
        self.conf = deque(state["conf"], maxlen=self.th.window)
        self.acc = deque(state["acc"], maxlen=self.th.window)
        self.grad = deque(state["grad"], maxlen=self.th.window)
        self.step = int(state["step"])
        self.warnings = dict(state.get("warnings", {}))
        self._last_warned = dict(state.get("last_warned", {}))
