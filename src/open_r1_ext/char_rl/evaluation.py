"""Validation metrics of a character model, the n-gram baselines, and text samples.

`evaluate_char_model` scores `eval_batches x batch_size` validation blocks drawn with a fixed seed (the same
blocks for every run and every objective, as nanoGPT's `estimate_loss` but deterministic), averaging over every
position of every block: cross-entropy in nats and bits per character, perplexity, top-1 accuracy. The n-gram
baselines are scored on the whole validation split with their full context.
"""

from __future__ import annotations

import math

import torch

from .data import CharTokenizer, random_blocks
from .ngram import NGramModel


@torch.no_grad()
def evaluate_char_model(model, val: torch.Tensor, block_size: int, batch_size: int, batches: int, seed: int = 1234):
    """`{"ce", "bpc", "perplexity", "accuracy"}` of `model` on fixed random validation blocks."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    nll, correct, n = 0.0, 0, 0
    for _ in range(batches):
        x, y = random_blocks(val, block_size, batch_size, gen)
        logits = model(input_ids=x.to(device)).logits.float()
        y = y.to(device)
        nll += torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
        correct += (logits.argmax(-1) == y).sum().item()
        n += y.numel()
    model.train(was_training)
    ce = nll / n
    return {"ce": ce, "bpc": ce / math.log(2), "perplexity": math.exp(min(ce, 50.0)), "accuracy": correct / n}


def ngram_baselines(train: torch.Tensor, val: torch.Tensor, vocab_size: int, fingerprint: str, alpha: float):
    """Unigram, bigram and 4-gram models fitted on `train`, scored on `val`: `{"unigram": {...}, ...}`."""
    table = NGramModel.cached(train, vocab_size, 4, alpha, fingerprint)
    return {name: table.score(val, order) for name, order in (("unigram", 1), ("bigram", 2), ("4gram", 4))}


@torch.no_grad()
def sample_text(
    model, tokenizer: CharTokenizer, prompt: str = "\n", length: int = 200, temperature: float = 1.0, seed: int = 0
) -> str:
    """`length` characters sampled after `prompt`, with a sliding window of the model's context length."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    block = model.config.n_positions
    gen = torch.Generator(device="cpu").manual_seed(seed)
    ids = tokenizer.encode(prompt)[None, :] if prompt else torch.zeros(1, 1, dtype=torch.long)
    for _ in range(length):
        logits = model(input_ids=ids[:, -block:].to(device)).logits[0, -1].float().cpu()
        if temperature <= 0:
            nxt = logits.argmax()[None]
        else:
            nxt = torch.multinomial((logits / temperature).softmax(-1), 1, generator=gen)
        ids = torch.cat([ids, nxt[None]], dim=1)
    model.train(was_training)
    return tokenizer.decode(ids[0, len(prompt) if prompt else 1 :])
