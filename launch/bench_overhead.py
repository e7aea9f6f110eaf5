"""Per-step overhead of the GRPO extensions against vanilla `GRPOTrainer`, measured in one process.

    OMP_NUM_THREADS=1 python launch/bench_overhead.py [--steps 30] [--rounds 4]

Every variant trains the same built-in model on `recipes/testbed_scratch.yaml` (testbed (b)) for `--steps` steps; the
variants run one after another, `--rounds` times over (so load from anything else on the machine falls on all of
them alike), and the table reports the median of TRL's `step_time` over all their steps (the first two of each run
dropped as warm-up) with its ratio to vanilla. Variants:

- `grpo`: TRL's GRPOTrainer (the reference);
- `token_adaptive (off)`: TokenAdaptiveGRPOTrainer with `use_token_adaptive: false` (target ≤ 1.03×);
- `token_adaptive (on)`: the token-adaptive sampler at its defaults (relative branch points, on-policy continuations,
  tree credit): its step time includes its extra `generate` rounds and samples fewer tokens;
- `token_scavenger two_level`: TokenScavenger's two-level advantages only, no carousel (target ≤ 1.03×);
- `token_scavenger two_level+carousel`: the same plus the carousel at its defaults (one-sided pull, 8 replayed
  rollouts a step; target ≤ 1.15×);
- `... (replay 16)`: the carousel with the seed's 16 replayed rollouts a step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path


os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402


RECIPE = str(ROOT / "recipes" / "testbed_scratch.yaml")
TWO_LEVEL = ["--advantage_estimator", "two_level", "--grouping_key", "prefix", "--prefix_tokens", "16"]
TWO_LEVEL += ["--ce_loss_weight", "0", "--rl_warmup_steps", "0", "--rl_ramp_steps", "0", "--grpo_loss_weight", "1.0"]
TWO_LEVEL += ["--use_adaptive_entropy", "false"]
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "grpo": ("grpo", []),
    "token_adaptive (off)": ("token_adaptive", ["--use_token_adaptive", "false"]),
    "token_scavenger two_level": ("token_scavenger", [*TWO_LEVEL, "--carousel_weight", "0"]),
    "token_adaptive (on)": ("token_adaptive", []),  # the defaults: relative branching, on-policy, tree credit
    "token_scavenger two_level+carousel": ("token_scavenger", [*TWO_LEVEL, "--carousel_weight", "0.1"]),
    "token_scavenger two_level+carousel (replay 16)": (
        "token_scavenger",
        [*TWO_LEVEL, "--carousel_weight", "0.1", "--carousel_batch_size", "16"],
    ),
}


def step_times(trainer_type: str, extra: list[str], steps: int, out: str, recipe: str = RECIPE) -> list[float]:
    """TRL's `step_time` of each step of one in-process run of `trainer_type` on `recipe` (first two dropped)."""
    from transformers import set_seed

    from open_r1_ext.core.data import load_datasets
    from open_r1_ext.core.rewards import get_reward_funcs
    from open_r1_ext.grpo import get_model_and_tokenizer, parse_args
    from open_r1_ext.trainers import get_trainer_classes

    argv = ["--config", recipe, "--trainer_type", trainer_type, "--max_steps", str(steps), "--output_dir", out]
    argv += ["--save_strategy", "no", "--logging_steps", "1", "--disable_tqdm", "true", *extra]
    script_args, training_args, model_args = parse_args(argv)
    set_seed(training_args.seed)
    _, trainer_cls = get_trainer_classes(trainer_type)  # imported first: it may register reward functions
    dataset, _ = load_datasets(script_args)
    model, tokenizer = get_model_and_tokenizer(script_args, training_args, model_args)
    trainer = trainer_cls(
        model=model,
        reward_funcs=get_reward_funcs(script_args.reward_funcs),
        args=training_args,
        train_dataset=dataset[script_args.dataset_train_split],
        processing_class=tokenizer,
    )
    trainer.train()
    return [h["step_time"] for h in trainer.state.log_history if "step_time" in h][2:]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = ap.parse_args(argv)
    if args.steps < 4:
        ap.error(f"--steps must be >= 4 (the first 2 steps of every run are dropped as warm-up), got {args.steps}")
    torch.set_num_threads(1)
    times: dict[str, list[float]] = {v: [] for v in args.variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for v in args.variants:
                trainer_type, extra = VARIANTS[v]
                times[v] += step_times(trainer_type, extra, args.steps, os.path.join(tmp, f"{r}_{len(times[v])}"))
                print(
                    f"round {r + 1}/{args.rounds} {v}: median so far {statistics.median(times[v]):.4f} s", flush=True
                )
    base = statistics.median(times["grpo"]) if "grpo" in times else None
    print(f"\nmedian step_time over {args.rounds} rounds x {args.steps - 2} steps (testbed (b), 64 rollouts a step)")
    print("| variant | s/step (median) | IQR | × vanilla |")
    print("|---|---|---|---|")
    for v, ts in times.items():
        q = statistics.quantiles(ts, n=4)
        ratio = f"{statistics.median(ts) / base:.3f}" if base else "n/a"
        print(f"| {v} | {statistics.median(ts):.4f} | {q[0]:.4f}-{q[2]:.4f} | {ratio} |")


if __name__ == "__main__":
    main()
