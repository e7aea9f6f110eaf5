"""Calibrate the built-in testbeds: where the warm start leaves a model, and what plain GRPO makes of it.

    python launch/calibrate_testbeds.py sweep --task addition --lr 1e-3 --steps 900 1000 1050 1100 1200
    python launch/calibrate_testbeds.py grpo recipes/testbed_addition.yaml recipes/testbed_scratch.yaml [--jobs 2]

`sweep` trains one warm start (batch 128, lr 2e-3, the built-in model's settings) up to the largest step count and
scores held-out pass@1 (sampled at T=1) and greedy accuracy on 512 problems at each listed step; each snapshot is
stored in the built-in model cache under the key of a warm start of that length (the schedule is constant after 20
steps of warm-up, so a snapshot at step k *is* the k-step warm start), so a recipe naming it loads it at once.

`grpo` runs each testbed recipe once through the launch script (seed 0) and prints the calibration table: task,
warm start, held-out accuracy before and after, the gain, and minutes of training (evaluation excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml


os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def sweep(args) -> None:
    import torch

    from open_r1_ext.core import tasks
    from open_r1_ext.core.evaluation import evaluate_task
    from open_r1_ext.core.tiny import TinyModelSettings, cache_root, char_tokenizer, sft_batch, tiny_llama

    torch.set_num_threads(1)
    last = max(args.steps)
    tok = char_tokenizer()
    torch.manual_seed(0)
    model = tiny_llama(len(tok), TinyModelSettings(task=args.task), tok)
    # exactly `core.tiny.warm_start`'s data and schedule, with snapshots on the way
    rows = tasks.generate(args.task, last * args.batch_size, seed=0, split="warmup")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20))
    print("| task | warm-start steps | lr | warm-start s | pass@1 (T=1) | greedy |")
    print("|---|---|---|---|---|---|")
    t0, seconds = time.perf_counter(), 0.0
    for step in range(last):
        model.train()
        loss = model(**sft_batch(tok, rows[step * args.batch_size : (step + 1) * args.batch_size])).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step + 1 in args.steps:
            seconds += time.perf_counter() - t0
            sampled = evaluate_task(model, tok, args.task, n=512, temperature=1.0)["pass@1"]
            greedy = evaluate_task(model, tok, args.task, n=512, temperature=0.0)["pass@1"]
            settings = TinyModelSettings(
                task=args.task, warm_start_steps=step + 1, warm_start_lr=args.lr,
                warm_start_batch_size=args.batch_size, seed=0,
            )  # fmt: skip
            path = cache_root() / "builtin" / settings.key()
            if not path.exists():
                model.generation_config.pad_token_id = tok.pad_token_id
                model.generation_config.eos_token_id = tok.eos_token_id
                model.save_pretrained(path)
                tok.save_pretrained(path)
                meta = {"settings": settings.__dict__, "final_loss": loss.item()}
                (path / "open_r1_ext_builtin.json").write_text(json.dumps(meta, indent=2))
            print(f"| {args.task} | {step + 1} | {args.lr:g} | {seconds:.0f} | {sampled:.3f} | {greedy:.3f} |")
            sys.stdout.flush()
            t0 = time.perf_counter()


def grpo(args) -> None:
    python = str(ROOT / ".venv/bin/python") if (ROOT / ".venv/bin/python").exists() else sys.executable
    out = ROOT / args.out

    def one(recipe: str) -> dict:
        d = out / Path(recipe).stem
        if not (d / "results.json").exists() or args.force:
            d.mkdir(parents=True, exist_ok=True)
            cmd = [python, str(ROOT / "src/open_r1_ext/grpo.py"), "--config", recipe, "--seed", "0"]
            cmd += ["--output_dir", str(d), "--resume", "false", *args.extra]
            with open(d / "log.txt", "w") as log:
                subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
        return json.loads((d / "results.json").read_text())

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(one, args.recipes))
    print(
        "| recipe | task | warm start | lr | steps | pass@1 before | after | gain | greedy before → after | training min |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for recipe, r in zip(args.recipes, results):
        cfg = yaml.safe_load(Path(recipe).read_text())
        # flags after `--` override the recipe, in the table as in the run
        cfg.update({k[2:]: yaml.safe_load(v) for k, v in zip(args.extra[::2], args.extra[1::2]) if k.startswith("--")})
        ws = f"{cfg.get('warm_start_steps')} steps, lr {cfg.get('warm_start_lr')}"
        steps = r["eval_curve"][-1]["step"]
        print(
            f"| {Path(recipe).name} | {cfg['dataset_name']} | {ws} | {cfg.get('learning_rate')} | {steps} "
            f"| {r['accuracy_before']:.3f} | {r['accuracy_after']:.3f} | {r['accuracy_after'] - r['accuracy_before']:+.3f} "
            f"| {r.get('greedy_before', float('nan')):.3f} → {r.get('greedy_after', float('nan')):.3f} "
            f"| {r['train_seconds'] / 60:.1f} |"
        )


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sweep", help="warm-start lengths -> held-out accuracy (snapshots cached)")
    s.add_argument("--task", required=True)
    s.add_argument("--steps", type=int, nargs="+", required=True)
    s.add_argument("--lr", type=float, default=2e-3)
    s.add_argument("--batch_size", type=int, default=128)
    g = sub.add_parser("grpo", help="plain GRPO on each testbed recipe, one seed")
    g.add_argument("recipes", nargs="+")
    g.add_argument("--jobs", type=int, default=1)
    g.add_argument("--out", default="runs/calibrate")
    g.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    args.extra = extra
    sweep(args) if args.cmd == "sweep" else grpo(args)


if __name__ == "__main__":
    main()
