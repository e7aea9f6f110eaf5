"""Baselines that remove exactly as many tokens as the policy, sequence by sequence: random, frequency, surprisal.

Each returns a bool mask `(B, n)` (`True` = removed) with `k` tokens removed per row; `k` is an int or a LongTensor
`(B,)`, so a baseline can match the policy's own count on every sequence (the policy's rate is learned, so it
differs from one sequence to the next).

* `random`: `k` positions uniformly at random.
* `frequency`: the `k` tokens most frequent in the training split (ties broken at random).
* `surprisal`: the `k` tokens the reconstructor itself finds most predictable from their context, i.e. the lowest
  `-log p(x_i | x without x_i)` (Selective Context, LLMLingua use a causal LM's `-log p(x_i | x_<i)`; the
  reconstructor here sees both sides of a gap, so its own two-sided surprisal is the stronger baseline). Scored in
  strided passes by the reconstructor in use: for the infilling GPT-2, `-log p` of each hidden token from the
  teacher-forced infill (the gap-marked prefix, then the pass's earlier hidden tokens); for a masked LM, from its
  parallel pass.

The fourth baseline, `constant`, is a reconstructor, not a mask: it removes what `frequency` removes and predicts
every removed token as the training split's most frequent token (`constant_prediction`). It is the floor any
recovery figure must clear: predicting a newline everywhere already recovers a fifth of what frequency removes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from open_r1_ext.compression.models import removed_logits, topk_mask


def random_mask(input_ids: torch.Tensor, k, generator: torch.Generator | None = None, **_) -> torch.Tensor:
    return topk_mask(torch.rand(input_ids.shape, generator=generator).to(input_ids.device), k)


def frequency_mask(
    input_ids: torch.Tensor, k, token_freq: torch.Tensor, generator: torch.Generator | None = None, **_
) -> torch.Tensor:
    jitter = torch.rand(input_ids.shape, generator=generator).to(input_ids.device)  # in [0, 1): breaks ties only
    return topk_mask(token_freq.to(input_ids.device)[input_ids].float() + jitter, k)


@torch.no_grad()
def reconstructor_surprisal(reconstructor, input_ids: torch.Tensor, mask_id: int, stride: int = 8) -> torch.Tensor:
    """`-log p(x_i | x with x_i hidden)` `(B, n)` under the reconstructor, in `stride` passes: pass `j` hides the
    positions `i ≡ j (mod stride)`, so each token is scored with every other token of its `stride`-wide
    neighbourhood visible (`stride = n` is the exact one-token-at-a-time score). The infilling LM also conditions a
    hidden token on the pass's earlier hidden tokens (teacher-forced infill), as its likelihood factorises."""
    B, n = input_ids.shape
    stride = max(1, min(stride, n))
    pos = torch.arange(n, device=input_ids.device)
    out = torch.zeros(B, n, device=input_ids.device)
    for j in range(stride):
        hide = (pos % stride == j).expand(B, n)
        logits = removed_logits(reconstructor, input_ids, hide, mask_id).float()
        out[hide] = F.cross_entropy(logits, input_ids[hide], reduction="none")
    return out


mlm_surprisal = reconstructor_surprisal  # the name it had when the only reconstructor was a masked LM


def surprisal_mask(input_ids: torch.Tensor, k, reconstructor, mask_id: int, **_) -> torch.Tensor:
    return topk_mask(-reconstructor_surprisal(reconstructor, input_ids, mask_id), k)


BASELINES = {"random": random_mask, "frequency": frequency_mask, "surprisal": surprisal_mask}


def baseline_mask(name: str, input_ids: torch.Tensor, k, **kwargs) -> torch.Tensor:
    """Mask of baseline `name`; kwargs: `generator`, `token_freq` (frequency), `reconstructor/mask_id` (surprisal)."""
    if name not in BASELINES:
        raise ValueError(f"Unknown baseline {name!r}; known baselines: {sorted(BASELINES)}")
    return BASELINES[name](input_ids, k, **kwargs)


def constant_prediction(input_ids: torch.Tensor, mask: torch.Tensor, token_freq: torch.Tensor) -> torch.Tensor:
    """Reconstruction `(B, n)` that copies kept tokens and fills every removed one with the most frequent token."""
    mode = int(token_freq.argmax())
    return torch.where(mask, torch.full_like(input_ids, mode), input_ids)
