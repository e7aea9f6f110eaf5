"""Benchmark TokenScavenger's advantage shaping against plain GRPO on the built-in running-sum task.

    OMP_NUM_THREADS=1 python launch/bench_token_scavenger.py [--steps 80] [--seeds 0 1 2] [--out runs/bench_ts]

Four variants, each run with `src/open_r1_ext/grpo.py` on `recipes/grpo_builtin_baseline.yaml` (same warm-started
tiny model, data, lr 1e-4, batch 64 = 8 prompts x 8 generations) for the same number of steps and seeds:

1. `baseline`: TRL's `GRPOTrainer` (`trainer_type: grpo`).
2. `two_level`: `TokenScavengerGRPOTrainer` with the two-level estimator, `prefix` key (first 8 tokens), omega 1,
   clamp 5. Everything else TokenScavenger adds is off here so that only the advantages differ: CE anchor 0,
   no RL warm-up (GRPO weight 1 from step 0), carousel 0, TRL's adaptive entropy off.
3. `two_level+carousel`: 2 with `carousel_weight 0.1` (size 256, threshold 1.0 = exact match, replay batch 16).
4. `two_level+token_adaptive`: 2 with token-adaptive sampling (thresholds of `recipes/token_adaptive_builtin.yaml`);
   the `prefix` key then groups rollouts by the prefix they were resampled from.

Reports held-out accuracy after training (256 problems) and per-step time ratio to the baseline of the same seed,
mean ± std over seeds, plus the accuracy difference to the baseline (paired by seed). Runs go one after another
(parallel runs on a small CPU only slow each other down); each writes `<out>/<variant>/seed_<s>/results.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
RECIPE = "recipes/grpo_builtin_baseline.yaml"
TWO_LEVEL = [
    "--trainer_type", "token_scavenger",
    "--advantage_estimator", "two_level",
    "--grouping_key", "prefix",
    "--prefix_tokens", "8",
    "--micro_weight", "1.0",
    "--advantage_clamp_max", "5.0",
    "--ce_loss_weight", "0",
    "--rl_warmup_steps", "0",
    "--rl_ramp_steps", "0",
    "--grpo_loss_weight", "1.0",
    "--carousel_weight", "0",
    "--use_adaptive_entropy", "false",
]  # fmt: skip
VARIANTS: dict[str, list[str]] = {
    "baseline": [],
    "two_level": TWO_LEVEL,
    "two_level+carousel": [*TWO_LEVEL, "--carousel_weight", "0.1"],
    "two_level(answer)": [*TWO_LEVEL, "--grouping_key", "answer"],
    "two_level+token_adaptive": [
        *TWO_LEVEL,
        "--use_token_adaptive",
        "true",
        "--uncertainty_threshold",
        "0.7",
        "--entropy_threshold",
        "2.0",
        "--min_prefix_length",
        "12",
        "--max_resamples_per_prefix",
        "3",
        "--adaptive_temperature_scale",
        "1.2",
        "--first_rollout_fraction",
        "0.5",
    ],  # fmt: skip
}


def mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def run_one(variant: str, seed: int, steps: int, out: Path) -> dict:
    run_dir = out / variant.replace("+", "_") / f"seed_{seed}"
    cmd = [sys.executable, "src/open_r1_ext/grpo.py", "--config", RECIPE, *VARIANTS[variant]]
    cmd += ["--seed", str(seed), "--max_steps", str(steps), "--output_dir", str(run_dir)]
    cmd += ["--resume", "false", "--save_strategy", "no", "--plot", "false", "--log_completions", "false"]
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} seed {seed} failed:\n{proc.stderr[-3000:]}")
    res = json.loads((run_dir / "results.json").read_text())
    print(
        f"  {variant:26s} seed {seed}: acc {res['accuracy_before']:.3f} -> {res['accuracy_after']:.3f}, "
        f"{res['train_seconds'] / steps:.3f} s/step ({time.time() - t0:.0f} s wall)",
        flush=True,
    )
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="runs/bench_token_scavenger")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = ap.parse_args(argv)
    out = ROOT / args.out
    results: dict[str, dict[int, dict]] = {v: {} for v in args.variants}
    for seed in args.seeds:  # seed-major, so an interrupted run still has complete pairs
        for variant in args.variants:
            results[variant][seed] = run_one(variant, seed, args.steps, out)

    base = results[args.variants[0]]
    rows = []
    for variant in args.variants:
        runs = results[variant]
        acc = [runs[s]["accuracy_after"] for s in args.seeds]
        dacc = [runs[s]["accuracy_after"] - base[s]["accuracy_after"] for s in args.seeds]
        step = [runs[s]["train_seconds"] / args.steps for s in args.seeds]
        ratio = [step[i] / (base[s]["train_seconds"] / args.steps) for i, s in enumerate(args.seeds)]
        rows.append(
            {
                "variant": variant,
                "acc_before": mean_std([runs[s]["accuracy_before"] for s in args.seeds]),
                "acc_after": mean_std(acc),
                "acc_diff_vs_baseline": mean_std(dacc),
                "sec_per_step": mean_std(step),
                "time_ratio": mean_std(ratio),
            }
        )
    header = (
        f"| variant | acc before | acc after ({args.steps} steps) | Δ acc vs baseline | s/step | time ratio |\n"
        "|---|---|---|---|---|---|"
    )
    print(f"\nrunning_sum, {len(args.seeds)} seeds {args.seeds}, mean ± std over seeds\n\n{header}")
    for r in rows:
        cells = [r["variant"]] + [
            f"{m:.3f} ± {s:.3f}"
            for m, s in (
                r[k] for k in ("acc_before", "acc_after", "acc_diff_vs_baseline", "sec_per_step", "time_ratio")
            )
        ]
        print("| " + " | ".join(cells) + " |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps({"steps": args.steps, "seeds": args.seeds, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
