"""Held-out accuracy of a causal LM on a built-in task (pass@1 sampled, pass@k, greedy)."""

from __future__ import annotations

import torch

from . import tasks as tasks_mod


@torch.no_grad()
def sample_completions(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int,
    temperature: float = 1.0,
    num_samples: int = 1,
    batch_size: int = 256,
    seed: int = 0,
) -> list[list[str]]:
    """`num_samples` completions per prompt; temperature 0 means greedy. Returns `(len(prompts), num_samples)`."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    out: list[list[str]] = [[] for _ in prompts]
    flat = [(i, p) for i, p in enumerate(prompts) for _ in range(num_samples)]
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for start in range(0, len(flat), batch_size):
            chunk = flat[start : start + batch_size]
            enc = tokenizer([p for _, p in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(device) for k, v in enc.items()}
            # generate() draws from the global RNG; seed it from our generator so evaluation is repeatable
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            kwargs = (
                {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
                if temperature > 0
                else {"do_sample": False}
            )
            ids = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **kwargs,
            )
            texts = tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            for (i, _), t in zip(chunk, texts):
                out[i].append(t)
    finally:
        tokenizer.padding_side = old_side
        model.train(was_training)
    return out


def evaluate_task(
    model, tokenizer, task: str, n: int = 256, seed: int = 0, temperature: float = 1.0, num_samples: int = 1
) -> dict[str, float]:
    """Accuracy on `n` held-out problems: `pass@1` (mean over samples) and `pass@k` (any of `num_samples`)."""
    rows = tasks_mod.generate(task, n, seed=seed, split="test")
    spec = tasks_mod.get_task(task)
    samples = sample_completions(
        model,
        tokenizer,
        [r["prompt"] for r in rows],
        spec.max_completion_length,
        temperature=temperature,
        num_samples=num_samples,
        seed=seed,
    )
    hits = [[tasks_mod.extract_answer(s) == r["answer"] for s in ss] for r, ss in zip(rows, samples)]
    pass1 = sum(sum(h) / len(h) for h in hits) / len(hits)
    passk = sum(any(h) for h in hits) / len(hits)
    return {"pass@1": pass1, f"pass@{num_samples}": passk}
