"""Run summary: wall time, generated tokens, the reward curve and held-out accuracy curves.

`RunSummaryCallback` collects what `launch/compare.py` tabulates from the metrics the trainer already logs, and,
given a `HeldOutEvaluator`, scores held-out pass@1 every `every` optimizer steps (and before the first and after the
last), so that each run yields accuracy against steps, against generated tokens and against training seconds.
Evaluation time is kept out of the training seconds. Everything lands in `results.json`; `plot_heldout` draws it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

from transformers import TrainerCallback

from .evaluation import score_task, summarize_hits


logger = logging.getLogger(__name__)


@dataclass
class HeldOutEvaluator:
    """Held-out pass@1 on `n` fixed problems of a built-in task: sampled at `temperature` and, optionally, greedy.

    Sampling uses per-problem random streams (`core.evaluation`), so the figure does not depend on batch size or on
    how many processes share the work, and every evaluation of every run with the same `seed` draws the same
    random numbers. With several processes each scores a shard of the problems and the hits are gathered.
    """

    tokenizer: object
    task: str
    n: int = 512
    seed: int = 0
    temperature: float = 1.0
    num_samples: int = 1
    greedy: bool = True
    every: int = 0

    def __call__(self, model) -> dict[str, float]:
        from accelerate import PartialState
        from accelerate.utils import gather_object

        state = PartialState()
        shard = (state.process_index, state.num_processes)
        out: dict[str, float] = {}
        settings = [("pass@1", self.temperature, self.num_samples)]
        if self.greedy:
            settings.append(("greedy", 0.0, 1))
        for name, temperature, k in settings:
            _, hits = score_task(model, self.tokenizer, self.task, self.n, self.seed, temperature, k, shard=shard)
            if state.num_processes > 1:
                hits = gather_object([hits])
                hits = [h for part in hits for h in part]
            out[name] = summarize_hits(hits)["pass@1"]
        return out


class RunSummaryCallback(TrainerCallback):
    """Training seconds, generated tokens and the reward curve, plus held-out curves when given an evaluator.

    Generated tokens per logging window are `completions/mean_length` times the completions sampled in that window
    (`per_device_train_batch_size × world_size × gradient_accumulation_steps / num_iterations` per optimizer step).
    A trainer that samples a different number of tokens than it trains on (token-adaptive resampling) logs
    `adaptive/generated_tokens` itself, and that figure is used instead. An evaluation point's token count is the
    cumulative count at its step (exact with `logging_steps: 1`; interpolated inside a longer logging window).
    """

    def __init__(self, evaluator: HeldOutEvaluator | None = None):
        self.evaluator = evaluator
        self.generated_tokens = 0.0
        self.train_seconds = 0.0
        self.eval_seconds = 0.0
        self.curve: list[dict] = []
        self.eval_curve: list[dict] = []
        self._t0: float | None = None
        self._last_step = 0
        self._model = None
        self._seconds_before = 0.0  # restored from a checkpoint on resume
        self._eval_before = 0.0
        self.zero_variance_windows = 0

    # -- time ---------------------------------------------------------------------------------------------------
    def _seconds(self) -> float:
        """Training seconds: before a resume (restored) plus wall time since training began, minus evaluation."""
        if self._t0 is None:
            return self._seconds_before
        return self._seconds_before + time.perf_counter() - self._t0 - (self.eval_seconds - self._eval_before)

    # -- checkpoints: a resumed run's results cover the whole run -------------------------------------------------
    STATE_FILE = "open_r1_ext_run_summary.json"

    def state_dict(self) -> dict:
        return {
            "generated_tokens": self.generated_tokens,
            "train_seconds": self._seconds(),
            "eval_seconds": self.eval_seconds,
            "curve": self.curve,
            "eval_curve": self.eval_curve,
            "zero_variance_windows": self.zero_variance_windows,
        }

    def load(self, checkpoint: str) -> bool:
        """Restore the curves, token count and seconds saved with `checkpoint` (False when it has none)."""
        path = Path(checkpoint) / self.STATE_FILE
        if not path.exists():
            return False
        state = json.loads(path.read_text())
        self.generated_tokens = float(state["generated_tokens"])
        self._seconds_before = self.train_seconds = float(state["train_seconds"])
        self.eval_seconds = self._eval_before = float(state["eval_seconds"])
        self.curve, self.eval_curve = list(state["curve"]), list(state["eval_curve"])
        self.zero_variance_windows = int(state.get("zero_variance_windows", 0))
        return True

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / self.STATE_FILE).write_text(json.dumps(_finite(self.state_dict())))

    # -- held-out evaluation ------------------------------------------------------------------------------------
    def _evaluate(self, model, step: int) -> None:
        seconds = self._seconds()  # training seconds up to this point, before the evaluation's own time
        t = time.perf_counter()
        scores = self.evaluator(model)
        self.eval_seconds += time.perf_counter() - t
        point = {"step": step, "generated_tokens": None, "seconds": seconds if step else 0.0, **scores}
        if step == self._last_step:  # the tokens up to this step are already counted
            point["generated_tokens"] = self.generated_tokens
        self.eval_curve.append(point)
        greedy = f", greedy {scores['greedy']:.3f}" if "greedy" in scores else ""
        what = "held-out accuracy before training" if step == 0 else f"step {step}: held-out pass@1"
        print(f"[eval] {what}: {scores['pass@1']:.3f}{greedy}", flush=True)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._t0 = time.perf_counter()
        self._last_step = state.global_step
        self._model = model
        if self.evaluator is not None and state.global_step == 0 and not self.eval_curve:
            self._evaluate(model, 0)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.evaluator is None:
            return
        every, step = self.evaluator.every, state.global_step
        # the last step is scored here too, before its checkpoint is saved, so a resumed run keeps that point
        if (every and step % every == 0) or step == state.max_steps:
            self._evaluate(model if model is not None else self._model, step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "reward" not in logs:
            return
        if logs.get("frac_reward_zero_std") == 1.0:  # every group of the window had one reward: no signal at all
            self.zero_variance_windows += 1
            if self.zero_variance_windows in (1, 10, 100, 1000):
                logger.warning(
                    "Step %d: every prompt group of this logging window has zero reward variance, so every advantage "
                    "is 0 and GRPO learns nothing from it (%d such windows so far); check the reward functions, the "
                    "task's difficulty or num_generations",
                    state.global_step,
                    self.zero_variance_windows,
                )
        steps = max(state.global_step - self._last_step, 1)
        before, first_step = self.generated_tokens, self._last_step
        self._last_step = state.global_step
        if "adaptive/generated_tokens" in logs:
            # logged as a per-step mean over the window
            self.generated_tokens += logs["adaptive/generated_tokens"] * steps
        elif "completions/mean_length" in logs:
            per_step = args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps
            per_step /= max(getattr(args, "num_iterations", 1), 1)
            self.generated_tokens += logs["completions/mean_length"] * per_step * steps
        for point in self.eval_curve:  # evaluation points inside this logging window
            if point["generated_tokens"] is None and first_step < point["step"] <= state.global_step:
                frac = (point["step"] - first_step) / steps
                point["generated_tokens"] = before + frac * (self.generated_tokens - before)
        self.curve.append(
            {
                "step": state.global_step,
                "reward": logs["reward"],
                "generated_tokens": self.generated_tokens,
                "seconds": self._seconds(),
            }
        )

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self._t0 is not None:
            self.train_seconds = self._seconds()
        done = {p["step"] for p in self.eval_curve}
        if self.evaluator is not None and state.global_step not in done:
            self._evaluate(model if model is not None else self._model, state.global_step)
        for point in self.eval_curve:
            if point["generated_tokens"] is None:
                point["generated_tokens"] = self.generated_tokens

    def heldout_results(self) -> dict:
        """`accuracy_before/after` (sampled) and `greedy_before/after` from the held-out curve."""
        out: dict = {}
        if not self.eval_curve:
            return out
        first, last = self.eval_curve[0], self.eval_curve[-1]
        if first["step"] == 0:
            out["accuracy_before"] = first["pass@1"]
            if "greedy" in first:
                out["greedy_before"] = first["greedy"]
        out["accuracy_after"] = last["pass@1"]
        if "greedy" in last:
            out["greedy_after"] = last["greedy"]
        return out


def _finite(x):
    """JSON has no Infinity or NaN: such values are written as null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def write_results(output_dir: str, summary: RunSummaryCallback, extra: dict) -> Path:
    out = Path(output_dir) / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "train_seconds": summary.train_seconds,
        "eval_seconds": summary.eval_seconds,
        "generated_tokens": summary.generated_tokens,
        "final_reward": summary.curve[-1]["reward"] if summary.curve else None,
        "curve": summary.curve,
        "eval_curve": summary.eval_curve,
        "zero_variance_windows": summary.zero_variance_windows,
        **summary.heldout_results(),
        **extra,
    }
    out.write_text(json.dumps(_finite(payload), indent=2))
    return out


def _running_mean(values: list[float], window: int) -> list[float]:
    return [
        sum(values[max(0, i - window + 1) : i + 1]) / len(values[max(0, i - window + 1) : i + 1])
        for i in range(len(values))
    ]


def plot_reward(curve: list[dict], path: str | Path, title: str = "reward per step") -> Path | None:
    curve = [c for c in curve if isinstance(c.get("reward"), (int, float)) and math.isfinite(c["reward"])]
    if not curve:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, rewards = [c["step"] for c in curve], [c["reward"] for c in curve]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, rewards, marker=".", alpha=0.35, label="per step")
    window = max(1, min(20, len(rewards) // 5))
    if window > 1:  # one step's reward is a mean over a few dozen samples: the trend needs smoothing to be seen
        ax.plot(steps, _running_mean(rewards, window), linewidth=2, label=f"mean of last {window}")
        ax.legend()
    ax.set_xlabel("step")
    ax.set_ylabel("mean reward")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_heldout(eval_curve: list[dict], path: str | Path, title: str = "held-out accuracy") -> Path | None:
    """Held-out pass@1 (sampled, and greedy when present) against steps, generated tokens and training seconds."""
    if not eval_curve:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
    for ax, key, label in zip(
        axes, ("step", "generated_tokens", "seconds"), ("step", "generated tokens", "training s")
    ):
        xs = [p[key] for p in eval_curve]
        ax.plot(xs, [p["pass@1"] for p in eval_curve], marker="o", label="pass@1 (sampled)")
        if "greedy" in eval_curve[0]:
            ax.plot(xs, [p.get("greedy") for p in eval_curve], marker="s", alpha=0.7, label="greedy")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out accuracy")
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
