"""The teacher's token and reliability counters, the billing figures derived from them, and its `teacher/*` metrics."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from .config import TeacherConfig

COUNTERS = (
    "samples",  # completions seen
    "calls",  # HTTP requests sent, retries included
    "retries",
    "api_scored",  # distinct completions scored by a teacher reply (filtered + hits + api_scored + failures = samples)
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "local_cache_hits",  # served from the SQLite cache or deduplicated within the batch
    "filtered",  # below the heuristic threshold: heuristic score, no call
    "failures",  # completions left without a score (reward None) after the last retry
    "malformed_replies",
    "below_reward_threshold",
)
# Logged as `teacher/<name>` per batch (plus `api_tokens_sent`, the seed's name, unprefixed).
METRICS = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "calls",
    "retries",
    "local_cache_hits",
    "filtered",
    "failures",
    "malformed_replies",
    "tokens_per_sample",
    "cost_usd",
    "billed_input_tokens",
)


@dataclass
class TeacherStats:
    """Cumulative counters; `summary()` adds the derived billing figures."""

    samples: int = 0
    calls: int = 0
    retries: int = 0
    api_scored: int = 0
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    local_cache_hits: int = 0
    filtered: int = 0
    failures: int = 0
    malformed_replies: int = 0
    below_reward_threshold: int = 0

    @classmethod
    def from_dict(cls, state: dict) -> TeacherStats:
        """Counters from `asdict` output (a checkpoint); unknown keys are ignored."""
        return cls(**{k: v for k, v in state.items() if k in COUNTERS})

    def copy(self) -> TeacherStats:
        return TeacherStats(**asdict(self))

    def minus(self, other: TeacherStats) -> TeacherStats:
        return TeacherStats(**{k: getattr(self, k) - getattr(other, k) for k in COUNTERS})

    def add_usage(self, usage) -> None:
        """Add a reply's `usage` block (None: nothing); a 200 is billed even when its text is unusable."""
        if usage is None:
            return
        self.input_tokens += int(usage.input_tokens or 0)
        self.cache_write_tokens += int(getattr(usage, "cache_creation_input_tokens", 0) or 0)
        self.cache_read_tokens += int(getattr(usage, "cache_read_input_tokens", 0) or 0)
        self.output_tokens += int(usage.output_tokens or 0)

    def summary(self, cfg: TeacherConfig) -> dict[str, float]:
        """Counters plus `billed_input_tokens` (input + 1.25 cache write + 0.1 cache read by default),
        `tokens_per_sample` (billed-equivalent input per completion seen), `api_tokens_sent` (every input token
        sent, cached or not) and `cost_usd` (price table of `cfg`)."""
        out = {k: float(getattr(self, k)) for k in COUNTERS}
        billed = (
            self.input_tokens
            + cfg.teacher_cache_write_multiplier * self.cache_write_tokens
            + cfg.teacher_cache_read_multiplier * self.cache_read_tokens
        )
        out["billed_input_tokens"] = billed
        out["tokens_per_sample"] = billed / self.samples if self.samples else 0.0
        out["api_tokens_sent"] = float(self.input_tokens + self.cache_write_tokens + self.cache_read_tokens)
        out["cost_usd"] = (
            billed * cfg.teacher_price_input_per_mtok + self.output_tokens * cfg.teacher_price_output_per_mtok
        ) / 1e6
        return out

    def metrics(self, cfg: TeacherConfig) -> dict[str, float]:
        """`teacher/*` metric names (and `api_tokens_sent`) for these counters."""
        s = self.summary(cfg)
        out = {f"teacher/{k}": s[k] for k in METRICS}
        out["api_tokens_sent"] = s["api_tokens_sent"]
        return out
