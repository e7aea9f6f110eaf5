"""Benchmark: the char-level game vs its cross-entropy twin at equal steps vs n-gram baselines, over seeds.

    OMP_NUM_THREADS=1 python launch/bench_char_grpo.py --corpora ../shared/data/tinyshakespeare.txt shakespeare \
        --seeds 0 1 2 --steps 500

Every run trains the same GPT-2 preset from the same random initialisation (per seed) on the same random blocks,
once with `objective: game` (the recipe defaults: exhaustive group, target_mean advantages, decaying bigram
partial credit, ramped confidence bonus, KL 0.01 toward the bigram) and once with `objective: ce`; the two runs of
a seed are interleaved so machine load hits both alike. Validation metrics come from the same fixed validation
blocks; the n-gram baselines are scored on the whole validation split. Throughput is training characters per
second of wall time outside evaluation. Writes `results.json` and `table.md` into `--out` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import common  # first: puts src/ on sys.path, one thread per process
import torch
from transformers import set_seed

from open_r1_ext.char_rl.config import CharGRPOConfig
from open_r1_ext.char_rl.trainer import CharGRPOTrainer


fmt_ms = common.fmt_ms  # mean ± sample std, as every benchmark here reports it


def run_one(corpus: str, objective: str, seed: int, a) -> dict:
    set_seed(seed)
    args = CharGRPOConfig(
        output_dir=str(Path(a.out) / "runs" / f"{Path(corpus).stem}-{objective}-{seed}"),
        corpus=corpus,
        model_preset=a.preset,
        block_size=a.block,
        per_device_train_batch_size=a.batch,
        max_steps=a.steps,
        objective=objective,
        learning_rate=1e-3,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": 0.1},
        warmup_steps=min(100, a.steps // 10),
        weight_decay=0.1,
        adam_beta2=0.99,
        guidance_decay_steps=a.steps // 4,
        confidence_ramp_steps=a.steps // 2,
        logging_steps=50,
        eval_strategy="steps",
        eval_steps=a.eval_every,
        eval_batches=a.eval_batches,
        sample_chars=120,
        save_strategy="no",
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
        seed=seed,
    )
    built = CharGRPOTrainer.build_model_and_data(None, args)
    trainer = CharGRPOTrainer(
        model=built["model"],
        args=args,
        train_dataset=built["dataset"]["train"],
        eval_dataset=built["dataset"]["test"],
        processing_class=built["processing_class"],
    )
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0 - trainer.eval_seconds
    res = trainer.summary_results()
    res["chars_per_second"] = a.steps * a.batch * a.block / wall
    res["n_params"] = sum(p.numel() for p in trainer.model.parameters())
    late = [e["ce"] for e in res["eval_curve"] if e["step"] >= a.late_step]
    res["max_val_ce_late"] = max(late) if late else float("nan")
    return res


def make_table(all_results: dict, a, n_params: int) -> str:
    lines = [
        f"Char-level game vs CE twin, {a.preset} GPT-2 ({n_params / 1e6:.2f} M params at the first corpus' "
        f"vocabulary), batch {a.batch} x {a.block}, {a.steps} steps, AdamW lr 1e-3 cosine to 1e-4, seeds "
        f"{' '.join(map(str, a.seeds))} (mean ± std); val = {a.eval_batches} x {a.batch} fixed validation blocks; "
        f"n-gram baselines on the whole validation split; chars/s on a shared 2-core CPU, one thread.",
        "",
        "| corpus | model | val CE (nats/char) | bits/char | top-1 acc | chars/s | max val CE at step >= "
        f"{a.late_step} |",
        "|---|---|---|---|---|---|---|",
    ]
    for corpus, r in all_results.items():
        name = Path(corpus).name if corpus != "shakespeare" else "shakespeare package (default)"
        for obj, label in (("ce", "CE twin"), ("game", "game (exhaustive, target_mean)")):
            runs = r[obj]
            lines.append(
                f"| {name} | {label} | {fmt_ms([x['val_ce'] for x in runs], '.3f')} | "
                f"{fmt_ms([x['val_bpc'] for x in runs], '.3f')} | "
                f"{fmt_ms([x['val_accuracy'] for x in runs], '.4f')} | "
                f"{fmt_ms([x['chars_per_second'] for x in runs], '.0f')} | "
                f"{fmt_ms([x['max_val_ce_late'] for x in runs], '.3f')} |"
            )
        for b in ("unigram", "bigram", "4gram"):
            base = r["ce"][0]["baselines"][b]
            lines.append(f"| {name} | {b} model | {base['ce']:.3f} | {base['bpc']:.3f} | {base['accuracy']:.4f} | | |")
        acc = [g["val_accuracy"] / c["val_accuracy"] for g, c in zip(r["game"], r["ce"])]
        ce = [g["val_ce"] / c["val_ce"] for g, c in zip(r["game"], r["ce"])]
        tp = [g["chars_per_second"] / c["chars_per_second"] for g, c in zip(r["game"], r["ce"])]
        bigram = r["ce"][0]["baselines"]["bigram"]["ce"]
        above = sum(g["max_val_ce_late"] > bigram for g in r["game"])
        lines.append(
            f"| {name} | **game / CE** | CE ratio {fmt_ms(ce, '.3f')} (target <= 1.3) | | acc ratio "
            f"{fmt_ms(acc, '.3f')} (target >= 0.95) | throughput ratio {fmt_ms(tp, '.2f')} (target >= 0.8) | "
            f"game runs above bigram CE at step >= {a.late_step}: {above}/{len(r['game'])} |"
        )
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpora", nargs="+", default=["../shared/data/tinyshakespeare.txt", "shakespeare"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--preset", default="cpu-small")
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--block", type=int, default=64)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--eval-batches", type=int, default=20)
    p.add_argument("--late-step", type=int, default=300, help="'after the first few hundred steps' starts here")
    p.add_argument("--out", default="runs/bench_char_grpo")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    all_results: dict = {}
    n_params = 0
    t_start = time.perf_counter()
    for corpus in a.corpora:
        all_results[corpus] = {"ce": [], "game": []}
        for seed in a.seeds:
            for obj in ("ce", "game"):
                res = run_one(corpus, obj, seed, a)
                n_params = n_params or res["n_params"]
                all_results[corpus][obj].append(res)
                print(
                    f"[bench] {corpus} {obj} seed {seed}: val CE {res['val_ce']:.3f} acc {res['val_accuracy']:.4f} "
                    f"{res['chars_per_second']:.0f} chars/s ({time.perf_counter() - t_start:.0f}s elapsed)",
                    flush=True,
                )
    table = make_table(all_results, a, n_params)
    (Path(a.out) / "results.json").write_text(json.dumps(all_results, indent=2))
    (Path(a.out) / "table.md").write_text(table + "\n")
    print(table)
    print(f"[bench] total {time.perf_counter() - t_start:.0f}s; results in {a.out}", flush=True)


if __name__ == "__main__":
    main()
