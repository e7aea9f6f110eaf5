"""Benchmark DeepMime against CE alone on the built-in running-sum task: the same student, the same steps.

    OMP_NUM_THREADS=1 python launch/bench_deepmime.py [--steps 200] [--seeds 0 1 2] [--out runs/bench_deepmime]

Teacher: the cached `builtin:running_sum` Llama (~0.8M parameters, 150 warm-start steps, the CPU recipe's). Student:
the CPU recipe's tiny DeepMime student (hidden 64, 2 layers, 2 heads, 64 memory slots, latent 32, 4 experts / 2
active), created from the same seed in both arms. Each step sees 8 prompts.

1. `ce`: a plain supervised loop, AdamW at the same learning rate, CE on the reference completions of the 8
   prompts, memory randomly initialised; nothing else.
2. `deepmime`: `DeepMimeTrainer.train_step()` with the CPU recipe's settings: 8 prompts x 4 rollouts, reward =
   teacher log-prob + exact match + 0.05 length bonus, CE 1.0 + GRPO 0.25 (after `--rl_warmup` steps and a
   20-step ramp) + hidden MSE 0.275 + balance 0.01, memory initialised from the teacher's weights.

Reported per arm, mean +- std over seeds: held-out CE (nats/token on 256 reference completions + eos), greedy
held-out accuracy (256 problems), seconds per step. Writes `<out>/results.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import common  # src/ on sys.path, one thread per process
import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import set_seed  # noqa: E402

from open_r1_ext.core import tasks as tasks_mod  # noqa: E402
from open_r1_ext.core.evaluation import evaluate_task  # noqa: E402
from open_r1_ext.core.rewards import get_reward_funcs  # noqa: E402
from open_r1_ext.core.tiny import sft_batch  # noqa: E402
from open_r1_ext.deepmime.trainer import DeepMimeConfig, DeepMimeTrainer, create_student, load_teacher  # noqa: E402


TASK = "running_sum"
PROMPTS_PER_STEP = 8


def config(out: str, seed: int, steps: int, lr: float, rl_warmup: int) -> DeepMimeConfig:
    return DeepMimeConfig(
        output_dir=out,
        teacher_model_name_or_path=f"builtin:{TASK}",
        teacher_warm_start_steps=150,
        student_hidden_size=64,
        student_num_layers=2,
        student_num_heads=2,
        student_intermediate_size=192,
        student_max_position_embeddings=128,
        memory_slots=64,
        memory_latent_dim=32,
        reward_weights=[1.0, 1.0, 0.05],
        rl_warmup_steps=rl_warmup,
        rl_ramp_steps=20,
        use_adaptive_entropy=False,
        per_device_train_batch_size=PROMPTS_PER_STEP * 4,
        num_generations=4,
        max_completion_length=24,
        max_steps=steps,
        learning_rate=lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=seed,
        dataloader_num_workers=0,
        gradient_checkpointing=False,
    )


def reference_batch(tok, rows):
    """Right-padded prompt + completion + eos with labels on the completion only."""
    return sft_batch(tok, rows)


@torch.no_grad()
def evaluate(model, tok) -> dict[str, float]:
    model.eval()
    rows = tasks_mod.generate(TASK, 256, seed=0, split="test")
    batch = reference_batch(tok, rows)
    ce = model(**batch).loss.item()
    acc = evaluate_task(model, tok, TASK, n=256, seed=0, temperature=0.0)["pass@1"]
    return {"val_ce": ce, "accuracy": acc}


def run_ce(seed, steps, lr, teacher_cfg, tok, args_cfg):
    set_seed(seed)
    model = create_student(args_cfg, tok, teacher_cfg)
    rows = tasks_mod.generate(TASK, steps * PROMPTS_PER_STEP, seed=seed, split="train")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        loss = model(**reference_batch(tok, rows[step * PROMPTS_PER_STEP : (step + 1) * PROMPTS_PER_STEP])).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return model, (time.perf_counter() - t0) / steps


def run_deepmime(seed, steps, lr, rl_warmup, teacher, tok, out):
    set_seed(seed)
    cfg = config(out, seed, steps, lr, rl_warmup)
    data = Dataset.from_list(tasks_mod.generate(TASK, steps * PROMPTS_PER_STEP, seed=seed, split="train"))
    trainer = DeepMimeTrainer(
        args=cfg,
        reward_funcs=get_reward_funcs(["teacher_logprob", "exact_match", "length_bonus"]),
        train_dataset=data,
        processing_class=tok,
        teacher_model=teacher,
    )
    t0 = time.perf_counter()
    last = {}
    for _ in range(steps):
        last = trainer.train_step()
    return trainer.model, (time.perf_counter() - t0) / steps, last


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--rl_warmup", type=int, default=60)
    parser.add_argument("--out", default="runs/bench_deepmime")
    a = parser.parse_args()
    torch.set_num_threads(1)
    teacher, tok = load_teacher(f"builtin:{TASK}", warm_start_steps=150)
    tok.padding_side = "left"
    results = {"args": vars(a), "teacher": evaluate(teacher, tok), "runs": []}
    print(f"[teacher] {results['teacher']}", flush=True)
    base_cfg = config(a.out, 0, a.steps, a.lr, a.rl_warmup)
    for seed in a.seeds:
        model, sec = run_ce(seed, a.steps, a.lr, teacher.config, tok, base_cfg)
        r = {"arm": "ce", "seed": seed, "sec_per_step": sec, **evaluate(model, tok)}
        print(r, flush=True)
        results["runs"].append(r)
        model, sec, last = run_deepmime(seed, a.steps, a.lr, a.rl_warmup, teacher, tok, f"{a.out}/seed_{seed}")
        r = {"arm": "deepmime", "seed": seed, "sec_per_step": sec, **evaluate(model, tok)}
        r["last_logs"] = {k: v for k, v in last.items() if k.startswith(("deepmime/", "reward", "scavenger/grpo"))}
        print(r, flush=True)
        results["runs"].append(r)

    print(f"\n| arm | val CE (nats/token) | greedy accuracy | s/step |  ({a.steps} steps, seeds {a.seeds})")
    print("|---|---|---|---|")
    for arm in ("ce", "deepmime"):
        rs = [r for r in results["runs"] if r["arm"] == arm]

        def ms(key, rs=rs):
            return common.fmt_ms([r[key] for r in rs])

        print(f"| {arm} | {ms('val_ce')} | {ms('accuracy')} | {ms('sec_per_step')} |")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
