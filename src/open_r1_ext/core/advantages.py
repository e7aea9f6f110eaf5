"""Advantage estimators of the GRPO-family trainers: pure functions with one signature, behind a small registry.

Every estimator is `fn(rewards, group_ids, latent_ids, *, scale, omega, eps, clamp_max) -> AdvantageEstimate`:

- `rewards` `(N,)` float: one scalar reward per rollout of the *gathered* batch (all processes); `NaN` marks an
  unscorable rollout (every reward function returned `None`), which is left out of every statistic and gets 0.
- `group_ids` `(N,)` long: the prompt group of each rollout (TRL's layout: `arange(N) // num_generations`).
- `latent_ids` `(N,)` long: the latent group of each rollout. Two rollouts share a latent group only if they have
  the same `group_ids` and the same `latent_ids`; estimators that do not use latent groups ignore it.
- `scale`: divide by the standard deviation (TRL's `scale_rewards != "none"`); `omega`: weight of the
  micro-advantage; `eps`: added to every std (TRL's 1e-4); `clamp_max`: clamp advantages to `±clamp_max` (None: off).

A new estimator is a new function plus `@register_estimator("name")`; `get_estimator` fails with the known names.

`tree_token_advantages` is the token-level form of `two_level` on a prefix tree (token-adaptive branching): it
returns per-row parts that `expand_token_advantages` turns into `(N, T)` advantages, which TRL's loss accepts.

Standard deviations are Bessel-corrected, as TRL's `nanstd`, so `grpo` reproduces `GRPOTrainer`'s advantages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch


class AdvantageEstimate(NamedTuple):
    """`advantages` `(N,)` = `macro + omega * micro` (clamped); the parts are returned for logging, each `(N,)`.

    Single-level estimators put their advantage in `macro` and zeros in `micro`.
    """

    advantages: torch.Tensor
    macro: torch.Tensor
    micro: torch.Tensor


Estimator = Callable[..., AdvantageEstimate]
ESTIMATORS: dict[str, Estimator] = {}
# Estimators that read `latent_ids`: the trainer computes a grouping key only for these.
USES_LATENT_GROUPS: set[str] = set()


def register_estimator(name: str, uses_latent_groups: bool = False):
    """Decorator adding an estimator to `ESTIMATORS` under `name`."""

    def deco(fn: Estimator) -> Estimator:
        if name in ESTIMATORS and ESTIMATORS[name] is not fn:
            raise ValueError(f"Advantage estimator {name!r} is already registered")
        ESTIMATORS[name] = fn
        if uses_latent_groups:
            USES_LATENT_GROUPS.add(name)
        return fn

    return deco


def get_estimator(name: str) -> Estimator:
    if name not in ESTIMATORS:
        raise ValueError(f"Unknown advantage estimator {name!r}; known estimators: {sorted(ESTIMATORS)}")
    return ESTIMATORS[name]


def segment_stats(
    values: torch.Tensor, segments: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row mean, Bessel-corrected std and count of the row's segment, over valid rows only.

    Args:
        values: `(N,)` float. segments: `(N,)` long, any labels (need not be contiguous). valid: `(N,)` bool.

    Returns:
        `(mean, std, count)`, each `(N,)`; `std` is 0 for a segment with fewer than two valid rows.
    """
    _, seg = torch.unique(segments, return_inverse=True)
    num = int(seg.max().item()) + 1 if seg.numel() else 0
    dtype = torch.float64  # sums of many rewards; the result is cast back
    v = torch.where(valid, values, torch.zeros_like(values)).to(dtype)
    w = valid.to(dtype)
    count = torch.zeros(num, dtype=dtype, device=values.device).index_add_(0, seg, w)
    total = torch.zeros(num, dtype=dtype, device=values.device).index_add_(0, seg, v)
    mean = total / count.clamp(min=1.0)
    dev = (v - mean[seg]) * w
    sq = torch.zeros(num, dtype=dtype, device=values.device).index_add_(0, seg, dev * dev)
    std = torch.where(count > 1, (sq / (count - 1).clamp(min=1.0)).sqrt(), torch.zeros_like(sq))
    return mean[seg].to(values.dtype), std[seg].to(values.dtype), count[seg].to(values.dtype)


def _finish(advantages, macro, micro, valid, clamp_max) -> AdvantageEstimate:
    zero = torch.zeros_like(advantages)
    advantages = torch.where(valid, advantages, zero)
    if clamp_max is not None:
        advantages = advantages.clamp(-clamp_max, clamp_max)
    return AdvantageEstimate(advantages, torch.where(valid, macro, zero), torch.where(valid, micro, zero))


@register_estimator("grpo")
def grpo_advantages(rewards, group_ids, latent_ids=None, *, scale=True, omega=1.0, eps=1e-4, clamp_max=None):
    """GRPO (DeepSeekMath): `(r - mean_group) / (std_group + eps)`, `(N,)`; equals `GRPOTrainer` with
    `scale_rewards="group"` (or `"none"` when `scale=False`)."""
    valid = torch.isfinite(rewards)
    mean, std, _ = segment_stats(rewards, group_ids, valid)
    adv = rewards - mean
    if scale:
        adv = adv / (std + eps)
    return _finish(adv, adv, torch.zeros_like(adv), valid, clamp_max)


@register_estimator("dr_grpo")
def dr_grpo_advantages(rewards, group_ids, latent_ids=None, *, scale=True, omega=1.0, eps=1e-4, clamp_max=None):
    """Mean-only baseline (Dr. GRPO, Liu et al. 2025): `r - mean_group`, `(N,)`; `scale` is ignored, since not
    dividing by the group std is the point (it over-weights near-uniform groups)."""
    valid = torch.isfinite(rewards)
    mean, _, _ = segment_stats(rewards, group_ids, valid)
    adv = rewards - mean
    return _finish(adv, adv, torch.zeros_like(adv), valid, clamp_max)


@register_estimator("rloo")
def rloo_advantages(rewards, group_ids, latent_ids=None, *, scale=True, omega=1.0, eps=1e-4, clamp_max=None):
    """REINFORCE leave-one-out (Ahmadian et al. 2024): `r_i - mean_{j != i} r_j = n/(n-1) * (r_i - mean)`, `(N,)`.

    `scale` is ignored (RLOO is unscaled); a group with one valid rollout has no baseline and gets 0.
    """
    valid = torch.isfinite(rewards)
    mean, _, count = segment_stats(rewards, group_ids, valid)
    adv = torch.where(count > 1, (rewards - mean) * count / (count - 1).clamp(min=1.0), torch.zeros_like(rewards))
    return _finish(adv, adv, torch.zeros_like(adv), valid, clamp_max)


@register_estimator("two_level", uses_latent_groups=True)
def two_level_advantages(rewards, group_ids, latent_ids, *, scale=True, omega=1.0, eps=1e-4, clamp_max=5.0):
    """TokenScavenger's two-level credit assignment, `(N,)`.

    With `m_i` the mean reward of rollout i's latent group (inside its prompt group):

    - macro_i = `(m_i - mean_g(m)) / (std_g(m) + eps)`: latent-group means normalised across the prompt's latent
      groups, each latent group weighted by its number of rollouts (mean and std taken over the rollouts' `m`);
    - micro_i = `(r_i - m_i) / (std_latent(r) + eps)`: the rollout against its own latent group;
    - A_i = `macro_i + omega * micro_i`, clamped to `±clamp_max`.

    Rule for degenerate latent groups (the seed's public version gave these rollouts 0): a **singleton** latent
    group has no within-group comparison, so its micro is 0 and its macro is `(r_i - mean_g(m)) / std_g(m)`; a
    **zero-variance** latent group likewise has micro 0 and all of its signal in macro. Hence when every latent
    group is a singleton (or has zero variance), A is exactly GRPO's advantage, and when the whole prompt group is
    one latent group, macro is 0 and micro is exactly GRPO's: a rollout whose reward differs from its prompt
    group's mean never gets 0 from a degenerate grouping (only an exact cancellation of its macro and micro
    parts can, which needs `r_i - m_i` and `m_i - mean_g` of opposite signs and matching scaled size).
    """
    valid = torch.isfinite(rewards)
    # Latent groups never straddle prompt groups: key them by (prompt group, latent label).
    latent = group_ids.to(torch.long) * (int(latent_ids.max().item()) + 1 if latent_ids.numel() else 1) + (
        latent_ids.to(torch.long)
    )
    m, s_latent, n_latent = segment_stats(rewards, latent, valid)
    micro = rewards - m
    if scale:
        micro = micro / (s_latent + eps)
    micro = torch.where(n_latent > 1, micro, torch.zeros_like(micro))
    m_for_stats = torch.where(valid, m, torch.full_like(m, float("nan")))
    g_mean, g_std, _ = segment_stats(m_for_stats, group_ids, valid)
    macro = m - g_mean
    if scale:
        macro = macro / (g_std + eps)
    return _finish(macro + omega * micro, macro, micro, valid, clamp_max)


class TreeAdvantages(NamedTuple):
    """Per-row parts of token-level tree credit, each `(N,)`: tokens before `split` get `shared`, the rest `own`.

    `siblings` is the number of valid rows in the row's prefix node (1 for a row that shares no prefix).
    """

    shared: torch.Tensor
    own: torch.Tensor
    split: torch.Tensor
    siblings: torch.Tensor


def tree_token_advantages(
    rewards, group_ids, node_ids, shared_lengths, *, scale=True, omega=1.0, eps=1e-4, clamp_max=None
) -> TreeAdvantages:
    """Token-level two-level credit on a one-level prefix tree (as TreePO / TreeAdv assign it), `(N,)` parts.

    Args:
        rewards: `(N,)` scalar rewards of the gathered batch (`NaN`: unscorable, gets 0).
        group_ids: `(N,)` prompt group of each row.
        node_ids: `(N,)` prefix node: rows of one prompt group with the same node id share their first
            `shared_lengths` completion tokens (a branch's base trajectory and its continuations).
        shared_lengths: `(N,)` long, the shared prefix length of each row (0 for a row in no shared node).

    GRPO's advantage splits into two levels, `(r_i - mu_g) / sigma_g = macro_i + micro_i` with
    `macro_i = (V_node - mu_g) / sigma_g` (the node's mean reward, its subtree's value, against the prompt group's)
    and `micro_i = (r_i - V_node) / sigma_g` (the leaf against its node), `sigma_g` the group's reward std as GRPO
    scales. Here the `k` rows of a node put `macro_i / k` on each shared prefix token, so the prefix is credited once
    in total (GRPO credits it `k` times, once per sibling), and `omega * micro_i` on their own tokens. A row that
    shares no prefix (a node of one) gets `macro_i + micro_i`, GRPO's advantage, on every token; a batch without
    branches gets exactly GRPO's advantages.
    """
    valid = torch.isfinite(rewards)
    g_mean, g_std, _ = segment_stats(rewards, group_ids, valid)
    key = group_ids.to(torch.long) * (int(node_ids.max().item()) + 1 if node_ids.numel() else 1) + node_ids.long()
    n_mean, _, siblings = segment_stats(rewards, key, valid)
    siblings = siblings.clamp(min=1.0)
    denom = (g_std + eps) if scale else torch.ones_like(g_std)
    macro, micro = (n_mean - g_mean) / denom, (rewards - n_mean) / denom
    branched = (siblings > 1) & (shared_lengths > 0)
    shared = torch.where(branched, macro / siblings, macro + micro)
    own = torch.where(branched, omega * micro, macro + micro)
    split = torch.where(branched, shared_lengths.long(), torch.full_like(shared_lengths.long(), 2**62))
    if clamp_max is not None:
        shared, own = shared.clamp(-clamp_max, clamp_max), own.clamp(-clamp_max, clamp_max)
    zero = torch.zeros_like(shared)
    return TreeAdvantages(torch.where(valid, shared, zero), torch.where(valid, own, zero), split, siblings)


def expand_token_advantages(parts: TreeAdvantages, width: int) -> torch.Tensor:
    """`(N, width)` advantages: position `t` of row `i` gets `shared[i]` if `t < split[i]`, else `own[i]`."""
    positions = torch.arange(width, device=parts.shared.device).unsqueeze(0)
    return torch.where(positions < parts.split.unsqueeze(1), parts.shared.unsqueeze(1), parts.own.unsqueeze(1))
