"""Seed 000's shaped rewards, registered in the core reward registry on import (names below, weights from the
recipe's `reward_weights`). Each is TRL's `fn(completions, **kwargs) -> list[float]`; "tokens" are the policy's
completion tokens (`completion_ids`, which TRL passes), or whitespace-separated words when those are absent.

| name                 | value                                                                    | range   |
|----------------------|--------------------------------------------------------------------------|---------|
| `whitespace_penalty` | `-(share - 0.5) / 0.5` when whitespace is more than half the characters  | [-1, 0] |
| `diversity_bonus`    | distinct tokens / tokens                                                 | [0, 1]  |
| `length_bonus`       | `min(tokens, 20) / 20`                                                   | [0, 1]  |
"""

from __future__ import annotations

from open_r1_ext.core.rewards import REWARD_FUNCS, completion_text, register_reward


WHITESPACE_LIMIT = 0.5
LENGTH_SATURATION = 20


def _register(name: str):
    """`register_reward`, tolerant of this module being imported twice (e.g. as a file and as a package module)."""

    def deco(fn):
        old = REWARD_FUNCS.get(name)
        same = getattr(old, "__code__", None) is not None and (old.__code__.co_filename, old.__qualname__) == (
            fn.__code__.co_filename,
            fn.__qualname__,
        )
        if same:  # this very function, loaded again: keep the registered one
            return old
        return register_reward(name)(fn)

    return deco


def _tokens(completions, completion_ids):
    if completion_ids is not None:
        return [list(ids) for ids in completion_ids]
    return [completion_text(c).split() for c in completions]


@_register("whitespace_penalty")
def whitespace_penalty(completions, **kwargs) -> list[float]:
    """0 up to 50 % whitespace characters, then linearly down to -1 for an all-whitespace completion."""
    out = []
    for c in completions:
        text = completion_text(c)
        share = sum(ch.isspace() for ch in text) / len(text) if text else 0.0
        out.append(-max(0.0, share - WHITESPACE_LIMIT) / (1.0 - WHITESPACE_LIMIT))
    return out


@_register("diversity_bonus")
def diversity_bonus(completions, completion_ids=None, **kwargs) -> list[float]:
    """Share of distinct tokens in the completion (0 for an empty one)."""
    return [len(set(t)) / len(t) if t else 0.0 for t in _tokens(completions, completion_ids)]


@_register("length_bonus")
def length_bonus(completions, completion_ids=None, **kwargs) -> list[float]:
    """Completion length in tokens over 20, saturating at 1."""
    return [min(len(t), LENGTH_SATURATION) / LENGTH_SATURATION for t in _tokens(completions, completion_ids)]
