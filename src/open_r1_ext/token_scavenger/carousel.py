"""Carousel memory: a bounded FIFO of high-reward rollouts with the per-token log-probs they had when admitted.

The trainer replays a sampled batch each step and adds `carousel_weight * MSE(logp_now, logp_stored)` over its
completion tokens, pulling the policy back towards what it did on rollouts that once scored well (seed 000's
"carousel memory alignment"). The buffer lives on the CPU; `state_dict` / `load_state_dict` carry it (and the
sampler's RNG) through checkpoints.
"""

from __future__ import annotations

import random
from collections import OrderedDict

import torch


class CarouselBuffer:
    """At most `capacity` entries `(prompt_ids (P,), completion_ids (C,), logps (C,), reward)`, oldest evicted first.

    A rollout already in the buffer (same prompt and completion tokens) is not admitted twice, so a group of
    identical correct answers takes one slot, and keeps the log-probs it was first stored with.
    """

    def __init__(self, capacity: int, seed: int = 0):
        if capacity < 1:
            raise ValueError(f"CarouselBuffer capacity must be >= 1, got {capacity!r}")
        self.capacity = capacity
        self.entries: OrderedDict[tuple, dict[str, torch.Tensor | float]] = OrderedDict()
        self.rng = random.Random(seed)
        self.admitted = 0  # total ever admitted, for logging

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, prompt_ids: torch.Tensor, completion_ids: torch.Tensor, logps: torch.Tensor, reward: float) -> bool:
        """Admit one rollout (1-D tensors, no padding; `logps` aligned with `completion_ids`). Returns if it was new."""
        if completion_ids.numel() == 0 or completion_ids.numel() != logps.numel():
            return False
        key = (tuple(prompt_ids.tolist()), tuple(completion_ids.tolist()))
        if key in self.entries:
            return False
        self.entries[key] = {
            "prompt_ids": prompt_ids.detach().to("cpu", torch.long).clone(),
            "completion_ids": completion_ids.detach().to("cpu", torch.long).clone(),
            "logps": logps.detach().to("cpu", torch.float32).clone(),
            "reward": float(reward),
        }
        self.admitted += 1
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)
        return True

    def sample(self, batch_size: int) -> list[dict]:
        """Up to `batch_size` distinct entries, uniformly at random."""
        values = list(self.entries.values())
        return self.rng.sample(values, min(batch_size, len(values)))

    def state_dict(self) -> dict:
        return {
            "capacity": self.capacity,
            "entries": list(self.entries.values()),
            "rng_state": self.rng.getstate(),
            "admitted": self.admitted,
        }

    def load_state_dict(self, state: dict) -> None:
        self.entries.clear()
        for e in state["entries"][-self.capacity :]:
            key = (tuple(e["prompt_ids"].tolist()), tuple(e["completion_ids"].tolist()))
            self.entries[key] = e
        rng_state = state["rng_state"]
        self.rng.setstate((rng_state[0], tuple(rng_state[1]), rng_state[2]))
        self.admitted = int(state["admitted"])


def pad_replay_batch(entries: list[dict], pad_token_id: int, device) -> dict[str, torch.Tensor]:
    """Left-padded prompts and right-padded completions, as TRL lays a batch out.

    Returns `input_ids` `(R, P+C)`, `attention_mask` `(R, P+C)`, `completion_mask` `(R, C)`, `old_logps` `(R, C)`
    and `logits_to_keep` (= C).
    """
    p_len = max(e["prompt_ids"].numel() for e in entries)
    c_len = max(e["completion_ids"].numel() for e in entries)
    r = len(entries)
    prompt = torch.full((r, p_len), pad_token_id, dtype=torch.long)
    prompt_mask = torch.zeros((r, p_len), dtype=torch.long)
    completion = torch.full((r, c_len), pad_token_id, dtype=torch.long)
    completion_mask = torch.zeros((r, c_len), dtype=torch.long)
    old = torch.zeros((r, c_len), dtype=torch.float32)
    for i, e in enumerate(entries):
        p, c = e["prompt_ids"], e["completion_ids"]
        prompt[i, p_len - p.numel() :] = p
        prompt_mask[i, p_len - p.numel() :] = 1
        completion[i, : c.numel()] = c
        completion_mask[i, : c.numel()] = 1
        old[i, : c.numel()] = e["logps"]
    return {
        "input_ids": torch.cat([prompt, completion], 1).to(device),
        "attention_mask": torch.cat([prompt_mask, completion_mask], 1).to(device),
        "completion_mask": completion_mask.to(device),
        "old_logps": old.to(device),
        "logits_to_keep": c_len,
    }
