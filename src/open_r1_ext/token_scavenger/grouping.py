"""Grouping keys: which rollouts of one prompt's group form a latent group for the two-level estimator.

Every key is `fn(batch: LatentBatch) -> labels`, `labels` `(N,)` long over the gathered batch; rollouts share a
latent group when they have the same prompt group and the same label (labels need not be contiguous and may repeat
across prompt groups). Each key declares which `LatentBatch` fields it reads (`needs`), so the trainer gathers only
those. A new key is a function plus `@register_grouping_key("name", needs=...)`.

| key      | rollouts share a latent group when they ...                                                      |
|----------|--------------------------------------------------------------------------------------------------|
| `answer` | extract the same final answer (`\\boxed{…}`, `<answer>…</answer>`, else the built-in `>` answer)  |
| `prefix` | grew from the same token-adaptive prefix (`prefix_ids`), else share their first `prefix_tokens`  |
| `hidden` | fall in the same k-means cluster (`hidden_num_clusters`) of the policy's mean-pooled last hidden |
|          | state over the completion tokens, clustered inside each prompt group                             |
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from open_r1_ext.core.tasks import extract_answer


@dataclass
class LatentBatch:
    """What a grouping key may read about the gathered batch of N rollouts (fields a key does not need may be None).

    Attributes:
        group_ids: `(N,)` long, the prompt group of each rollout (contiguous runs of `num_generations`).
        completions: N completion texts.
        completion_ids: `(N, prefix_tokens)` long, the first completion tokens, `-1` past a completion's end.
        prefix_ids: `(N,)` long, the token-adaptive prefix each rollout grew from (None when sampling was plain).
        hidden: `(N, H)` float, pooled hidden states.
    """

    group_ids: torch.Tensor
    completions: list[str] | None = None
    completion_ids: torch.Tensor | None = None
    prefix_ids: torch.Tensor | None = None
    hidden: torch.Tensor | None = None
    prefix_tokens: int = 4
    num_clusters: int = 2
    kmeans_iters: int = 10
    extra: dict = field(default_factory=dict)


GroupingKey = Callable[[LatentBatch], torch.Tensor]
GROUPING_KEYS: dict[str, GroupingKey] = {}
KEY_NEEDS: dict[str, frozenset[str]] = {}


def register_grouping_key(name: str, needs: tuple[str, ...] = ()):
    """Decorator adding a grouping key under `name`; `needs` lists the `LatentBatch` fields it reads."""

    def deco(fn: GroupingKey) -> GroupingKey:
        if name in GROUPING_KEYS and GROUPING_KEYS[name] is not fn:
            raise ValueError(f"Grouping key {name!r} is already registered")
        GROUPING_KEYS[name] = fn
        KEY_NEEDS[name] = frozenset(needs)
        return fn

    return deco


def get_grouping_key(name: str) -> GroupingKey:
    if name not in GROUPING_KEYS:
        raise ValueError(f"Unknown grouping key {name!r}; known grouping keys: {sorted(GROUPING_KEYS)}")
    return GROUPING_KEYS[name]


_BOXED = re.compile(r"\\boxed\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def final_answer(text: str) -> str:
    """The last `\\boxed{…}`, else the last `<answer>…</answer>`, else the built-in tasks' answer after `>`."""
    boxed = _BOXED.findall(text)
    if boxed:
        return boxed[-1].strip()
    tagged = _ANSWER_TAG.findall(text)
    if tagged:
        return tagged[-1].strip()
    return extract_answer(text)


def _labels_from_strings(values: list[str]) -> torch.Tensor:
    index: dict[str, int] = {}
    return torch.tensor([index.setdefault(v, len(index)) for v in values], dtype=torch.long)


@register_grouping_key("answer", needs=("completions",))
def answer_key(batch: LatentBatch) -> torch.Tensor:
    """Same extracted final answer (see `final_answer`); an empty answer is an answer too (`""`)."""
    return _labels_from_strings([final_answer(c) for c in batch.completions]).to(batch.group_ids.device)


@register_grouping_key("prefix", needs=("prefix_ids", "completion_ids"))
def prefix_key(batch: LatentBatch) -> torch.Tensor:
    """The token-adaptive prefix id when sampling was adaptive, else the first `prefix_tokens` completion tokens."""
    if batch.prefix_ids is not None:
        return batch.prefix_ids.to(torch.long)
    _, labels = torch.unique(batch.completion_ids[:, : batch.prefix_tokens], dim=0, return_inverse=True)
    return labels.to(torch.long)


def kmeans_in_groups(x: torch.Tensor, k: int, iters: int = 10) -> torch.Tensor:
    """Batched k-means, one clustering per group: `x` `(num_groups, G, H)` -> labels `(num_groups, G)` in `[0, k)`.

    Points are L2-normalised (scale-free); centroids start at a deterministic farthest-point seeding (the first
    point, then repeatedly the point farthest from all chosen centroids), so the same batch always gives the same
    clusters. An empty cluster keeps its centroid.
    """
    num_groups, g, _ = x.shape
    k = max(1, min(k, g))
    x = torch.nn.functional.normalize(x.float(), dim=-1)
    chosen = [torch.zeros(num_groups, dtype=torch.long, device=x.device)]
    rows = torch.arange(num_groups, device=x.device)
    centroids = x[rows, chosen[0]].unsqueeze(1)  # (num_groups, 1, H)
    for _ in range(1, k):
        dist = torch.cdist(x, centroids).min(dim=-1).values  # (num_groups, G)
        nxt = dist.argmax(dim=-1)
        centroids = torch.cat([centroids, x[rows, nxt].unsqueeze(1)], dim=1)
    labels = torch.cdist(x, centroids).argmin(dim=-1)
    for _ in range(iters):
        onehot = torch.nn.functional.one_hot(labels, k).to(x.dtype)  # (num_groups, G, k)
        counts = onehot.sum(1)  # (num_groups, k)
        sums = onehot.transpose(1, 2) @ x  # (num_groups, k, H)
        new = sums / counts.clamp(min=1.0).unsqueeze(-1)
        centroids = torch.where(counts.unsqueeze(-1) > 0, new, centroids)
        new_labels = torch.cdist(x, centroids).argmin(dim=-1)
        if torch.equal(new_labels, labels):
            break
        labels = new_labels
    return labels


@register_grouping_key("hidden", needs=("hidden",))
def hidden_key(batch: LatentBatch) -> torch.Tensor:
    """k-means (`num_clusters`) on pooled hidden states, inside each prompt group (groups must be equal-sized runs)."""
    n = batch.group_ids.numel()
    _, counts = torch.unique_consecutive(batch.group_ids, return_counts=True)
    g = int(counts[0].item())
    if not bool((counts == g).all()):
        raise ValueError(f"hidden grouping needs equal-sized contiguous prompt groups, got sizes {counts.tolist()}")
    labels = kmeans_in_groups(batch.hidden.reshape(n // g, g, -1), batch.num_clusters, batch.kmeans_iters)
    return labels.reshape(n).to(torch.long)
