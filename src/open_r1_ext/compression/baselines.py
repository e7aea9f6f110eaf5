"""Baselines that remove exactly as many tokens as the policy: random, frequency and surprisal.

Each returns a bool mask `(B, n)` (`True` = removed) with exactly `k` tokens removed per row.

* `random`: `k` positions uniformly at random.
* `frequency`: the `k` tokens most frequent in the training split (ties broken at random).
* `surprisal`: the `k` tokens the reconstructor's own language model finds most predictable, i.e. the lowest
  `-log p(x_i | x_<i)` (LLMLingua, Selective Context). The reconstructor is a language model when its masked prefix is
  all `<mask>`, which the trainer includes in its training rows, so no second model is needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from open_r1_ext.compression.models import reconstruction_logits, topk_mask


def random_mask(input_ids: torch.Tensor, k: int, generator: torch.Generator | None = None, **_) -> torch.Tensor:
    return topk_mask(torch.rand(input_ids.shape, generator=generator, device=input_ids.device), k)


def frequency_mask(
    input_ids: torch.Tensor, k: int, token_freq: torch.Tensor, generator: torch.Generator | None = None, **_
) -> torch.Tensor:
    jitter = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)  # in [0, 1): breaks ties only
    return topk_mask(token_freq.to(input_ids.device)[input_ids].float() + jitter, k)


@torch.no_grad()
def lm_surprisal(reconstructor, input_ids: torch.Tensor, mask_id: int, sep_id: int) -> torch.Tensor:
    """`-log p(x_i | x_<i)` `(B, n)` under the reconstructor with nothing kept (a plain causal LM)."""
    everything = torch.ones_like(input_ids, dtype=torch.bool)
    logits = reconstruction_logits(reconstructor, input_ids, everything, mask_id, sep_id)
    return F.cross_entropy(logits.transpose(1, 2).float(), input_ids, reduction="none")


def surprisal_mask(input_ids: torch.Tensor, k: int, reconstructor, mask_id: int, sep_id: int, **_) -> torch.Tensor:
    return topk_mask(-lm_surprisal(reconstructor, input_ids, mask_id, sep_id), k)


BASELINES = {"random": random_mask, "frequency": frequency_mask, "surprisal": surprisal_mask}


def baseline_mask(name: str, input_ids: torch.Tensor, k: int, **kwargs) -> torch.Tensor:
    """Mask of baseline `name`; kwargs: `generator`, `token_freq` (frequency), `reconstructor/mask_id/sep_id`."""
    if name not in BASELINES:
        raise ValueError(f"Unknown baseline {name!r}; known baselines: {sorted(BASELINES)}")
    return BASELINES[name](input_ids, k, **kwargs)
