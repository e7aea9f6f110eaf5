"""Benchmark: the char-level game's arms vs the cross-entropy twin at equal steps, paired by seed.

    OMP_NUM_THREADS=1 python launch/bench_char_grpo.py --corpora ../shared/data/tinyshakespeare.txt \
        --seeds 0 1 2 --steps 2000 --arms ce sampled distill sampled_credit

Every run of a seed trains the same GPT-2 preset from the same random initialisation on the same random blocks
(same data order) with the same AdamW schedule; only the objective differs. Arms:

- `ce`: plain cross-entropy, the twin every other arm is measured against.
- `game`: the exhaustive game (the recipe defaults: all V characters, `target_mean`, decaying bigram partial
  credit, ramped confidence bonus, KL 0.01 toward the bigram). Its gradient is CE's plus n-gram distillation
  exactly (`char_rl/game.py`), so game / CE near 1 is true by construction.
- `sampled`: the RL game. K = 8 distinct characters per position (priority sampling from the policy mixed half
  and half with the 5-gram teacher), only their rewards read; exact-match reward, the teacher's expected reward as
  control variate. Unbiased for CE's gradient.
- `distill`: CE plus distillation from the 5-gram teacher (the exhaustive game with the teacher's partial credit,
  weight fading as the model overtakes the teacher: `guidance_schedule: adaptive`).
- `sampled_credit`: the sampled game with the `distill` arm's reward (exact match + the teacher's partial credit,
  adaptive): the RL version of `distill`, as `sampled` is of `ce`.
- `collapse`: the exhaustive game with GRPO's `std` normalisation, the failure the health monitor must flag.

Validation metrics come from the same fixed validation blocks at every `--eval-every` steps; the n-gram baselines
are scored on the whole validation split. For each arm the script prints val CE and top-1 accuracy at the
checkpoints (`--at`, default 500 and the last step; the curve is the same run's, so "at 500" is step 500 of the
cosine schedule to `--steps`), mean ± sd over seeds, arm / CE ratios and the paired difference arm - CE with its
95 % Student-t interval (pairs are seeds), verdicts against the issue's targets, and the health monitor's
warning counts. Writes `results.json` and `table.md` into `--out`.
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
from open_r1_ext.core.protocol import paired_interval


fmt_ms = common.fmt_ms  # mean ± sample std, as every benchmark here reports it

TEACHER_ORDER = 5  # the n-gram teacher of the `sampled` and `distill` arms
ARMS: dict[str, dict] = {
    "ce": {"objective": "ce"},
    "game": {"objective": "game"},  # recipe defaults; its schedules are set per run below
    "sampled": {
        "objective": "game",
        "group": "sampled",
        "group_size": 8,
        "sampler": "priority",
        "sample_teacher_mix": 0.5,
        "control_variate": "teacher",
        "sampled_baseline": "none",
        "ngram_order": TEACHER_ORDER,
        "partial_credit": 0.0,
        "confidence_bonus": 0.0,
        "beta": 0.0,
    },
    "distill": {
        "objective": "game",
        "group": "exhaustive",
        "ngram_order": TEACHER_ORDER,
        "partial_credit": 1.0,
        "guidance_schedule": "adaptive",
        "confidence_bonus": 0.0,
        "beta": 0.0,
    },
    "collapse": {"objective": "game", "advantage_norm": "std"},
}
# the teacher weighted 3:1 against the label while it is ahead (the 5-gram teacher is ~0.6 nats/char ahead at step 500)
ARMS["distill3"] = {**ARMS["distill"], "partial_credit": 3.0}
# the sampled game with the game's n-gram partial credit (the `distill` arm's reward, played with K sampled actions)
ARMS["sampled_credit"] = {**ARMS["sampled"], "partial_credit": 1.0, "guidance_schedule": "adaptive"}
LABELS = {
    "ce": "CE twin",
    "game": "exhaustive game (= CE + bigram distillation)",
    "sampled": "sampled game (K=8, teacher control variate)",
    "distill": f"CE + {TEACHER_ORDER}-gram distillation (adaptive)",
    "distill3": f"CE + {TEACHER_ORDER}-gram distillation, teacher weight 3 (adaptive)",
    "collapse": "exhaustive game, GRPO `std` norm",
    "sampled_credit": f"sampled game + {TEACHER_ORDER}-gram partial credit (adaptive)",
}


def run_one(corpus: str, arm: str, seed: int, a) -> dict:
    set_seed(seed)
    arm_kw = dict(ARMS[arm])
    if arm in ("game", "collapse"):
        arm_kw.update(guidance_decay_steps=a.steps // 4, confidence_ramp_steps=a.steps // 2)
    args = CharGRPOConfig(
        output_dir=str(Path(a.out) / "runs" / f"{Path(corpus).stem}-{arm}-{seed}"),
        corpus=corpus,
        model_preset=a.preset,
        block_size=a.block,
        per_device_train_batch_size=a.batch,
        max_steps=a.steps,
        learning_rate=1e-3,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": 0.1},
        warmup_steps=min(100, a.steps // 10),
        weight_decay=0.1,
        adam_beta2=0.99,
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
        **arm_kw,
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
    keep = ("game/est_rel_var", "game/est_rel_var_no_cv", "game/target_in_group", "game/partial_credit_weight")
    keep += ("game/teacher_gap", "health/overconfidence_window", "train/ce")
    res["train_log"] = [{k: h[k] for k in ("step", *keep) if k in h} for h in trainer.state.log_history]
    return res


def at_step(run: dict, step: int, key: str) -> float:
    for e in run["eval_curve"]:
        if e["step"] == step:
            return e[key]
    return float("nan")


def make_table(results: dict, a) -> str:
    steps = sorted(set(a.at + [a.steps]))
    out = [
        f"{a.preset} GPT-2 from random weights, batch {a.batch} x {a.block}, {a.steps} steps, AdamW lr 1e-3 cosine "
        f"to 1e-4, seeds {' '.join(map(str, a.seeds))} (mean ± sd over seeds); val = {a.eval_batches} x {a.batch} "
        "fixed validation blocks; n-gram baselines on the whole validation split; paired differences are "
        "arm - CE twin per seed with a 95 % Student-t interval.",
    ]
    for corpus, r in results.items():
        base = r["ce"][0]["baselines"]
        teacher = r["ce"][0]["teacher"]
        out += ["", f"**{Path(corpus).name}**", ""]
        head = "| arm |" + "".join(f" val CE @{s} | top-1 @{s} |" for s in steps) + " health warnings (total) |"
        out += [head, "|---|" + "---|---|" * len(steps) + "---|"]
        for arm, runs in r.items():
            cells = "".join(
                f" {fmt_ms([at_step(x, s, 'ce') for x in runs], '.3f')} |"
                f" {fmt_ms([at_step(x, s, 'accuracy') for x in runs], '.4f')} |"
                for s in steps
            )
            warn = {}
            for x in runs:
                for k, v in x["health_warnings"].items():
                    warn[k] = warn.get(k, 0) + v
            out.append(f"| {LABELS[arm]} |{cells} {warn or 'none'} |")
        for name in ("unigram", "bigram", "4gram"):
            out.append(
                f"| {name} table |" + f" {base[name]['ce']:.3f} | {base[name]['accuracy']:.4f} |" * len(steps) + " |"
            )
        out.append(
            f"| {TEACHER_ORDER}-gram teacher |"
            + f" {teacher['ce']:.3f} | {teacher['accuracy']:.4f} |" * len(steps)
            + " |"
        )
        out += ["", "| arm vs CE twin | step | CE ratio | CE diff [95 % CI] | top-1 ratio | top-1 diff [95 % CI] |"]
        out.append("|---|---|---|---|---|---|")
        ce_runs = r["ce"]
        for arm, runs in r.items():
            if arm == "ce":
                continue
            for s in steps:
                ce_a = [at_step(x, s, "ce") for x in runs]
                ce_b = [at_step(x, s, "ce") for x in ce_runs]
                acc_a = [at_step(x, s, "accuracy") for x in runs]
                acc_b = [at_step(x, s, "accuracy") for x in ce_runs]
                out.append(
                    f"| {LABELS[arm]} | {s} | {fmt_ms([x / y for x, y in zip(ce_a, ce_b)], '.3f')} | "
                    f"{paired_interval(ce_a, ce_b).format(3)} | {fmt_ms([x / y for x, y in zip(acc_a, acc_b)], '.3f')} | "
                    f"{paired_interval(acc_a, acc_b).format(4)} |"
                )
        out += ["", "Targets (each a paired 95 % interval over seeds):"]
        last = a.steps
        for arm in ("sampled", "sampled_credit"):
            if arm not in r:
                continue
            acc_a = [at_step(x, last, "accuracy") for x in r[arm]]
            acc_b = [at_step(x, last, "accuracy") for x in ce_runs]
            iv = paired_interval(acc_a, [0.97 * b for b in acc_b])
            ce_s = [at_step(x, last, "ce") for x in r[arm]]
            below = sum(c < base["bigram"]["ce"] for c in ce_s)
            out.append(
                f"- {arm} top-1 - 0.97 x CE twin's at step {last}: {iv.format(4)} -> "
                f"{'met' if iv.low > 0 else 'not met' if iv.high < 0 else 'not shown'} (target >= 0); "
                f"{arm} val CE below the bigram table ({base['bigram']['ce']:.3f}) in {below}/{len(ce_s)} seeds"
            )
        for arm in (a for a in r if a.startswith("distill")):
            for s in steps:
                ce_a = [at_step(x, s, "ce") for x in r[arm]]
                ce_b = [at_step(x, s, "ce") for x in ce_runs]
                iv = paired_interval(ce_a, [0.97 * b for b in ce_b])
                out.append(
                    f"- {arm} val CE - 0.97 x CE twin's at step {s}: {iv.format(3)} -> "
                    f"{'met' if iv.high < 0 else 'not met' if iv.low > 0 else 'not shown'} (target <= 0)"
                )
        diag = [arm for arm in r if any("game/est_rel_var" in h for x in r[arm] for h in x["train_log"])]
        if diag:
            out += ["", "| sampled arm | est. rel. error, teacher CV | without CV (same draws) | target in group |"]
            out.append("|---|---|---|---|")
            for arm in diag:

                def mean_of(key, runs=r[arm]):
                    return [
                        sum(h[key] for h in x["train_log"] if key in h) / sum(key in h for h in x["train_log"])
                        for x in runs
                    ]

                out.append(
                    f"| {LABELS[arm]} | {fmt_ms(mean_of('game/est_rel_var'), '.2f')} | "
                    f"{fmt_ms(mean_of('game/est_rel_var_no_cv'), '.2f')} | "
                    f"{fmt_ms(mean_of('game/target_in_group'), '.3f')} |"
                )
        out += ["", "Validation CE curve (mean over seeds):", ""]
        eval_steps = [e["step"] for e in ce_runs[0]["eval_curve"]]
        out.append("| arm |" + "".join(f" {s} |" for s in eval_steps))
        out.append("|---|" + "---|" * len(eval_steps))
        for arm, runs in r.items():
            vals = [sum(at_step(x, s, "ce") for x in runs) / len(runs) for s in eval_steps]
            out.append(f"| {LABELS[arm]} |" + "".join(f" {v:.3f} |" for v in vals))
    return "\n".join(out)


def probe_estimators(corpus: str, a) -> str:
    """How far each sampled estimator lands from the exact (exhaustive) gradient on real positions.

    Trains the CE twin's model with plain CE (same settings, constant lr) and, at each step of `--probe-at`, scores
    48 x 64 training positions: for every sampler / sampling distribution, with and without the teacher's control
    variate and the leave-one-out baseline, the relative squared error of the logit gradient
    (`game.gradient_rel_error`), averaged over 4 draws, and how often the target is in the group. Pure diagnosis:
    nothing here trains on the estimates.
    """
    import torch.nn.functional as F

    from open_r1_ext.char_rl.data import CharCorpus, load_corpus, random_blocks
    from open_r1_ext.char_rl.game import (
        draw_group,
        game_rewards,
        gradient_rel_error,
        proposal_logp,
        sampled_coefficients,
        teacher_expected_reward,
    )
    from open_r1_ext.char_rl.model import build_char_gpt2
    from open_r1_ext.char_rl.ngram import NGramModel

    c = CharCorpus.from_text(load_corpus(corpus))
    V = len(c.tokenizer)
    table = NGramModel.cached(c.train, V, TEACHER_ORDER, 3.0, c.fingerprint)
    torch.manual_seed(a.seeds[0])
    model = build_char_gpt2(V, a.block, a.preset)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    gen = torch.Generator().manual_seed(a.seeds[0])
    variants = [
        ("replacement", 1.0, 0.0, "none"),
        ("replacement", 1.0, 0.0, "loo"),
        ("replacement", 1.0, 0.5, "none"),
        ("priority", 1.0, 0.0, "none"),
        ("priority", 1.5, 0.0, "none"),
        ("priority", 1.0, 0.5, "none"),
        ("priority", 1.0, 0.7, "none"),  # how much of the teacher to mix in: 0.5 is the recipe's
        ("priority", 1.0, 0.85, "none"),
        ("priority", 1.0, 1.0, "none"),
    ]
    out = [
        f"Estimator error vs the exact gradient, K = 8, {TEACHER_ORDER}-gram teacher, {a.preset} model trained with "
        f"CE to each step (seed {a.seeds[0]}); mean over 4 draws of 48 x 64 training positions.",
        "",
        "| step | model / teacher CE | sampler | T | teacher mix | baseline | rel. error, teacher CV | without CV | "
        "target in group |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    done = 0
    for step in a.probe_at:
        while done < step:
            x, y = random_blocks(c.train, a.block, a.batch, gen)
            F.cross_entropy(model(input_ids=x).logits.flatten(0, 1), y.flatten()).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            done += 1
        with torch.no_grad():
            x, y = random_blocks(c.train, a.block, 48, torch.Generator().manual_seed(99))
            logp = model(input_ids=x).logits.float().log_softmax(-1)
        q = table.lookup(x, TEACHER_ORDER, exclude=y)
        r = game_rewards(y, q, logp.exp())
        h = teacher_expected_reward(q, logp.exp())
        model_ce = float(-logp.gather(-1, y[..., None]).mean())
        teacher_ce = float(-q.gather(-1, y[..., None]).log().mean())
        for sampler, temp, mix, baseline in variants:
            log_mu = proposal_logp(logp, temp, q, mix)
            errs = {"cv": [], "none": [], "in": []}
            for rep in range(4):
                acts, inv = draw_group(log_mu, 8, sampler, generator=torch.Generator().manual_seed(rep))
                for name, cv in (("cv", h), ("none", None)):
                    coef = sampled_coefficients(logp, r, acts, inv, cv, baseline)
                    errs[name].append(float(gradient_rel_error(coef, r, logp.exp())))
                errs["in"].append(float((acts == y[..., None]).any(-1).float().mean()))
            m = {k: sum(v) / len(v) for k, v in errs.items()}
            out.append(
                f"| {step} | {model_ce:.2f} / {teacher_ce:.2f} | {sampler} | {temp} | {mix} | {baseline} | "
                f"{m['cv']:.2f} | {m['none']:.2f} | {m['in']:.3f} |"
            )
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpora", nargs="+", default=["../shared/data/tinyshakespeare.txt"])
    p.add_argument("--arms", nargs="+", default=["ce", "sampled", "distill", "sampled_credit"], choices=sorted(ARMS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--at", nargs="+", type=int, default=[500], help="steps reported besides the last")
    p.add_argument("--preset", default="cpu-small")
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--block", type=int, default=64)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-batches", type=int, default=20)
    p.add_argument("--out", default="runs/bench_char_grpo")
    p.add_argument(
        "--probe-at",
        nargs="+",
        type=int,
        default=None,
        help="only probe the sampled estimators against the exact gradient at these CE-training steps, and exit",
    )
    a = p.parse_args(argv)
    if a.probe_at:
        torch.set_num_threads(1)
        text = probe_estimators(a.corpora[0], a)
        Path(a.out).mkdir(parents=True, exist_ok=True)
        (Path(a.out) / "probe.md").write_text(text + "\n")
        print(text)
        return
    if "ce" not in a.arms:
        raise SystemExit("--arms must include `ce`: every arm is measured against the CE twin")
    bad = [s for s in a.at if s > a.steps or s % a.eval_every]
    if bad:
        raise SystemExit(f"--at steps {bad} must be multiples of --eval-every {a.eval_every} and <= --steps {a.steps}")
    torch.set_num_threads(1)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    partial = Path(a.out) / "results.partial.json"
    done = json.loads(partial.read_text()) if partial.is_file() else {}
    results: dict = {}
    t_start = time.perf_counter()
    for corpus in a.corpora:
        results[corpus] = {arm: [] for arm in ["ce", *[x for x in a.arms if x != "ce"]]}
        for seed in a.seeds:
            for arm in results[corpus]:  # the arms of a seed run back to back: machine load hits them alike
                key = f"{corpus}|{arm}|{seed}|{a.steps}|{a.preset}|{a.batch}|{a.block}|{a.eval_every}"
                if key not in done:
                    res = run_one(corpus, arm, seed, a)
                    if arm == "ce":
                        from open_r1_ext.char_rl.data import CharCorpus, load_corpus
                        from open_r1_ext.char_rl.ngram import NGramModel

                        c = CharCorpus.from_text(load_corpus(corpus))
                        table = NGramModel.cached(c.train, len(c.tokenizer), TEACHER_ORDER, 3.0, c.fingerprint)
                        res["teacher"] = table.score(c.val, TEACHER_ORDER)
                    done[key] = res
                    partial.write_text(json.dumps(done))  # an interrupted benchmark resumes from here
                res = done[key]
                results[corpus][arm].append(res)
                print(
                    f"[bench] {Path(corpus).name} {arm} seed {seed}: val CE {res['val_ce']:.3f} "
                    f"acc {res['val_accuracy']:.4f} {res['chars_per_second']:.0f} chars/s "
                    f"warnings {res['health_warnings']} ({time.perf_counter() - t_start:.0f}s elapsed)",
                    flush=True,
                )
    table = make_table(results, a)
    (Path(a.out) / "results.json").write_text(json.dumps(results, indent=2))
    (Path(a.out) / "table.md").write_text(table + "\n")
    print(table)
    print(f"[bench] total {time.perf_counter() - t_start:.0f}s; results in {a.out}", flush=True)


if __name__ == "__main__":
    main()
