"""Benchmark: RL keep/mask policy vs random / frequency / surprisal baselines at the same ratio, 3 seeds.

    OMP_NUM_THREADS=1 python launch/bench_compression.py            # ~20 min on a shared 2-core CPU

For each seed, trains `recipes/compression_cpu.yaml` (policy + 4x128 GPT-2 reconstructor from scratch, BPE 1024,
64-token sequences, 40 % of tokens removed) into `<out>/seed<k>`, then evaluates all seeds together on the
held-out plays (`recipes/compression_eval.yaml`): ratio, accuracy, recovery, all-MiniLM-L6-v2 similarity,
mean ± std over seeds, paired tests of the policy vs each baseline, and the GPT-2 forward-pass speed-up on the kept
tokens. Seeds already trained (a `results.json` in their folder) are not retrained. Writes `<out>/eval.md`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    import torch

    from open_r1_ext.compression.evaluate import run_evaluation
    from open_r1_ext.compression.prepare import parse
    from open_r1_ext.compression.trainer import train_with_launch_script

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
        train_with_launch_script(
            ["--config", a.train_recipe, "--seed", str(seed), "--output_dir", str(run_dir),
             "--max_steps", str(a.max_steps), "--save_strategy", "no", "--plot", "false", "--disable_tqdm", "true"]
        )  # fmt: skip
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
