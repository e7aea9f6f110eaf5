"""Score a checkpoint's pass@1 and pass@k on a built-in task or on a math dataset (math-verify).

    # built-in task (exact match on the final answer), e.g. a run's output_dir or the warm-started model
    python launch/evaluate.py --model runs/token_adaptive_builtin --task running_sum --num_samples 8
    python launch/evaluate.py --model builtin:running_sum --task running_sum

    # math: a hub id or a local .jsonl/.json/.csv/.parquet file with `problem` and `solution` columns
    python launch/evaluate.py --model data/Qwen2.5-1.5B-Open-R1-TokenAdaptive-GRPO \
        --dataset HuggingFaceH4/MATH-500 --split test --num_samples 4 --temperature 0.7 --max_new_tokens 2048

pass@1 is the mean accuracy over all samples; pass@k uses the unbiased estimator of Chen et al. 2021
(`1 - C(n - c, k) / C(n, k)` per problem, `n` samples of which `c` are correct) for every k in `--k`
(default: `num_samples`). Math answers are checked with the `accuracy` reward (math-verify against `solution`);
problems whose gold answer math-verify cannot parse are skipped and counted. Prints one JSON line; `--out` also
writes it to a file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path


os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with `n` samples of which `c` are correct."""
    if k > n:
        raise ValueError(f"k={k} exceeds the number of samples n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def summarise(correct: list[list[bool]], ks: list[int]) -> dict[str, float]:
    """`correct[i][j]`: sample j of problem i was right. Returns pass@1 and pass@k averaged over problems."""
    out = {"pass@1": sum(sum(c) / len(c) for c in correct) / max(len(correct), 1)}
    for k in ks:
        out[f"pass@{k}"] = sum(pass_at_k(len(c), sum(c), k) for c in correct) / max(len(correct), 1)
    return out


def load_model(name: str, warm_start_steps: int, device: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from open_r1_ext.core.tiny import TinyModelSettings, build_builtin, parse_builtin_name

    task = parse_builtin_name(name)
    path = str(build_builtin(TinyModelSettings(task=task, warm_start_steps=warm_start_steps))) if task else name
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    return model, tok


def math_prompts(tok, problems: list[str], system_prompt: str | None) -> list[str]:
    """Chat-formatted prompts when the tokenizer has a chat template, else the system prompt and problem as text."""
    if getattr(tok, "chat_template", None):
        msgs = [[{"role": "system", "content": system_prompt}] if system_prompt else [] for _ in problems]
        return [
            tok.apply_chat_template([*m, {"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            for m, p in zip(msgs, problems)
        ]
    return [(system_prompt + "\n" if system_prompt else "") + p for p in problems]


def evaluate_math(model, tok, args) -> dict:
    from open_r1_ext.core.data import load_any
    from open_r1_ext.core.evaluation import sample_completions
    from open_r1_ext.core.rewards import accuracy_reward

    ds = load_any(args.dataset, args.dataset_config)
    split = args.split if args.split in ds else next(iter(ds))
    rows = ds[split]
    for col in ("problem", "solution"):
        if col not in rows.column_names:
            raise ValueError(f"{args.dataset!r} has no {col!r} column (columns: {rows.column_names})")
    rows = rows.select(range(min(args.n, len(rows))))
    prompts = math_prompts(tok, rows["problem"], args.system_prompt)
    samples = sample_completions(
        model,
        tok,
        prompts,
        args.max_new_tokens,
        temperature=args.temperature,
        num_samples=args.num_samples,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    correct, skipped = [], 0
    for sol, ss in zip(rows["solution"], samples):
        scores = accuracy_reward(ss, solution=[sol] * len(ss))
        if any(s is None for s in scores):
            skipped += 1
            continue
        correct.append([s == 1.0 for s in scores])
    return {
        **summarise(correct, args.k),
        "problems": len(correct),
        "skipped_unparseable_gold": skipped,
        "split": split,
    }


def evaluate_builtin(model, tok, args) -> dict:
    from open_r1_ext.core import tasks as tasks_mod
    from open_r1_ext.core.evaluation import sample_completions

    rows = tasks_mod.generate(args.task, args.n, seed=args.seed, split="test")
    max_new = args.max_new_tokens or tasks_mod.get_task(args.task).max_completion_length
    samples = sample_completions(
        model,
        tok,
        [r["prompt"] for r in rows],
        max_new,
        temperature=args.temperature,
        num_samples=args.num_samples,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    correct = [[tasks_mod.extract_answer(s) == r["answer"] for s in ss] for r, ss in zip(rows, samples)]
    return {**summarise(correct, args.k), "problems": len(correct)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="checkpoint folder, hub id, or builtin:<task>")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", help="built-in task name (see open_r1_ext.core.tasks.TASKS)")
    src.add_argument("--dataset", help="math dataset: hub id or local file with problem/solution columns")
    ap.add_argument("--dataset_config", default=None)
    ap.add_argument("--split", default="test")
    ap.add_argument("--system_prompt", default=None)
    ap.add_argument(
        "--n", type=int, default=512, help="problems to score (the first n; the launch script's builtin_eval_samples)"
    )
    ap.add_argument("--num_samples", type=int, default=1, help="samples per problem")
    ap.add_argument("--k", type=int, nargs="*", default=None, help="pass@k to report (default: num_samples)")
    ap.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    ap.add_argument("--max_new_tokens", type=int, default=None, help="default: the task's length, or 1024 for math")
    ap.add_argument("--batch_size", type=int, default=64)
    ap.add_argument(
        "--seed", type=int, default=0, help="the launch script's builtin_data_seed: same problems, same draws"
    )
    ap.add_argument("--warm_start_steps", type=int, default=150, help="for builtin:<task> models")
    ap.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    ap.add_argument("--out", default=None, help="also write the JSON result here")
    args = ap.parse_args(argv)
    args.k = sorted({k for k in (args.k or [args.num_samples]) if k > 1 and k <= args.num_samples})
    if args.dataset and args.max_new_tokens is None:
        args.max_new_tokens = 1024

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    model, tok = load_model(args.model, args.warm_start_steps, device)
    res = evaluate_builtin(model, tok, args) if args.task else evaluate_math(model, tok, args)
    res = {
        "model": args.model,
        "data": args.task or args.dataset,
        "num_samples": args.num_samples,
        "temperature": args.temperature,
        **res,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    line = json.dumps(res)
    print(line)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(line + "\n")
    return res


if __name__ == "__main__":
    main()
