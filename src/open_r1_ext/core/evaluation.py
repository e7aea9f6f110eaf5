"""Held-out accuracy of a causal LM on a built-in task (pass@1 sampled, pass@k, greedy).

Sampling here is *per problem*, not per batch: each (problem, sample) pair owns a stream of uniform numbers seeded
from `(seed, problem index, sample index)`, and the next token is drawn by inverse-CDF from those numbers. So the
completions do not depend on the batch size, on which other problems share the batch, on how problems are split
over processes, or on the global RNG, and two models evaluated with the same seed see the same random numbers
(common random numbers: a paired comparison of two checkpoints is not blurred by sampling noise of its own).
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from . import tasks as tasks_mod


def _row_uniforms(seed: int, rows: list[tuple[int, int]], steps: int) -> torch.Tensor:
    """`(len(rows), steps)` uniforms in [0, 1): row `(problem, sample)` is a pure function of `(seed, problem, sample)`."""
    out = torch.empty(len(rows), steps, dtype=torch.float64)
    gen = torch.Generator(device="cpu")
    for r, (i, j) in enumerate(rows):
        # distinct, well-mixed 63-bit seeds for distinct (seed, problem, sample) triples
        gen.manual_seed((seed * 1_000_003 + i) * 1_000_033 + j + 0x5DEECE66D)
        out[r] = torch.rand(steps, generator=gen, dtype=torch.float64)
    return out


class InverseCDFSampler(LogitsProcessor):
    """Turns greedy decoding into sampling at `temperature` from fixed per-row uniforms.

    At decoding step t the row's next token is the first index whose cumulative probability exceeds `u[row, t]`;
    every other logit is set to -inf, so `generate(do_sample=False)` picks exactly that token.
    `uniforms`: `(batch, max_new_tokens)`, float64.
    """

    def __init__(self, uniforms: torch.Tensor, prompt_length: int, temperature: float):
        self.uniforms = uniforms
        self.prompt_length = prompt_length
        self.temperature = temperature

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        t = input_ids.shape[1] - self.prompt_length
        probs = torch.softmax(scores.double() / self.temperature, dim=-1)
        cdf = probs.cumsum(-1)
        u = self.uniforms[:, t].to(cdf.device).unsqueeze(-1) * cdf[:, -1:]
        token = torch.searchsorted(cdf, u).clamp_(max=scores.shape[-1] - 1)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, token, 0.0)
        return out


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
    indices: list[int] | None = None,
) -> list[list[str]]:
    """`num_samples` completions per prompt; temperature 0 means greedy. Returns `(len(prompts), num_samples)`.

    `indices` names each prompt's problem index (default: its position) for the per-problem random streams, so a
    subset of a problem set (one process's shard, say) samples exactly what the whole set would for those problems.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    indices = list(range(len(prompts))) if indices is None else list(indices)
    out: list[list[str]] = [[] for _ in prompts]
    flat = [(k, indices[k], j) for k in range(len(prompts)) for j in range(num_samples)]
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for start in range(0, len(flat), batch_size):
            chunk = flat[start : start + batch_size]
            enc = tokenizer(
                [prompts[k] for k, _, _ in chunk], return_tensors="pt", padding=True, add_special_tokens=False
            )
            enc = {k: v.to(device) for k, v in enc.items()}
            kwargs: dict = {"do_sample": False}
            if temperature > 0:
                uniforms = _row_uniforms(seed, [(i, j) for _, i, j in chunk], max_new_tokens)
                sampler = InverseCDFSampler(uniforms, enc["input_ids"].shape[1], temperature)
                kwargs["logits_processor"] = LogitsProcessorList([sampler])
            ids = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                top_k=None,
                top_p=None,
                temperature=None,
                **kwargs,
            )
            texts = tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            for (k, _, _), t in zip(chunk, texts):
                out[k].append(t)
    finally:
        tokenizer.padding_side = old_side
        model.train(was_training)
    return out


def score_task(
    model,
    tokenizer,
    task: str,
    n: int = 512,
    seed: int = 0,
    temperature: float = 1.0,
    num_samples: int = 1,
    shard: tuple[int, int] = (0, 1),
    batch_size: int = 256,
) -> tuple[list[int], list[list[bool]]]:
    """Per-problem hits on this shard (`(rank, world)`: problems `rank, rank + world, ...`) of `n` held-out problems.

    Returns `(problem indices, hits)`, `hits[k]` one boolean per sample. The union over ranks is what one process
    evaluating all `n` problems would get.
    """
    rank, world = shard
    rows = tasks_mod.generate(task, n, seed=seed, split="test")
    spec = tasks_mod.get_task(task)
    idx = list(range(rank, n, world))
    samples = sample_completions(
        model,
        tokenizer,
        [rows[i]["prompt"] for i in idx],
        spec.max_completion_length,
        temperature=temperature,
        num_samples=num_samples,
        seed=seed,
        indices=idx,
        batch_size=batch_size,
    )
    hits = [[tasks_mod.extract_answer(s) == rows[i]["answer"] for s in ss] for i, ss in zip(idx, samples)]
    return idx, hits


def summarize_hits(hits: list[list[bool]]) -> dict[str, float]:
    """`pass@1` (mean over problems of the share of correct samples) and `pass@k` (any of the k samples)."""
    k = len(hits[0]) if hits else 1
    pass1 = sum(sum(h) / len(h) for h in hits) / max(len(hits), 1)
    passk = sum(any(h) for h in hits) / max(len(hits), 1)
    return {"pass@1": pass1, f"pass@{k}": passk}


def evaluate_task(
    model,
    tokenizer,
    task: str,
    n: int = 256,
    seed: int = 0,
    temperature: float = 1.0,
    num_samples: int = 1,
    batch_size: int = 256,
) -> dict[str, float]:
    """Accuracy on `n` held-out problems: `pass@1` (mean over samples) and `pass@k` (any of `num_samples`).

    The result does not depend on `batch_size` (per-problem random streams; see the module docstring).
    """
    _, hits = score_task(model, tokenizer, task, n, seed, temperature, num_samples, batch_size=batch_size)
    return summarize_hits(hits)
