"""Vanilla GRPO seconds per step through the launch script, this tree against an earlier commit, in one run.

    OMP_NUM_THREADS=1 python launch/bench_step_time.py --ref fd49210 [--steps 60] [--rounds 3]

Checks `--ref` out into a temporary git worktree and runs `src/open_r1_ext/grpo.py` of each tree on the same
recipe (testbed (b) settings written out with only the keys both versions know, held-out evaluation off), one run
after the other, `--rounds` times over, so load from anything else on the machine falls on both alike. A step's
time is the difference of consecutive `seconds` in `results.json`'s curve (the first 5 steps dropped as warm-up);
the table gives the median and interquartile range per tree and the ratio of medians (this tree / ref).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml


ROOT = Path(__file__).resolve().parents[1]
RECIPE = {
    "trainer_type": "grpo",
    "model_name_or_path": "builtin:addition_scratch",
    "warm_start_steps": 200,
    "warm_start_lr": 0.002,
    "warm_start_batch_size": 128,
    "dataset_name": "builtin:addition_scratch",
    "reward_funcs": ["exact_match"],
    "builtin_eval_samples": 0,
    "seed": 0,
    "learning_rate": 5.0e-5,
    "lr_scheduler_type": "constant",
    "per_device_train_batch_size": 64,
    "num_generations": 8,
    "max_completion_length": 40,
    "temperature": 1.0,
    "beta": 0.0,
    "logging_steps": 1,
    "save_strategy": "no",
    "report_to": "none",
    "bf16": False,
    "use_cpu": True,
    "plot": False,
    "disable_tqdm": True,
}


def step_times(tree: Path, recipe: Path, out: Path, steps: int) -> list[float]:
    cmd = [sys.executable, str(tree / "src/open_r1_ext/grpo.py"), "--config", str(recipe)]
    cmd += ["--max_steps", str(steps), "--output_dir", str(out), "--resume", "false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(tree / "src")}
    subprocess.run(cmd, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    curve = json.loads((out / "results.json").read_text())["curve"]
    secs = [c["seconds"] for c in curve]
    return [b - a for a, b in zip(secs, secs[1:])][5:]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", required=True, help="the earlier commit (e.g. the last one before a change)")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ref_tree = tmp / "ref"
        subprocess.run(["git", "worktree", "add", "--detach", str(ref_tree), args.ref], cwd=ROOT, check=True)
        try:
            recipe = tmp / "recipe.yaml"
            recipe.write_text(yaml.safe_dump(RECIPE))
            times: dict[str, list[float]] = {"this tree": [], f"ref {args.ref}": []}
            for r in range(args.rounds):
                for name, tree in ((f"ref {args.ref}", ref_tree), ("this tree", ROOT)):
                    t = step_times(tree, recipe, tmp / f"run_{r}_{name.split()[0]}", args.steps)
                    times[name] += t
                    print(f"[step-time] round {r + 1}: {name}: median {statistics.median(t):.4f} s/step", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(ref_tree)], cwd=ROOT, check=False)
    ref_median = statistics.median(times[f"ref {args.ref}"])
    print("\n| tree | steps timed | s/step (median) | interquartile range | × ref |")
    print("|---|---|---|---|---|")
    for name, t in times.items():
        q = statistics.quantiles(t, n=4)
        med = statistics.median(t)
        print(f"| {name} | {len(t)} | {med:.4f} | {q[0]:.4f}-{q[2]:.4f} | {med / ref_median:.3f} |")


if __name__ == "__main__":
    main()
