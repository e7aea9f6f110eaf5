"""Reward functions with TRL's signature: `fn(completions, **kwargs) -> list[float | None]`.

`completions` is a list of strings (standard prompts) or of message lists (conversational prompts); dataset
columns arrive as keyword lists of the same length. A `None` reward means "no verdict" and TRL leaves that sample
out of its group statistics. Reward functions are found by name in `REWARD_FUNCS` or by dotted import path
(`my_pkg.rewards:fn` or `my_pkg.rewards.fn`); `get_reward_funcs` fails with the list of known names.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import math
import re
from collections.abc import Callable

from . import tasks as tasks_mod
from .configs import UserError


logger = logging.getLogger(__name__)

RewardFunc = Callable[..., list]
REWARD_FUNCS: dict[str, RewardFunc] = {}


def register_reward(name: str):
    """Decorator adding a reward function to the registry under `name`."""

    def deco(fn: RewardFunc) -> RewardFunc:
        if name in REWARD_FUNCS:
            raise ValueError(f"Reward function {name!r} is already registered")
        REWARD_FUNCS[name] = fn
        return fn

    return deco


def completion_text(completion) -> str:
    """The text of a completion in either of TRL's formats (string, or list of chat messages)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[0], dict):
        return completion[-1].get("content") or ""
    raise TypeError(f"Unsupported completion type {type(completion).__name__}: {completion!r:.80}")


@register_reward("accuracy")
def accuracy_reward(completions, solution=None, answer=None, **kwargs) -> list[float | None]:
    """1.0 when the completion's final answer equals the gold answer under math-verify, else 0.0.

    The gold answer comes from the `solution` column (open-r1's datasets) or `answer`. Returns `None` for a gold
    answer math-verify cannot parse, so an unparseable label never punishes the policy.
    """
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import LatexExtractionConfig, parse, verify

    golds = solution if solution is not None else answer
    if golds is None:
        raise ValueError("accuracy reward needs a `solution` or `answer` column in the dataset")
    rewards: list[float | None] = []
    for completion, sol in zip(completions, golds):
        gold = parse(str(sol), extraction_mode="first_match")
        if not gold:  # try as a bare expression, e.g. "42"
            gold = parse(f"${sol}$", extraction_mode="first_match")
        if not gold:
            logger.warning("accuracy reward: could not parse gold answer %r; reward is None", sol)
            rewards.append(None)
            continue
        pred = parse(
            completion_text(completion),
            extraction_config=[
                LatexExtractionConfig(
                    normalization_config=NormalizationConfig(
                        nits=False, malformed_operators=False, basic_latex=True, boxed="all", units=True
                    ),
                    boxed_match_priority=0,
                    try_extract_without_anchor=False,
                ),
                *_expr_config(),
            ],
            extraction_mode="first_match",
        )
        try:
            rewards.append(float(verify(gold, pred)))
        except Exception as exc:  # math-verify raises on exotic inputs; that is a wrong answer, not a crash
            logger.debug("accuracy reward: verify failed (%s)", exc)
            rewards.append(0.0)
    return rewards


def _expr_config():
    from math_verify import ExprExtractionConfig

    return [ExprExtractionConfig()]


_FORMAT_RE = re.compile(r"^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>$", re.DOTALL)


@register_reward("format")
def format_reward(completions, **kwargs) -> list[float]:
    """1.0 when the completion is exactly `<think>\\n…\\n</think>\\n<answer>\\n…\\n</answer>`, as in open-r1."""
    return [1.0 if _FORMAT_RE.match(completion_text(c)) else 0.0 for c in completions]


@register_reward("tag_count")
def tag_count_reward(completions, **kwargs) -> list[float]:
    """0.25 for each of the four think/answer tags present exactly once with its newlines (open-r1's shaping)."""

    def count(text: str) -> float:
        return 0.25 * sum(text.count(tag) == 1 for tag in ("<think>\n", "\n</think>\n", "\n<answer>\n", "\n</answer>"))

    return [count(completion_text(c)) for c in completions]


@register_reward("exact_match")
def exact_match_reward(completions, answer, **kwargs) -> list[float]:
    """1.0 when the final answer (text after the last `>`) equals `answer` exactly (built-in tasks)."""
    return [float(tasks_mod.extract_answer(completion_text(c)) == str(a)) for c, a in zip(completions, answer)]


@register_reward("partial_credit")
def partial_credit_reward(completions, answer, **kwargs) -> list[float]:
    """Share of answer characters right in position, minus a length-mismatch share; in [0, 1] (built-in tasks).

    Gives a graded signal on top of `exact_match` (which it equals when the answer is exactly right).
    """
    out = []
    for c, a in zip(completions, answer):
        pred, gold = tasks_mod.extract_answer(completion_text(c)), str(a)
        if not gold:
            out.append(float(pred == gold))
            continue
        hits = sum(p == g for p, g in zip(pred, gold))
        out.append(hits / max(len(gold), len(pred)))
    return out


@register_reward("scratchpad_steps")
def scratchpad_steps_reward(completions, prompts=None, answer=None, **kwargs) -> list[float]:
    """Graded credit on the built-in scratchpad task: (column steps written correctly in place + exact final
    answer) / (columns + 1), in [0, 1]. A step is `x+y+c=ss` for one column, carry included, checked against the
    prompt; so two rollouts with the same final answer differ when one got there through wrong column sums. On a
    prompt that is not a scratchpad addition it is `exact_match`.
    """
    out = []
    for i, c in enumerate(completions):
        text = completion_text(c)
        right = float(answer is not None and tasks_mod.extract_answer(text) == str(answer[i]))
        prompt = prompts[i] if prompts is not None else None
        prompt = prompt if isinstance(prompt, str) else completion_text(prompt[-1]) if prompt else ""
        steps = tasks_mod.scratchpad_steps(prompt)
        if not steps:
            out.append(right)
            continue
        written = text.rsplit(tasks_mod.ANSWER_MARK, 1)[0].split(",")
        hits = sum(w.strip() == s for w, s in zip(written, steps))
        out.append((hits + right) / (len(steps) + 1))
    return out


# Shaped rewards (TokenScavenger's seed 000): "tokens" are the policy's completion tokens (`completion_ids`, which
# TRL passes), or whitespace-separated words when those are absent. `whitespace_penalty` in [-1, 0]: -(share - 0.5)
# / 0.5 when whitespace is more than half the characters; `diversity_bonus` in [0, 1]: distinct tokens / tokens;
# `length_bonus` in [0, 1]: min(tokens, 20) / 20.
WHITESPACE_LIMIT = 0.5
LENGTH_SATURATION = 20


def _tokens(completions, completion_ids):
    if completion_ids is not None:
        return [list(ids) for ids in completion_ids]
    return [completion_text(c).split() for c in completions]


@register_reward("whitespace_penalty")
def whitespace_penalty(completions, **kwargs) -> list[float]:
    """0 up to 50 % whitespace characters, then linearly down to -1 for an all-whitespace completion."""
    out = []
    for c in completions:
        text = completion_text(c)
        share = sum(ch.isspace() for ch in text) / len(text) if text else 0.0
        out.append(-max(0.0, share - WHITESPACE_LIMIT) / (1.0 - WHITESPACE_LIMIT))
    return out


@register_reward("diversity_bonus")
def diversity_bonus(completions, completion_ids=None, **kwargs) -> list[float]:
    """Share of distinct tokens in the completion (0 for an empty one)."""
    return [len(set(t)) / len(t) if t else 0.0 for t in _tokens(completions, completion_ids)]


@register_reward("length_bonus")
def length_bonus(completions, completion_ids=None, **kwargs) -> list[float]:
    """Completion length in tokens over 20, saturating at 1."""
    return [min(len(t), LENGTH_SATURATION) / LENGTH_SATURATION for t in _tokens(completions, completion_ids)]


def resolve_reward(name: str) -> RewardFunc:
    """A registered name, or a dotted import path `pkg.mod:fn` / `pkg.mod.fn`."""
    if name in REWARD_FUNCS:
        return REWARD_FUNCS[name]
    if "." in name or ":" in name:
        mod_name, _, attr = name.replace(":", ".").rpartition(".")
        try:
            fn = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as exc:
            raise UserError(f"Could not import reward function {name!r}: {exc}") from exc
        if not callable(fn):
            raise UserError(f"Reward function {name!r} is not callable")
        return fn
    raise UserError(f"Unknown reward function {name!r}; known: {sorted(REWARD_FUNCS)} or a dotted import path")


def get_reward_funcs(names: list[str]) -> list[RewardFunc]:
    """The named reward functions, each wrapped by `finite_rewards` (non-finite values become counted `None`)."""
    if not names:
        raise UserError(f"No reward functions given; known: {sorted(REWARD_FUNCS)}")
    return [finite_rewards(resolve_reward(n)) for n in names]


def _finite_or_none(values, fn_name: str, counter: dict):
    out = []
    for v in values:
        if v is not None and not math.isfinite(float(v)):
            counter["nonfinite"] += 1
            if not counter["warned"]:
                counter["warned"] = True
                logger.warning(
                    "Reward function %r returned %r: non-finite rewards are treated as no verdict (None, left out of "
                    "the group baseline, as TRL treats None) and counted in results.json `nonfinite_rewards`",
                    fn_name,
                    v,
                )
            v = None
        out.append(v)
    return out


def finite_rewards(fn: RewardFunc) -> RewardFunc:
    """`fn` (sync or async) with every non-finite value (inf, -inf, nan) replaced by `None` and counted.

    Without it an infinite reward reaches TRL's group normalisation (GRPO's loss becomes 0 or NaN and the weights
    are corrupted) while NaN is already handled as "no verdict"; with it both mean the same thing. The wrapper keeps
    `__name__` (TRL's metric names) and exposes the count as `wrapper.nonfinite_count()`.
    """
    if getattr(fn, "_open_r1_ext_finite", False):
        return fn
    name = getattr(fn, "__name__", type(fn).__name__)
    counter = {"nonfinite": 0, "warned": False}
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            return _finite_or_none(await fn(*args, **kwargs), name, counter)

    else:

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return _finite_or_none(fn(*args, **kwargs), name, counter)

    wrapper.__name__ = name
    wrapper._open_r1_ext_finite = True
    wrapper.nonfinite_count = lambda: counter["nonfinite"]
    return wrapper


def nonfinite_counts(funcs) -> dict[str, int]:
    """`{reward name: non-finite values replaced}` over `finite_rewards`-wrapped functions (others are left out)."""
    return {f.__name__: f.nonfinite_count() for f in funcs if hasattr(f, "nonfinite_count")}


def splice_reward(funcs, placeholder, reward, reward_weights: list[float] | None = None):
    """Put a trainer-built reward (`reward`, e.g. a teacher) among the reward functions a recipe named.

    Where `funcs` lists `placeholder` (the name a recipe uses for it) the reward takes its place; otherwise it is
    appended and, when `reward_weights` gives one weight per named function, weight 1.0 is appended for it.
    Returns `(funcs, reward_weights)`; `funcs` may be None, a single function or a list.
    """
    funcs = [] if funcs is None else list(funcs) if isinstance(funcs, (list, tuple)) else [funcs]
    is_placeholder = [getattr(f, "__wrapped__", f) is placeholder for f in funcs]  # also under `finite_rewards`
    if any(is_placeholder):
        return [reward if p else f for f, p in zip(funcs, is_placeholder)], reward_weights
    if reward_weights is not None and len(reward_weights) == len(funcs):
        reward_weights = [*reward_weights, 1.0]
    return [*funcs, reward], reward_weights
