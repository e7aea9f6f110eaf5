"""Reading the teacher's reply: exactly one score in [0, 1] per candidate, or `MalformedReply` (never a guess)."""

from __future__ import annotations

import json
import math
import re


class MalformedReply(ValueError):
    """The teacher's reply could not be read as one score in [0, 1] per candidate."""


_ARRAY_RE = re.compile(r"\[[^\[\]]*\]", re.DOTALL)


def reply_text(resp) -> str:
    """The text of a Messages API reply (its text blocks joined), or `MalformedReply` when it is not a Message."""
    content = getattr(resp, "content", None)
    if not isinstance(content, list):
        raise MalformedReply(f"reply is not a Message ({type(resp).__name__})")
    return "".join(getattr(b, "text", "") or "" for b in content)


def _coerce(v) -> float:
    """One score: a number, a numeric string or `{"score": x}`, in [0, 1] (clipped by 1e-9 at the edges)."""
    if isinstance(v, dict) and "score" in v:
        v = v["score"]
    if isinstance(v, bool):
        raise MalformedReply(f"boolean score {v!r}")
    try:
        x = float(v)
    except (TypeError, ValueError) as exc:
        raise MalformedReply(f"non-numeric score {v!r:.40}") from exc
    if math.isnan(x) or not -1e-9 <= x <= 1 + 1e-9:
        raise MalformedReply(f"score {x!r} outside [0, 1]")
    return min(1.0, max(0.0, x))


def parse_scores(text: str, n: int) -> list[float]:
    """Read exactly `n` scores in [0, 1] from a teacher reply, or raise `MalformedReply`.

    Accepts a bare JSON array, one wrapped in prose or a code fence (the first array that has `n` valid scores),
    numeric strings, and objects with a `score` key. Never guesses: a wrong count, a value outside [0, 1], NaN or
    a boolean is malformed, so the call is retried instead of a score being invented.
    """
    candidates = [text.strip()] + _ARRAY_RE.findall(text)
    last_error: Exception = MalformedReply(f"no JSON array in reply {text[:80]!r}")
    for cand in candidates:
        try:
            data = json.loads(cand)
        except (ValueError, RecursionError):
            continue
        if isinstance(data, dict) and isinstance(data.get("scores"), list):
            data = data["scores"]
        if not isinstance(data, list):
            continue
        if len(data) != n:
            last_error = MalformedReply(f"expected {n} scores, got {len(data)}")
            continue
        try:
            return [_coerce(v) for v in data]
        except MalformedReply as exc:
            last_error = exc
    raise last_error
