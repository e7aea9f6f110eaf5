"""The seed's health monitor: calibration, confidence collapse and gradient stability, as `health/*` metrics.

- `health/ece`: expected calibration error of the top-1 prediction (15 equal-width confidence bins,
  sum_b n_b/N |acc_b - conf_b|) on the training positions of each step. Logged, never warned on: it counts
  under-confidence too, and a model from random weights is under-confident for its first hundreds of steps (its
  max-probability trails the accuracy a unigram guess already has), so on plain CE training it exceeds 0.1 early
  on while nothing is wrong.
- `health/confidence`, `health/accuracy`, `health/overconfidence` (= confidence - accuracy): batch means;
  `health/overconfidence_window`: the mean of `overconfidence` over the last `window` steps.
- `health/confidence_collapse`: 1 when, over the last `window` steps, mean max-probability rose by more than
  `collapse_conf_rise` while accuracy rose by less than `collapse_acc_rise` *and* the model is over-confident
  (window mean of confidence - accuracy above `collapse_overconfidence`): it grows sure without getting better,
  the failure of the public version. Without the last condition a CE model that sharpens its under-confident
  predictions on an accuracy plateau was flagged.
- `health/grad_norm`, `health/grad_norm_cv` (robust coefficient of variation of the pre-clip gradient norm over
  the window: 1.4826 x median absolute deviation / median, which is std / mean for a normal spread; one early
  spike, which plain CE training has in its first tens of steps, cannot push it over the threshold as it pushed
  std / mean) and `health/grad_spike` (the last norm divided by the window's median).

A warning is logged (at most once per `window` steps per kind) when the window's over-confidence exceeds
`overconfidence_warn`, when collapse is detected, or, once the window is full, when `grad_norm_cv` exceeds
`grad_cv_warn` or a spike exceeds `grad_spike_warn`. Calibration: quiet on the CE twin, firing on a game run
with GRPO's `std` normalisation (tests/char_rl/test_health_calibration.py trains both).
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
    overconfidence_warn: float = 0.1
    collapse_conf_rise: float = 0.05
    collapse_acc_rise: float = 0.01
    collapse_overconfidence: float = 0.05
    grad_cv_warn: float = 1.0
    grad_spike_warn: float = 10.0


class HealthMonitor:
    """Keeps a window of per-step confidence, accuracy and gradient norms; `observe_*` return `health/*` metrics."""

    def __init__(self, thresholds: HealthThresholds | None = None):
        self.th = thresholds or HealthThresholds()
        self.conf: deque[float] = deque(maxlen=self.th.window)
        self.acc: deque[float] = deque(maxlen=self.th.window)
        self.over: deque[float] = deque(maxlen=self.th.window)
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
        self.over.append(c - a)
        over_window = statistics.fmean(self.over)
        collapse = 0.0
        if len(self.conf) == self.conf.maxlen:
            half = len(self.conf) // 2
            conf_rise = statistics.fmean(list(self.conf)[half:]) - statistics.fmean(list(self.conf)[:half])
            acc_rise = statistics.fmean(list(self.acc)[half:]) - statistics.fmean(list(self.acc)[:half])
            if (
                conf_rise > self.th.collapse_conf_rise
                and acc_rise < self.th.collapse_acc_rise
                and over_window > self.th.collapse_overconfidence
            ):
                collapse = 1.0
                self._warn(
                    "confidence_collapse",
                    f"confidence collapse: mean max-prob rose {conf_rise:+.3f} over {len(self.conf)} steps "
                    f"while accuracy moved {acc_rise:+.3f} (over-confidence {over_window:+.3f})",
                )
            if over_window > self.th.overconfidence_warn:
                self._warn(
                    "overconfidence",
                    f"over-confidence {over_window:.3f} > {self.th.overconfidence_warn} over {len(self.over)} steps "
                    f"(confidence {c:.3f}, accuracy {a:.3f}, ECE {ece:.3f})",
                )
        return {
            "health/ece": ece,
            "health/confidence": c,
            "health/accuracy": a,
            "health/overconfidence": c - a,
            "health/overconfidence_window": over_window,
            "health/confidence_collapse": collapse,
        }

    def observe_grad_norm(self, norm: float) -> dict[str, float]:
        """Pre-clip global gradient norm of one optimizer step."""
        norm = float(norm)
        self.grad.append(norm)
        median = statistics.median(self.grad)
        mad = statistics.median(abs(g - median) for g in self.grad)
        cv = 1.4826 * mad / median if len(self.grad) > 1 and median > 0 else 0.0
        spike = norm / median if median > 0 else 1.0
        if len(self.grad) == self.grad.maxlen:
            if cv > self.th.grad_cv_warn:
                self._warn(
                    "grad_cv", f"unstable gradients: norm dispersion (MAD/median) {cv:.2f} > {self.th.grad_cv_warn}"
                )
            if spike > self.th.grad_spike_warn:
                self._warn("grad_spike", f"gradient spike: norm {norm:.3g} is {spike:.1f}x the window median")
        return {"health/grad_norm": norm, "health/grad_norm_cv": cv, "health/grad_spike": spike}

    def state_dict(self) -> dict:
        return {
            "thresholds": asdict(self.th),
            "conf": list(self.conf),
            "acc": list(self.acc),
            "over": list(self.over),
            "grad": list(self.grad),
            "step": self.step,
            "warnings": dict(self.warnings),
            "last_warned": dict(self._last_warned),
        }

    def load_state_dict(self, state: dict) -> None:
        known = set(asdict(self.th))  # thresholds a newer version dropped are ignored
        self.th = HealthThresholds(**{k: v for k, v in state.get("thresholds", asdict(self.th)).items() if k in known})
        self.conf = deque(state["conf"], maxlen=self.th.window)
        self.acc = deque(state["acc"], maxlen=self.th.window)
        self.over = deque(
            state.get("over", [c - a for c, a in zip(state["conf"], state["acc"])]), maxlen=self.th.window
        )
        self.grad = deque(state["grad"], maxlen=self.th.window)
        self.step = int(state["step"])
        self.warnings = dict(state.get("warnings", {}))
        self._last_warned = dict(state.get("last_warned", {}))
