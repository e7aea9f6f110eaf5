"""Benchmark: plain GRPO vs token-adaptive GRPO on a built-in task, several seeds, equal optimizer steps.

    OMP_NUM_THREADS=1 python launch/bench_token_adaptive.py [--seeds 0 1 2] [--max_steps 100] [--out runs/bench_ta]

1. Accuracy and tokens: for each seed, `src/open_r1_ext/grpo.py` runs the baseline recipe and the token-adaptive
   recipe (same model, data, steps and learning rate), one after the other; each writes `results.json` with the
   held-out accuracy before/after, the tokens actually sampled (`adaptive/generated_tokens` for the adaptive run)
   and the training wall time.
2. Overhead with adaptation off: in this process, `GRPOTrainer` and `TokenAdaptiveGRPOTrainer` with
   `use_token_adaptive: false` train the same model on the baseline recipe for `--timing_steps` steps each,
   alternating `--timing_rounds` times (so load on a shared machine hits both alike); the table reports the
   median of TRL's `step_time` over all their steps (the first two of each run dropped).

Prints one table (mean ± std over seeds, ratios to the baseline) and writes `<out>/bench.json`.
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


os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def mean_std(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return float("nan"), float("nan")
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def run_recipe(recipe: str, seed: int, out: Path, extra: list[str]) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(ROOT / "src/open_r1_ext/grpo.py"), "--config", recipe, "--seed", str(seed)]
    cmd += ["--output_dir", str(out), "--resume", "false", "--save_strategy", "no", "--plot", "false", *extra]
    t0 = time.perf_counter()
    with open(out / "log.txt", "w") as log:
        subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    res = json.loads((out / "results.json").read_text())
    res["process_seconds"] = time.perf_counter() - t0
    return res


def step_times(trainer_type: str, recipe: str, steps: int, out: Path) -> list[float]:
    """Median-ready `step_time`s of one short in-process run of `trainer_type` on `recipe` (adaptation off)."""
    from bench_overhead import step_times as timed_run  # launch/ is on sys.path when this script runs

    extra = ["--use_token_adaptive", "false"] if trainer_type == "token_adaptive" else []
    return timed_run(trainer_type, extra, steps, str(out), recipe=recipe)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default="recipes/grpo_builtin_baseline.yaml")
    ap.add_argument("--adaptive", default="recipes/token_adaptive_builtin.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--max_steps", type=int, default=100)
    ap.add_argument("--learning_rate", type=float, default=1e-4)
    ap.add_argument("--timing_steps", type=int, default=12)
    ap.add_argument("--timing_rounds", type=int, default=3)
    ap.add_argument("--out", default="runs/bench_ta")
    args = ap.parse_args(argv)
    out = ROOT / args.out
    extra = ["--max_steps", str(args.max_steps), "--learning_rate", str(args.learning_rate)]
    t_start = time.perf_counter()

    runs: dict[str, list[dict]] = {"grpo": [], "token_adaptive": []}
    for seed in args.seeds:
        for name, recipe in (("grpo", args.baseline), ("token_adaptive", args.adaptive)):
            res = run_recipe(recipe, seed, out / name / f"seed_{seed}", extra)
            runs[name].append(res)
            print(
                f"[bench] {name:14s} seed {seed}: acc {res.get('accuracy_before', float('nan')):.3f} -> "
                f"{res.get('accuracy_after', float('nan')):.3f}, tokens {res['generated_tokens']:.0f}, "
                f"train {res['train_seconds']:.1f}s",
                flush=True,
            )

    times: dict[str, list[float]] = {"grpo": [], "token_adaptive": []}
    for r in range(args.timing_rounds):
        for name in ("grpo", "token_adaptive"):
            times[name] += step_times(name, args.baseline, args.timing_steps, out / "timing" / f"{name}_{r}")
    step = {k: statistics.median(v) for k, v in times.items()}
    print(f"[bench] median step_time: grpo {step['grpo']:.4f}s, adaptation off {step['token_adaptive']:.4f}s")

    table = {}
    for name, rs in runs.items():
        table[name] = {
            "acc_before": mean_std([r.get("accuracy_before") for r in rs]),
            "acc_after": mean_std([r.get("accuracy_after") for r in rs]),
            "generated_tokens": mean_std([r["generated_tokens"] for r in rs]),
            "train_seconds": mean_std([r["train_seconds"] for r in rs]),
        }
    base = table["grpo"]

    def ratio(name, key):
        return table[name][key][0] / base[key][0] if base[key][0] else float("nan")

    header = "| method | acc before | acc after | generated tokens | ×base | train s | ×base |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    for name, label in (("grpo", "GRPO (baseline)"), ("token_adaptive", "token-adaptive")):
        t = table[name]
        lines.append(
            f"| {label} | {t['acc_before'][0]:.3f} ± {t['acc_before'][1]:.3f} "
            f"| {t['acc_after'][0]:.3f} ± {t['acc_after'][1]:.3f} "
            f"| {t['generated_tokens'][0]:.0f} ± {t['generated_tokens'][1]:.0f} | {ratio(name, 'generated_tokens'):.2f} "
            f"| {t['train_seconds'][0]:.1f} ± {t['train_seconds'][1]:.1f} | {ratio(name, 'train_seconds'):.2f} |"
        )
    lines.append("")
    lines.append("| per-step time (median step_time) | seconds | ×vanilla |")
    lines.append("|---|---|---|")
    lines.append(f"| GRPOTrainer (vanilla) | {step['grpo']:.4f} | 1.00 |")
    lines.append(
        f"| TokenAdaptiveGRPOTrainer, use_token_adaptive: false | {step['token_adaptive']:.4f} "
        f"| {step['token_adaptive'] / step['grpo']:.3f} |"
    )
    print(
        f"\n{len(args.seeds)} seeds ({' '.join(map(str, args.seeds))}), {args.max_steps} steps, "
        f"lr {args.learning_rate}; baseline {args.baseline}, adaptive {args.adaptive}\n"
    )
    print("\n".join(lines))
    print(f"\n[bench] total {time.perf_counter() - t_start:.0f}s")
    (out / "bench.json").write_text(
        json.dumps({"args": vars(args), "table": table, "step_time": step, "step_times": times}, indent=2)
    )


if __name__ == "__main__":
    main()
