"""Probe: how far TokenScavenger's two-level advantages move from GRPO's on the batch the loss really sees.

    OMP_NUM_THREADS=1 python launch/probe_two_level.py [--model runs/compare/scratch/grpo/seed_0] [--prompts 64]

Samples `--prompts` training prompts × 8 completions of the scratchpad task (T = 1) from a model folder (default: the
testbed (b) warm start), scores them with `exact_match + scratchpad_steps` (the benchmark's reward), and computes
GRPO's and two-level's advantages (`answer` latent groups) on the same rewards. Prints how much of the two-level
estimate is new: the correlation with GRPO's, the share of rollouts whose advantage changes sign or moves by more
than 0.25, the share of latent groups that are singletons, and of the others how many are reward-constant (micro = 0
in both), and the spread of
the micro part against the macro part.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch


os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def probe(model_dir: str, n_prompts: int, seed: int = 0, G: int = 8) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from open_r1_ext.core import tasks
    from open_r1_ext.core.advantages import get_estimator
    from open_r1_ext.core.evaluation import sample_completions
    from open_r1_ext.core.rewards import exact_match_reward, scratchpad_steps_reward
    from open_r1_ext.token_scavenger.grouping import final_answer

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    rows = tasks.generate("addition_scratch", n_prompts, seed=seed, split="train")
    prompts = [r["prompt"] for r in rows]
    comps = sample_completions(model, tok, prompts, max_new_tokens=40, temperature=1.0, num_samples=G, seed=seed)
    flat = [c for cs in comps for c in cs]
    fprompts = [p for p in prompts for _ in range(G)]
    answers = [r["answer"] for r in rows for _ in range(G)]
    rewards = torch.tensor(exact_match_reward(flat, answers)) + torch.tensor(
        scratchpad_steps_reward(flat, prompts=fprompts, answer=answers)
    )
    group_ids = torch.arange(n_prompts).repeat_interleave(G)
    latent = []
    for g in range(n_prompts):
        index: dict[str, int] = {}
        latent += [index.setdefault(final_answer(c), len(index)) for c in comps[g]]
    latent = torch.tensor(latent)
    grpo = get_estimator("grpo")(rewards, group_ids).advantages
    two = get_estimator("two_level")(rewards, group_ids, latent, clamp_max=5.0)
    # latent groups: (prompt, answer) pairs
    keys = group_ids * 1000 + latent
    sizes, const = [], []
    for k in keys.unique():
        r = rewards[keys == k]
        sizes.append(len(r))
        const.append(bool(len(r) < 2 or (r.max() - r.min()) < 1e-9))
    live = rewards.view(n_prompts, G).std(1).repeat_interleave(G) > 0
    a, b = grpo[live], two.advantages[live]
    return {
        "model": model_dir,
        "rollouts": len(flat),
        "exact_match_mean": float(torch.tensor(exact_match_reward(flat, answers)).mean()),
        "latent_groups_per_prompt": len(sizes) / n_prompts,
        "singleton_latent_groups": sum(s == 1 for s in sizes) / len(sizes),
        # of the latent groups with two or more rollouts: how many have no reward spread inside (micro = 0)
        "reward_constant_of_shared": sum(c for c, s in zip(const, sizes) if s > 1) / max(1, sum(s > 1 for s in sizes)),
        "corr_with_grpo": float(torch.corrcoef(torch.stack([a, b]))[0, 1]),
        "sign_changes": float(((a > 0) != (b > 0)).float().mean()),
        "moved_more_than_0.25": float(((a - b).abs() > 0.25).float().mean()),
        "micro_std": float(two.micro[live].std()),
        "macro_std": float(two.macro[live].std()),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs="+", default=None, help="model folders (default: the testbed (b) warm start)")
    ap.add_argument("--prompts", type=int, default=64)
    args = ap.parse_args(argv)
    if not args.model:
        from open_r1_ext.core.tiny import TinyModelSettings, build_builtin

        settings = TinyModelSettings(task="addition_scratch", warm_start_steps=200, warm_start_lr=2e-3)
        args.model = [str(build_builtin(settings))]
    for m in args.model:
        r = probe(m, args.prompts)
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()), flush=True)


if __name__ == "__main__":
    main()
