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
    "failures",  # completions left without a score (reward None): retries exhausted, refused, cut off, rejected
    "malformed_replies",
    "below_reward_threshold",
    "replies",  # HTTP 200 replies whose usage was read
    "refusals",  # replies with stop_reason "refusal" (not retried)
    "max_tokens_stops",  # replies cut off by max_tokens or the context window (not retried)
    "timed_out_requests",  # attempts that timed out (billed all the same: their usage is estimated)
    "estimated_input_tokens",  # input-side tokens of billed requests whose usage could not be read (included above)
    "flagged",  # filtered because the pre-filter flagged a hard-coded answer or text addressed to the grader
    "candidate_truncations",  # candidates cut at teacher_max_candidate_chars
    "escaped_delimiters",  # candidates (or tasks) whose look-alikes of our <candidate>/<task> tags were escaped
    "encoding_replacements",  # candidates (or tasks) with characters UTF-8 cannot encode, replaced by U+FFFD
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
    "refusals",
    "max_tokens_stops",
    "timed_out_requests",
    "estimated_input_tokens",
    "flagged",
    "candidate_truncations",
    "escaped_delimiters",
    "encoding_replacements",
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
    replies: int = 0
    refusals: int = 0
    max_tokens_stops: int = 0
    timed_out_requests: int = 0
    estimated_input_tokens: int = 0
    flagged: int = 0
    candidate_truncations: int = 0
    escaped_delimiters: int = 0
    encoding_replacements: int = 0

    @classmethod
    def from_dict(cls, state: dict) -> TeacherStats:
        """Counters from `asdict` output (a checkpoint); unknown keys are ignored."""
        return cls(**{k: v for k, v in state.items() if k in COUNTERS})

    def copy(self) -> TeacherStats:
        return TeacherStats(**asdict(self))

    def minus(self, other: TeacherStats) -> TeacherStats:
        return TeacherStats(**{k: getattr(self, k) - getattr(other, k) for k in COUNTERS})

    def add_usage(self, usage) -> None:
        """Add a reply's `usage` block (None: nothing); a 200 is billed even when its content is unusable."""
        if usage is None:
            return
        self.replies += 1
        self.input_tokens += int(usage.input_tokens or 0)
        self.cache_write_tokens += int(getattr(usage, "cache_creation_input_tokens", 0) or 0)
        self.cache_read_tokens += int(getattr(usage, "cache_read_input_tokens", 0) or 0)
        self.output_tokens += int(usage.output_tokens or 0)

    def add_estimate(self, input_tokens: int, cache_write: int, cache_read: int, output_tokens: int) -> None:
        """Add the estimated usage of a billed request whose reply could not be read (timed out, unreadable 200)."""
        self.input_tokens += input_tokens
        self.cache_write_tokens += cache_write
        self.cache_read_tokens += cache_read
        self.output_tokens += output_tokens
        self.estimated_input_tokens += input_tokens + cache_write + cache_read

    def mean_output_tokens(self) -> int:
        """Output tokens of an average reply read so far (0 before the first): the estimate for an unread one."""
        return round(self.output_tokens / self.replies) if self.replies else 0

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
