"""The comparison protocol's statistics: paired differences over seeds, tokens-to-threshold, area under the curve.

Pure functions on `results.json` payloads (see `core.summary`), used by `launch/compare.py` and tested without
training. A comparison pairs runs by seed: the same seed gives the same data order and the same warm start, so
the difference between an arm and the baseline at one seed removes what the seed alone explains, and the spread of
those differences over seeds gives a 95 % Student-t interval. The protocol also runs an A/A arm (the baseline
again with another sampling seed) whose interval must cover 0: that is the check that the interval is honest.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass
class PairedInterval:
    """Mean of paired differences `arm - baseline` over `n` seeds with a two-sided Student-t interval."""

    mean: float
    low: float
    high: float
    n: int
    sd: float

    @property
    def verdict(self) -> str:
        """ "better" / "worse" when the interval excludes 0, "no difference" when it covers 0."""
        if self.n < 2 or not (math.isfinite(self.low) and math.isfinite(self.high)):
            return "too few seeds"
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "no difference"

    def format(self, digits: int = 3, scale: float = 1.0) -> str:
        m, lo, hi = self.mean * scale, self.low * scale, self.high * scale
        return f"{m:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def t_quantile(p: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(p, df))


def paired_interval(arm: list[float], baseline: list[float], confidence: float = 0.95) -> PairedInterval:
    """Student-t interval of the mean paired difference; pairs with a missing value on either side are dropped."""
    if len(arm) != len(baseline):
        raise ValueError(f"paired lists differ in length: {len(arm)} vs {len(baseline)}")
    diffs = [a - b for a, b in zip(arm, baseline) if _finite(a) and _finite(b)]
    n = len(diffs)
    if n == 0:
        return PairedInterval(float("nan"), float("nan"), float("nan"), 0, float("nan"))
    mean = statistics.fmean(diffs)
    if n == 1:
        return PairedInterval(mean, float("-inf"), float("inf"), 1, float("nan"))
    sd = statistics.stdev(diffs)
    half = t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return PairedInterval(mean, mean - half, mean + half, n, sd)


def mean_sd(xs: list[float | None]) -> tuple[float, float]:
    """Mean and *sample* standard deviation of the finite values (nan when none; sd 0 for one value)."""
    xs = [x for x in xs if _finite(x)]
    if not xs:
        return float("nan"), float("nan")
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _points(run: dict, key: str = "generated_tokens", metric: str = "pass@1") -> list[tuple[float, float]]:
    return [(p[key], p[metric]) for p in run.get("eval_curve", []) if _finite(p.get(key)) and _finite(p.get(metric))]


FINAL_WINDOW = 3  # evaluations averaged into "final" accuracy: one evaluation of 512 problems has ~2 points of noise


def final_accuracy(run: dict, metric: str = "pass@1", window: int = FINAL_WINDOW) -> float | None:
    """Mean of the last `window` held-out evaluations (fewer when the curve is shorter; None without a curve).

    One evaluation of 512 problems sampled once has a binomial standard error of ~2 points at pass@1 ~0.5, and the
    policy itself moves between evaluations; averaging the last few is what "final" means in the tables."""
    pts = _points(run, "step", metric)
    if not pts:
        return None
    tail = [y for _, y in pts[-window:]]
    return sum(tail) / len(tail)


def accuracy_at(run: dict, x: float, metric: str = "pass@1", key: str = "generated_tokens") -> float | None:
    """The held-out curve at `x` of `key`, linear between evaluations; None outside the curve's range."""
    pts = sorted(_points(run, key, metric))
    if not pts or x < pts[0][0] or x > pts[-1][0]:
        return None
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return pts[-1][1]


def equal_tokens_pair(
    arm: dict, base: dict, metric: str = "pass@1", window: int = FINAL_WINDOW
) -> tuple[float | None, float | None]:
    """Both runs' accuracy at the same generated-token counts: the last `window` evaluations of whichever run
    sampled fewer tokens, and the other run's curve interpolated at those token counts (each averaged).

    A method that samples fewer tokens per step is compared with the baseline at its own budget, where the
    baseline had the same number of sampled tokens; with equal budgets this is the two final accuracies."""
    ta, tb = arm.get("generated_tokens"), base.get("generated_tokens")
    if not (_finite(ta) and _finite(tb)):
        return None, None
    short, other = (arm, base) if ta <= tb else (base, arm)
    xs = [x for x, _ in sorted(_points(short, "generated_tokens", metric))][-window:]
    if not xs:
        return None, None
    ys_short = [accuracy_at(short, x, metric) for x in xs]
    ys_other = [accuracy_at(other, x, metric) for x in xs]
    if any(y is None for y in ys_short + ys_other):
        return None, None
    a, b = sum(ys_short) / len(xs), sum(ys_other) / len(xs)
    return (a, b) if short is arm else (b, a)


def tokens_to_threshold(run: dict, threshold: float, metric: str = "pass@1") -> float | None:
    """Generated tokens until the held-out curve first reaches `threshold` (linear between evaluation points).

    None when it never does. A curve that starts at or above the threshold needs 0 tokens.
    """
    prev = None
    for x, y in _points(run, "generated_tokens", metric):
        if y >= threshold:
            if prev is None:
                return x
            x0, y0 = prev  # y0 < threshold <= y
            return x0 + (threshold - y0) / (y - y0) * (x - x0)
        prev = (x, y)
    return None


def area_under_curve(run: dict, x_max: float, metric: str = "pass@1", key: str = "generated_tokens") -> float | None:
    """Mean held-out accuracy over [0, x_max] of `key` (trapezoids; the last value held flat past the curve's end).

    Normalised by `x_max`, so it reads as an accuracy: the average a run held over a fixed token budget.
    """
    pts = sorted(_points(run, key, metric))
    if not pts or not (x_max > 0):
        return None
    if pts[0][0] > 0:  # an evaluation before training is at 0; without one, hold the first value back to 0
        pts.insert(0, (0.0, pts[0][1]))
    if pts[-1][0] < x_max:
        pts.append((x_max, pts[-1][1]))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 >= x_max:
            break
        if x1 > x_max:  # clip the last segment at x_max
            y1 = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
            x1 = x_max
        area += (x1 - x0) * (y0 + y1) / 2
    return area / x_max


@dataclass
class ArmSummary:
    """Everything the protocol table prints for one arm, paired by seed with the baseline."""

    name: str
    seeds: list[int]
    acc_before: tuple[float, float]
    acc_final: tuple[float, float]
    greedy_final: tuple[float, float]
    delta_final: PairedInterval
    delta_greedy: PairedInterval
    delta_auc: PairedInterval
    delta_equal_tokens: PairedInterval  # pass@1 at the same generated-token counts (`equal_tokens_pair`)
    tokens_ratio: list[float | None]  # per seed: tokens-to-threshold of the arm / of the baseline
    generated_tokens: tuple[float, float]
    train_seconds: tuple[float, float]
    seconds_per_step: tuple[float, float]
    time_ratio: PairedInterval  # per-seed train-seconds ratio minus 1 (paired against the baseline)

    @property
    def reached(self) -> int:
        return sum(r is not None for r in self.tokens_ratio)

    @property
    def tokens_ratio_median(self) -> float | None:
        """Median over seeds of the tokens-to-threshold ratio, a seed that never reached the threshold counting as
        infinitely many tokens; None when the median itself is one of those (half the seeds or more never did)."""
        if not self.tokens_ratio:
            return None
        rs = [math.inf if r is None else r for r in self.tokens_ratio]
        med = statistics.median(rs)
        return None if math.isinf(med) or math.isnan(med) else med


def summarise(
    runs: dict[str, dict[int, dict]], baseline: str, threshold_margin: float = 0.02, metric: str = "pass@1"
) -> list[ArmSummary]:
    """`runs[arm][seed] -> results.json`; every arm is paired by seed with `baseline` (seeds both have)."""
    base = runs[baseline]
    out = []
    for name, by_seed in runs.items():
        seeds = sorted(s for s in by_seed if s in base)
        arm = [by_seed[s] for s in seeds]
        ref = [base[s] for s in seeds]
        fin = [final_accuracy(r, metric) for r in arm]
        fin_b = [final_accuracy(r, metric) for r in ref]
        gre = [final_accuracy(r, "greedy") for r in arm]
        gre_b = [final_accuracy(r, "greedy") for r in ref]
        budgets = [r.get("generated_tokens") for r in ref]
        auc = [area_under_curve(r, b, metric) if _finite(b) else None for r, b in zip(arm, budgets)]
        auc_b = [area_under_curve(r, b, metric) if _finite(b) else None for r, b in zip(ref, budgets)]
        eq = [equal_tokens_pair(r, rb, metric) for r, rb in zip(arm, ref)]
        ratios = []
        for r, rb, fb in zip(arm, ref, fin_b):
            if fb is None:
                ratios.append(None)
                continue
            t_arm, t_base = (
                tokens_to_threshold(r, fb - threshold_margin, metric),
                tokens_to_threshold(rb, fb - threshold_margin, metric),
            )
            ratios.append(t_arm / t_base if t_arm is not None and t_base else None)
        secs = [r.get("train_seconds") for r in arm]
        secs_b = [r.get("train_seconds") for r in ref]
        steps = [max((p["step"] for p in r.get("curve", [])), default=0) for r in arm]
        out.append(
            ArmSummary(
                name=name,
                seeds=seeds,
                acc_before=mean_sd([r.get("accuracy_before") for r in arm]),
                acc_final=mean_sd(fin),
                greedy_final=mean_sd(gre),
                delta_final=paired_interval(_nan(fin), _nan(fin_b)),
                delta_greedy=paired_interval(_nan(gre), _nan(gre_b)),
                delta_auc=paired_interval(_nan(auc), _nan(auc_b)),
                delta_equal_tokens=paired_interval(_nan([a for a, _ in eq]), _nan([b for _, b in eq])),
                tokens_ratio=ratios,
                generated_tokens=mean_sd([r.get("generated_tokens") for r in arm]),
                train_seconds=mean_sd(secs),
                seconds_per_step=mean_sd([s / n if _finite(s) and n else None for s, n in zip(secs, steps)]),
                time_ratio=paired_interval(
                    [a / b if _finite(a) and _finite(b) and b else float("nan") for a, b in zip(secs, secs_b)],
                    [1.0] * len(secs),
                ),
            )
        )
    return out


def _nan(xs: list[float | None]) -> list[float]:
    return [x if _finite(x) else float("nan") for x in xs]
