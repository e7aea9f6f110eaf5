"""Benchmark: a learned-rate keep/mask policy against random / frequency / surprisal / constant at its measured ratio.

    OMP_NUM_THREADS=1 python launch/bench_compression.py --jobs 2   # = make bench-compression: λ 1.0, 1.25, 2.0
    OMP_NUM_THREADS=1 python launch/bench_compression.py --lambdas 0.9 1.0 1.25 2.0   # one more point, the rest reused
    OMP_NUM_THREADS=1 python launch/bench_compression.py --lambdas 1.0 --out runs/bench_compression_semantic \
        --extra "--semantic_weight 1.0"                          # the MiniLM reward term (README: it does not help)

Time on the 2-core CPU (one thread per process), with the default GPT-2 infilling reconstructor and `--jobs 2`: the
warm start 22 min, once (cached); each run about 3.5 min (150 joint steps, greedy infill decoding inside the reward),
two at a time; the evaluation about 1 min per run. So about 47 min for the default, the warm start included. With
`--semantic_weight` a run takes about the same (one MiniLM pass per mask per step). (`--extra "--reconstructor mlm"`
runs the masked-LM alternative: 25 min warm start, 3 min a run.)

1. Warm start (once, cached under `~/.cache/open_r1_ext/compression/`): the 4 × 128 GPT-2 reconstructor learns to
   fill gaps on the training plays as an infilling LM (`compression/warmstart.py`); its validation loss is printed.
2. For each λ in `--lambdas` and each seed: joint training of `recipes/compression_cpu.yaml` through the launch
   script's `main` (learned rate: reward = rate - λ · unrecovered removed tokens / n) into `<out>/lam<λ>/seed<k>`. Runs
   already finished with the same flags (`results.json` and `bench_flags.json`) are not retrained, so a λ can be
   added to a finished sweep by listing every λ again (`--lambdas 0.9 1.0 1.25 2.0`); a run trained with other
   flags (another reconstructor, say) is retrained.
3. Evaluation of all runs together on the held-out plays (`recipes/compression_eval.yaml`): each λ is one point of the
   rate-distortion curve; its ratio is measured from the policy's masks, and every baseline removes as many tokens
   as the policy did from each sequence. Primary figures: recovery of removed tokens (greedy-decoded reconstruction)
   and all-MiniLM-L6-v2 similarity, mean ± sd over seeds, paired bootstrap 95 % intervals over sequences; the
   teacher-forced recovery beside them, as a diagnostic. Writes `<out>/eval.md`, `<out>/eval_results.json`,
   `<out>/rate_distortion.png` and `<out>/bench.json` (the verdict vs the targets).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shlex
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import common  # noqa: F401  (first: puts src/ on sys.path, one thread per process)
import torch
from compression_prepare import parse

from open_r1_ext.compression.evaluation import run_evaluation
from open_r1_ext.compression.trainer import CompressionTrainer
from open_r1_ext.grpo import main as train


def train_one(flags: list[str]) -> float:
    """One joint-training run through the launch script's `main` (in a worker process under `--jobs`); its seconds."""
    torch.set_num_threads(1)
    t = time.perf_counter()
    train(*parse(flags))
    return time.perf_counter() - t


def report_run(lam: float, seed: int, run_dir: Path, seconds: float, flags: list[str]) -> None:
    (run_dir / "bench_flags.json").write_text(json.dumps(flags))
    res = json.loads((run_dir / "results.json").read_text())
    print(
        f"[bench] λ={lam:g} seed {seed}: {res['global_step']} steps in {seconds:.0f} s, "
        f"last training ratio {res.get('compression/last_train_ratio')}, warm-start validation NLL "
        f"{res.get('compression/warm_start_val_loss')}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> dict:
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--lambdas", type=float, nargs="+", default=[1.0, 1.25, 2.0])
    p.add_argument("--train_recipe", default="recipes/compression_cpu.yaml")
    p.add_argument("--eval_recipe", default="recipes/compression_eval.yaml")
    p.add_argument("--max_steps", type=int, default=None, help="Joint steps per run (default: the recipe's).")
    p.add_argument("--eval_num_sequences", type=int, default=128)
    p.add_argument("--out", default="runs/bench_compression")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="Training runs side by side, one torch thread each (the warm start is trained once, before them).",
    )
    p.add_argument(
        "--extra", default="", help='Further flags for every training run, one string: --extra "--credit_window -1".'
    )
    a = p.parse_args(argv)

    t0 = time.perf_counter()
    run_dirs, train_seconds, todo = [], {}, []
    for lam in a.lambdas:
        for seed in a.seeds:
            run_dir = Path(a.out) / f"lam{lam:g}" / f"seed{seed}"
            run_dirs.append(str(run_dir))
            flags = ["--config", a.train_recipe, "--seed", str(seed), "--output_dir", str(run_dir)]
            flags += ["--distortion_lambda", str(lam), "--save_strategy", "no", "--plot", "false"]
            flags += ["--disable_tqdm", "true", *shlex.split(a.extra)]
            if a.max_steps is not None:
                flags += ["--max_steps", str(a.max_steps)]
            done = run_dir / "bench_flags.json"
            if (run_dir / "results.json").exists() and done.exists() and json.loads(done.read_text()) == flags:
                print(f"[bench] λ={lam:g} seed {seed}: already trained in {run_dir}", flush=True)
                continue
            if (run_dir / "results.json").exists():  # trained with other flags (or before they were recorded)
                print(
                    f"[bench] λ={lam:g} seed {seed}: {run_dir} was trained with other settings; retraining", flush=True
                )
            todo.append((lam, seed, run_dir, flags))
    if a.jobs > 1 and len(todo) > 1:
        # the warm start (and the data) once, here, so that the workers only load it from the cache
        CompressionTrainer.build_model_and_data(*parse(todo[0][3]))
        with ProcessPoolExecutor(max_workers=a.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [(job, pool.submit(train_one, job[3])) for job in todo]
            for (lam, seed, run_dir, flags), future in futures:
                train_seconds[str(run_dir)] = future.result()
                report_run(lam, seed, run_dir, train_seconds[str(run_dir)], flags)
    else:
        for lam, seed, run_dir, flags in todo:
            train_seconds[str(run_dir)] = train_one(flags)
            report_run(lam, seed, run_dir, train_seconds[str(run_dir)], flags)
    eval_flags = ["--config", a.eval_recipe, "--output_dir", a.out, "--eval_run_dirs", *run_dirs]
    if a.eval_num_sequences is not None:
        eval_flags += ["--eval_num_sequences", str(a.eval_num_sequences)]
    _, args, _ = parse(eval_flags)
    t = time.perf_counter()
    result = run_evaluation(args)
    eval_seconds = time.perf_counter() - t
    headline = result["headline"]
    report = {
        "headline": headline,
        "verdict": result["groups"][headline]["verdict"] if headline else None,
        "ratios": {name: g["summary"]["methods"]["policy"]["ratio"]["mean"] for name, g in result["groups"].items()},
        "speed": result["speed"],
        "plot": result["plot"],
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "total_seconds": time.perf_counter() - t0,
    }
    first = json.loads((Path(run_dirs[0]) / "results.json").read_text())
    report["warm_start_val_loss"] = first.get("compression/warm_start_val_loss")
    report["warm_start_val_loss_at_0.4"] = first.get("compression/warm_start_val_loss_at_0.4")
    report["warm_start_val_recovery_at_0.4"] = first.get("compression/warm_start_val_recovery_at_0.4")
    report["warm_start_val_recovery_at_0.4_decoded"] = first.get("compression/warm_start_val_recovery_at_0.4_decoded")
    Path(a.out, "bench.json").write_text(json.dumps(report, indent=2))
    print(f"[bench] evaluation {eval_seconds:.0f} s; total {report['total_seconds']:.0f} s", flush=True)
    if headline is None:
        print("[bench] no λ reached a measured ratio >= 0.35: no headline group, targets not assessed", flush=True)
    else:
        v = report["verdict"]
        rf = v["recovery_vs_frequency"]
        print(
            f"[bench] headline {headline}: recovery − frequency {rf['diff']:+.3f} [{rf['ci95'][0]:+.3f}, "
            f"{rf['ci95'][1]:+.3f}] (target ≥ +0.15: {'met' if v['recovery_target_met_mean'] else 'NOT met'}); "
            f"similarity above every baseline (interval > 0): "
            f"{'met' if v['similarity_above_every_baseline'] else 'NOT met'} {v['similarity_above']}; "
            f"similarity > 0.90 (stretch): {'met' if v['similarity_stretch_0.90'] else 'not met'}",
            flush=True,
        )
    return report


if __name__ == "__main__":
    main()
