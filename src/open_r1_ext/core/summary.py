"""Run summary: wall time, generated tokens and the reward curve, written to `results.json` and `reward.png`."""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback


class RunSummaryCallback(TrainerCallback):
    """Collects what `launch/compare_strategies.sh` tabulates, from the metrics the trainer already logs.

    Generated tokens per logging window are `completions/mean_length` times the completions sampled in that window
    (`per_device_train_batch_size × world_size × gradient_accumulation_steps / num_iterations` per optimizer step).
    A trainer that samples a different number of tokens than it trains on (token-adaptive resampling) logs
    `adaptive/generated_tokens` itself, and that figure is used instead.
    """

    def __init__(self):
        self.generated_tokens = 0.0
        self.train_seconds = 0.0
        self.curve: list[dict] = []
        self._t0: float | None = None
        self._last_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()
        self._last_step = state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "reward" not in logs:
            return
        steps = max(state.global_step - self._last_step, 1)
        self._last_step = state.global_step
        if "adaptive/generated_tokens" in logs:
            # logged as a per-step mean over the window
            self.generated_tokens += logs["adaptive/generated_tokens"] * steps
        elif "completions/mean_length" in logs:
            per_step = args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps
            per_step /= max(getattr(args, "num_iterations", 1), 1)
            self.generated_tokens += logs["completions/mean_length"] * per_step * steps
        self.curve.append(
            {
                "step": state.global_step,
                "reward": logs["reward"],
                "generated_tokens": self.generated_tokens,
                "seconds": time.perf_counter() - (self._t0 or time.perf_counter()),
            }
        )

    def on_train_end(self, args, state, control, **kwargs):
        if self._t0 is not None:
            self.train_seconds = time.perf_counter() - self._t0


def write_results(output_dir: str, summary: RunSummaryCallback, extra: dict) -> Path:
    out = Path(output_dir) / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "train_seconds": summary.train_seconds,
        "generated_tokens": summary.generated_tokens,
        "final_reward": summary.curve[-1]["reward"] if summary.curve else None,
        "curve": summary.curve,
        **extra,
    }
    out.write_text(json.dumps(payload, indent=2))
    return out


def plot_reward(curve: list[dict], path: str | Path, title: str = "reward per step") -> Path | None:
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
        smooth = [
            sum(rewards[max(0, i - window + 1) : i + 1]) / len(rewards[max(0, i - window + 1) : i + 1])
            for i in range(len(rewards))
        ]
        ax.plot(steps, smooth, linewidth=2, label=f"mean of last {window}")
        ax.legend()
    ax.set_xlabel("step")
    ax.set_ylabel("mean reward")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
