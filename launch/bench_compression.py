"""Benchmark: RL keep/mask policy vs random / frequency / surprisal baselines at the same ratio, 3 seeds.

    OMP_NUM_THREADS=1 python launch/bench_compression.py            # ~20 min on a shared 2-core CPU

For each seed, trains `recipes/compression_cpu.yaml` through the launch script's `main` (policy + 4x128 GPT-2
reconstructor from scratch, BPE 1024, 64-token sequences, 40 % of tokens removed) into `<out>/seed<k>`, then
evaluates all seeds together on the held-out plays (`recipes/compression_eval.yaml`): ratio, accuracy, recovery,
all-MiniLM-L6-v2 similarity, mean ± std over seeds (sample std, as `launch/common.py`'s `mean_sd`), paired tests of
the policy vs each baseline, and the GPT-2 forward-pass speed-up on the kept tokens. Seeds already trained (a
`results.json` in their folder) are not retrained. Writes `<out>/eval.md`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import common  # noqa: F401  (first: puts src/ on sys.path, one thread per process)
import torch
from compression_prepare import parse

from open_r1_ext.compression.evaluation import run_evaluation
from open_r1_ext.grpo import main as train


def main() -> None:
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--train_recipe", default="recipes/compression_cpu.yaml")
    p.add_argument("--eval_recipe", default="recipes/compression_eval.yaml")
    p.add_argument("--max_steps", type=int, default=100)
    p.add_argument("--eval_num_sequences", type=int, default=128)
    p.add_argument("--out", default="runs/bench_compression")
    a = p.parse_args()

    t0 = time.perf_counter()
    run_dirs = []
    for seed in a.seeds:
        run_dir = Path(a.out) / f"seed{seed}"
        run_dirs.append(str(run_dir))
        if (run_dir / "results.json").exists():
            print(f"[bench] seed {seed}: already trained in {run_dir}", flush=True)
            continue
        t = time.perf_counter()
        train(*parse(
            ["--config", a.train_recipe, "--seed", str(seed), "--output_dir", str(run_dir),
             "--max_steps", str(a.max_steps), "--save_strategy", "no", "--plot", "false", "--disable_tqdm", "true"]
        ))  # fmt: skip
        print(f"[bench] seed {seed}: trained {a.max_steps} steps in {time.perf_counter() - t:.0f} s", flush=True)
    _, args, _ = parse(
        ["--config", a.eval_recipe, "--output_dir", a.out, "--eval_num_sequences", str(a.eval_num_sequences),
         "--eval_run_dirs", *run_dirs]
    )  # fmt: skip
    t = time.perf_counter()
    result = run_evaluation(args)
    print(f"[bench] evaluation: {time.perf_counter() - t:.0f} s; total {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"[bench] similarity model: {result['similarity_model']}; speed: {result['speed']}", flush=True)


if __name__ == "__main__":
    main()
