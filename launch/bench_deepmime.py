"""Benchmark DeepMime against CE alone where the teacher knows more than the student can learn in the same steps.

    OMP_NUM_THREADS=1 python launch/bench_deepmime.py [--teacher runs/deepmime_teacher] [--steps 400] [--seeds 0 1 2]

Teacher: the built-in `addition` model after plain GRPO on testbed (a) (held-out pass@1 0.33 -> ~0.79), made by

    python src/open_r1_ext/grpo.py --config recipes/testbed_addition.yaml --output_dir runs/deepmime_teacher \\
        --save_strategy no

(`make bench-deepmime` makes it first when the folder has no model). Student: hidden 64, 2 layers, 2 heads, 64
memory slots of latent 32, 4 experts / 2 active (~0.14M parameters against the teacher's 1.06M), created from the
seed, so every arm of a seed starts from the same backbone. Every arm sees the same `--prompts` training rows per
step (3-digit additions with their reference completions, drawn from the seed), for `--steps` steps, AdamW at `--lr`,
gradient clipping 1.0:

1. `ce`: a plain supervised loop, CE on the reference completions, memory randomly initialised; nothing else.
2. `deepmime`: `DeepMimeTrainer.train_step()` (the recipe `recipes/deepmime_addition_cpu.yaml`'s settings): CE 1.0,
   token-level distillation (KL to the teacher's next-token distribution) `--kd`, hidden-state MSE 0.275, MoE
   balance 1e-2 and router z-loss 1e-3, GRPO 0.25 on `--prompts` x 4 rollouts after `--rl_warmup` steps (reward:
   teacher log-prob + exact match), memory initialised from the teacher's principal directions.
3. `deepmime_random_memory`: the same with a randomly initialised memory (does teacher initialisation help?).
4. `deepmime_no_kd` (with `--ablate_kd`): `deepmime` without the distillation KL (what the other terms give).

Reported per arm, mean +- sd over seeds, and the paired difference to `ce` with its 95 % Student-t interval: held-out
CE (nats/token on 512 held-out reference completions + eos), greedy held-out accuracy (512 problems), and the memory
diagnostics (`deepmime.memory_diagnostics`: attention entropy / log 64, router entropy / log 4, relative CE increase
when the memory/MoE output is removed). Then the encoder check: leave-one-out nearest-neighbour matrix-type accuracy
of `matrix_descriptor` codes for the trained teacher and for a randomly initialised model of the same architecture,
mean cosine between principal-direction codes of different matrices (and of the seed's hybrid codes), and the keys'
effective rank. Writes `<out>/results.json` and `<out>/results.md`; runs already in `<out>/results.json` with the
same settings are reused (add seeds or arms, or resume, without retraining).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import common  # src/ on sys.path, one thread per process
import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import AutoModelForCausalLM, set_seed  # noqa: E402

from open_r1_ext.core import tasks as tasks_mod  # noqa: E402
from open_r1_ext.core.evaluation import evaluate_task  # noqa: E402
from open_r1_ext.core.protocol import paired_interval  # noqa: E402
from open_r1_ext.core.rewards import get_reward_funcs  # noqa: E402
from open_r1_ext.core.tiny import sft_batch  # noqa: E402
from open_r1_ext.deepmime import (  # noqa: E402
    effective_rank,
    encode_teacher,
    matrix_descriptor,
    matrix_type_accuracy,
    memory_diagnostics,
)
from open_r1_ext.deepmime.encoders import teacher_matrices  # noqa: E402
from open_r1_ext.deepmime.trainer import DeepMimeConfig, DeepMimeTrainer, create_student, load_teacher  # noqa: E402


TASK = "addition"
EVAL_N = 512
ROLES = {"q": "qk", "k": "qk", "v": "v", "o": "o", "gate": "mlp_in", "up": "mlp_in", "down": "mlp_out"}


def config(a, out: str, seed: int, memory_init: str, kd: float) -> DeepMimeConfig:
    return DeepMimeConfig(
        output_dir=out,
        teacher_model_name_or_path=a.teacher,
        student_hidden_size=64,
        student_num_layers=2,
        student_num_heads=2,
        student_intermediate_size=192,
        student_max_position_embeddings=64,
        memory_slots=64,
        memory_latent_dim=32,
        memory_init=memory_init,
        kd_loss_weight=kd,
        hidden_loss_weight=a.hidden,
        balance_loss_weight=1e-2,
        router_z_loss_weight=1e-3,
        reward_weights=[1.0, 1.0],
        rl_warmup_steps=a.rl_warmup,
        rl_ramp_steps=20,
        use_adaptive_entropy=False,
        per_device_train_batch_size=a.prompts * 4,
        num_generations=4,
        max_completion_length=8,
        max_steps=a.steps,
        learning_rate=a.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=seed,
        dataloader_num_workers=0,
        gradient_checkpointing=False,
        shuffle_dataset=False,
    )


def train_rows(seed: int, n: int) -> list[dict]:
    return tasks_mod.generate(TASK, n, seed=seed, split="train")


@torch.no_grad()
def evaluate(model, tok, with_memory: bool = True) -> dict[str, float]:
    model.eval()
    rows = tasks_mod.generate(TASK, EVAL_N, seed=0, split="test")
    out = {"accuracy": evaluate_task(model, tok, TASK, n=EVAL_N, seed=0, temperature=0.0)["pass@1"]}
    if with_memory:
        out.update(memory_diagnostics(model, tok, rows))
    else:
        out["val_ce"] = model(**sft_batch(tok, rows)).loss.item()
    return out


def run_ce(a, seed, teacher_cfg, tok):
    set_seed(seed)
    model = create_student(config(a, a.out, seed, "random", 0.0), tok, teacher_cfg)
    rows = train_rows(seed, a.steps * a.prompts)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
    model.train()
    t0 = time.perf_counter()
    for step in range(a.steps):
        loss = model(**sft_batch(tok, rows[step * a.prompts : (step + 1) * a.prompts])).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return model, (time.perf_counter() - t0) / a.steps, {}


def run_deepmime(a, seed, teacher, tok, memory_init: str, kd: float):
    set_seed(seed)
    cfg = config(a, f"{a.out}/seed_{seed}", seed, memory_init, kd)
    # shuffle_dataset false: step i sees rows [i * prompts, (i + 1) * prompts), the `ce` arm's rows (in groups)
    data = Dataset.from_list(train_rows(seed, a.steps * a.prompts))
    trainer = DeepMimeTrainer(
        args=cfg,
        reward_funcs=get_reward_funcs(["teacher_logprob", "exact_match"]),
        train_dataset=data,
        processing_class=tok,
        teacher_model=teacher,
    )
    t0 = time.perf_counter()
    history = []
    for _ in range(a.steps):
        history.append(trainer.train_step())
    sec = (time.perf_counter() - t0) / a.steps
    keys = [k for k in history[-1] if k.startswith(("deepmime/", "scavenger/", "reward"))]
    last = {k: sum(h[k] for h in history[-20:] if k in h) / max(1, sum(k in h for h in history[-20:])) for k in keys}
    return trainer.model, sec, last


def encoder_check(teacher, latent: int = 32, slots: int = 64) -> dict:
    """Matrix-type nearest-neighbour accuracy (trained teacher vs the same architecture at random init), code
    cosines between different matrices, slot-for-slot cosine of trained vs random teacher codes, key effective rank."""
    torch.manual_seed(0)
    random_teacher = AutoModelForCausalLM.from_config(teacher.config)
    out = {}
    codes = {}
    for label, model in (("trained", teacher), ("random", random_teacher)):
        mats = teacher_matrices(model)
        types = [re.search(r"(q|k|v|o|gate|up|down)_proj", n).group(1) if "_proj" in n else n for n, _ in mats]
        desc = torch.stack([matrix_descriptor(w) for _, w in mats])
        attention = [i for i, t in enumerate(types) if t in ("q", "k", "v", "o")]
        out[label] = {
            "matrices": len(mats),
            "type_accuracy": matrix_type_accuracy(desc, types),
            "role_accuracy": matrix_type_accuracy(desc, [ROLES.get(t, t) for t in types]),
            "attention_type_accuracy": matrix_type_accuracy(desc[attention], [types[i] for i in attention]),
            "chance_type": 1.0 / len(set(types)),
        }
        for encoder in ("principal", "hybrid"):
            c = encode_teacher(model, slots, latent, seed=0, encoder=encoder).float()
            codes[label, encoder] = c
            n = len(mats)
            owner = [s % n if encoder == "principal" else s * n // slots for s in range(slots)]
            z = torch.nn.functional.normalize(c, dim=-1)
            sim = z @ z.t()
            other = torch.tensor([[owner[i] != owner[j] for j in range(slots)] for i in range(slots)])
            out[label][f"{encoder}_cosine_between_matrices"] = sim[other].mean().item()
            out[label][f"{encoder}_key_effective_rank"] = effective_rank(c[:, :latent])
    for encoder in ("principal", "hybrid"):
        a, b = codes["trained", encoder], codes["random", encoder]
        out[f"{encoder}_trained_vs_random_slot_cosine"] = (
            torch.nn.functional.cosine_similarity(a, b, dim=-1).mean().item()
        )
    out["random_key_effective_rank"] = effective_rank(torch.randn(slots, latent))
    return out


def router_check(a, teacher_cfg, tok, seed: int = 0) -> dict:
    """Gradient norms on the router's weight of a fresh student (seed `seed`) from CE, from `1e-2 * balance` and from
    `1e-3 * z-loss` on one training batch: can CE move the router against the auxiliary losses?"""
    set_seed(seed)
    model = create_student(config(a, a.out, seed, "random", 0.0), tok, teacher_cfg)
    out = model(**sft_batch(tok, train_rows(seed, a.prompts)))
    weight = model.memory.router.weight
    norms = {}
    for name, loss in (("ce", out.loss), ("balance_1e-2", 1e-2 * out.aux_loss), ("z_1e-3", 1e-3 * out.router_z_loss)):
        (grad,) = torch.autograd.grad(loss, weight, retain_graph=True)
        norms[name] = grad.norm().item()
    norms["balance_over_ce"] = norms["balance_1e-2"] / max(norms["ce"], 1e-30)
    return norms


SAME_RUN = ("teacher", "steps", "prompts", "lr", "kd", "hidden", "rl_warmup")


def finished_runs(a) -> dict:
    """Runs `(arm, seed) -> result` already in `<out>/results.json` from a benchmark with the same settings
    (`SAME_RUN`), so that adding seeds or arms, or resuming an interrupted benchmark, trains only what is missing."""
    path = Path(a.out) / "results.json"
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    if any(old.get("args", {}).get(k) != getattr(a, k) for k in SAME_RUN):
        return {}
    return {(r["arm"], r["seed"]): r for r in old.get("runs", [])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", default="runs/deepmime_teacher")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--prompts", type=int, default=32, help="training rows (prompts) per step, every arm")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="none: only the checks")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--kd", type=float, default=1.0, help="kd_loss_weight of the deepmime arms")
    parser.add_argument("--hidden", type=float, default=2.0, help="hidden_loss_weight of the deepmime arms")
    parser.add_argument("--rl_warmup", type=int, default=200)
    parser.add_argument("--arms", nargs="+", default=["ce", "deepmime", "deepmime_random_memory"])
    parser.add_argument("--out", default="runs/bench_deepmime")
    a = parser.parse_args()
    torch.set_num_threads(1)
    if not (Path(a.teacher) / "config.json").exists():
        raise SystemExit(
            f"no teacher at {a.teacher}; make it with: python src/open_r1_ext/grpo.py --config "
            f"recipes/testbed_addition.yaml --output_dir {a.teacher} --save_strategy no"
        )
    teacher, tok = load_teacher(a.teacher)
    tok.padding_side = "left"
    results = {"args": vars(a), "teacher": evaluate(teacher, tok, with_memory=False), "runs": []}
    print(f"[teacher] {results['teacher']}", flush=True)
    results["encoders"] = encoder_check(teacher)
    print(f"[encoders] {json.dumps(results['encoders'])}", flush=True)
    results["router_gradients"] = router_check(a, teacher.config, tok)
    print(f"[router gradients at init] {json.dumps(results['router_gradients'])}", flush=True)
    arms = {
        "ce": lambda seed: run_ce(a, seed, teacher.config, tok),
        "deepmime": lambda seed: run_deepmime(a, seed, teacher, tok, "teacher_weights", a.kd),
        "deepmime_random_memory": lambda seed: run_deepmime(a, seed, teacher, tok, "random", a.kd),
        "deepmime_no_kd": lambda seed: run_deepmime(a, seed, teacher, tok, "teacher_weights", 0.0),
    }
    Path(a.out).mkdir(parents=True, exist_ok=True)
    done = finished_runs(a)
    # runs of other arms or seeds stay in results.json; the tables show the requested ones
    results["runs"] = [r for (arm, seed), r in done.items() if arm not in a.arms or seed not in a.seeds]
    for seed in a.seeds:
        for arm in a.arms:
            if (arm, seed) in done:
                r = done[arm, seed]
                print(f"[reused from {a.out}/results.json] {arm} seed {seed}", flush=True)
            else:
                model, sec, last = arms[arm](seed)
                r = {"arm": arm, "seed": seed, "sec_per_step": sec, **evaluate(model, tok), "last_logs": last}
                print(json.dumps(r), flush=True)
            results["runs"].append(r)
            (Path(a.out) / "results.json").write_text(json.dumps(results, indent=2))
    md = table(results, a)
    print("\n" + md)
    (Path(a.out) / "results.md").write_text(md)


def table(results: dict, a) -> str:
    keys = [
        ("val_ce", "val CE", ".4f"),
        ("accuracy", "greedy acc", ".3f"),
        ("memory_attention_entropy", "attn entropy / max", ".3f"),
        ("router_entropy", "router entropy / max", ".3f"),
        ("memory_ablation_ce_increase", "CE increase, memory removed", ".3f"),
        ("sec_per_step", "s/step", ".3f"),
    ]
    t = results["teacher"]
    lines = [
        f"teacher: val CE {t['val_ce']:.4f}, greedy acc {t['accuracy']:.3f}; {a.steps} steps x {a.prompts} prompts, "
        f"lr {a.lr}, seeds {a.seeds}",
        "",
        "| arm | " + " | ".join(k[1] for k in keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    by_arm = {
        arm: sorted((r for r in results["runs"] if r["arm"] == arm and r["seed"] in a.seeds), key=lambda r: r["seed"])
        for arm in a.arms
    }
    by_arm = {arm: rs for arm, rs in by_arm.items() if rs}
    for arm, rs in by_arm.items():
        lines.append(f"| {arm} | " + " | ".join(common.fmt_ms([r[k] for r in rs], f) for k, _, f in keys) + " |")
    lines += ["", "paired difference to `ce` (mean [95 % t interval]), and val CE ratio:", ""]
    lines += ["| arm | val CE | greedy acc | val CE ratio |", "|---|---|---|---|"]
    base = by_arm.get("ce", [])
    for arm, rs in by_arm.items():
        if arm == "ce" or [r["seed"] for r in rs] != [r["seed"] for r in base]:
            continue
        ce = paired_interval([r["val_ce"] for r in rs], [r["val_ce"] for r in base])
        acc = paired_interval([r["accuracy"] for r in rs], [r["accuracy"] for r in base])
        ratio = [r["val_ce"] / b["val_ce"] for r, b in zip(rs, base)]
        lines.append(f"| {arm} | {ce.format(4)} | {acc.format(3)} | {common.fmt_ms(ratio)} |")
    if "deepmime" in by_arm and "deepmime_random_memory" in by_arm:
        rs, base2 = by_arm["deepmime"], by_arm["deepmime_random_memory"]
        ce = paired_interval([r["val_ce"] for r in rs], [r["val_ce"] for r in base2])
        acc = paired_interval([r["accuracy"] for r in rs], [r["accuracy"] for r in base2])
        lines.append(f"| deepmime - deepmime_random_memory | {ce.format(4)} | {acc.format(3)} | |")
    g = results.get("router_gradients")
    if g:
        lines.append(
            f"\nrouter weight gradient norms at init: CE {g['ce']:.2e}, 1e-2 x balance {g['balance_1e-2']:.2e}, "
            f"1e-3 x z-loss {g['z_1e-3']:.2e} (balance / CE = {g['balance_over_ce']:.3f})"
        )
    e = results["encoders"]
    lines += [
        "",
        "| encoder check | trained teacher | random-init teacher |",
        "|---|---|---|",
    ]
    for k in (
        "type_accuracy",
        "attention_type_accuracy",
        "role_accuracy",
        "principal_cosine_between_matrices",
        "hybrid_cosine_between_matrices",
        "principal_key_effective_rank",
        "hybrid_key_effective_rank",
    ):
        lines.append(f"| {k} | {e['trained'][k]:.3f} | {e['random'][k]:.3f} |")
    lines.append(
        f"\ncodes of the trained vs the random teacher, slot for slot (cosine): principal "
        f"{e['principal_trained_vs_random_slot_cosine']:.3f}, hybrid {e['hybrid_trained_vs_random_slot_cosine']:.3f}; "
        f"random keys' effective rank {e['random_key_effective_rank']:.1f}; chance type accuracy "
        f"{e['trained']['chance_type']:.3f}"
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
