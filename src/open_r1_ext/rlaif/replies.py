"""Reading the teacher's reply: one score in [0, 1] per candidate index, from the `record_scores` tool call.

Scores are read from the input of the one forced tool call (`prompts.SCORE_TOOL`), each under the candidate index it
names, never from free text: prose, code with brackets or draft arrays in text blocks cannot be mistaken for scores,
and entries may come in any order. Anything else is malformed (`MalformedReply`, retried): no tool call or several, a
missing, duplicate or out-of-range index, a score that is not a number in [0, 1]. A reply that stopped for a reason a
retry would not change (`stop_reason` `refusal`, `max_tokens`, `model_context_window_exceeded`) raises
`TerminalReply` instead: counted, not retried.
"""

from __future__ import annotations

import math

from .prompts import TOOL_NAME


class MalformedReply(ValueError):
    """The teacher's reply could not be read as one score in [0, 1] per candidate (the request is retried)."""


class TerminalReply(Exception):
    """A reply whose `stop_reason` says that asking again would not help (a refusal, a cut-off): not retried."""

    def __init__(self, stop_reason: str, detail: str = ""):
        super().__init__(f"stop_reason={stop_reason}" + (f" ({detail})" if detail else ""))
        self.stop_reason = stop_reason


TRUNCATION_STOPS = frozenset({"max_tokens", "model_context_window_exceeded"})


def _coerce(v) -> float:
    """One score: a number or a numeric string, in [0, 1] (clipped by 1e-9 at the edges)."""
    if isinstance(v, bool):
        raise MalformedReply(f"boolean score {v!r}")
    try:
        x = float(v)
    except (TypeError, ValueError) as exc:
        raise MalformedReply(f"non-numeric score {v!r:.40}") from exc
    if math.isnan(x) or not -1e-9 <= x <= 1 + 1e-9:
        raise MalformedReply(f"score {x!r} outside [0, 1]")
    return min(1.0, max(0.0, x))


def _index(v, n: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v).is_integer():
        raise MalformedReply(f"index {v!r:.20} is not an integer")
    if not 1 <= v <= n:
        raise MalformedReply(f"index {int(v)} outside 1..{n}")
    return int(v)


def scores_from_tool_input(data, n: int) -> list[float]:
    """The `n` scores of a `record_scores` input `{"scores": [{"index": k, "score": x}, ...]}`, by index (1-based),
    or `MalformedReply` unless every index 1..n appears exactly once with a valid score. Extra keys are ignored."""
    entries = data.get("scores") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise MalformedReply(f"tool input has no `scores` list: {str(data)[:80]!r}")
    out: list[float | None] = [None] * n
    for entry in entries:
        if not isinstance(entry, dict):
            raise MalformedReply(f"score entry {entry!r:.40} is not an object")
        k = _index(entry.get("index"), n)
        if out[k - 1] is not None:
            raise MalformedReply(f"index {k} scored twice")
        out[k - 1] = _coerce(entry.get("score"))
    missing = [k for k, v in enumerate(out, 1) if v is None]
    if missing:
        raise MalformedReply(f"no score for index {missing[:5]} ({len(missing)} of {n} missing)")
    return out


def read_scores(resp, n: int) -> list[float]:
    """Exactly `n` scores from a Messages API reply, in candidate-index order.

    Raises:
        TerminalReply: the reply stopped on a refusal or a length limit (not worth retrying).
        MalformedReply: anything else that is not exactly one valid `record_scores` call covering 1..n.
    """
    content = getattr(resp, "content", None)
    if not isinstance(content, list):
        raise MalformedReply(f"reply is not a Message ({type(resp).__name__})")
    stop = getattr(resp, "stop_reason", None)
    if stop == "refusal":
        details = getattr(resp, "stop_details", None)
        raise TerminalReply(stop, str(getattr(details, "category", "") or ""))
    if stop in TRUNCATION_STOPS:
        raise TerminalReply(stop)
    calls = [b for b in content if getattr(b, "type", None) == "tool_use"]
    if len(calls) != 1 or getattr(calls[0], "name", None) != TOOL_NAME:
        names = [getattr(b, "name", None) for b in calls]
        raise MalformedReply(f"expected one {TOOL_NAME} call, got {names or 'none'} (stop_reason={stop})")
    return scores_from_tool_input(getattr(calls[0], "input", None), n)
