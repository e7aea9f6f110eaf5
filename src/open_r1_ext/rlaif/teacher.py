"""`AnthropicTeacher`: a Claude teacher that scores student code against a rubric, as an async TRL reward function.

Seed: `../shared/seeds/003_0dfbdc15c190dcdc.txt` (RLAIF with a Claude teacher). How this departs from the seed:

1. Every token is measured, from the `usage` block of each reply (input, cache write, cache read, output), not
   projected. The Messages API is stateless: a system prompt is billed on every call. Moving the rubric into the
   system prompt saves nothing by itself; marking it with `cache_control` does, and only when the cached prefix
   reaches the model's minimum cacheable length (`min_cacheable_tokens`).
2. The heuristic pre-filter really rejects junk: Python is parsed with `ast`, brackets are counted outside strings
   and comments, stubs and prose lose the structure credit (`open_r1_ext.rlaif.heuristics.heuristic_score`).
3. All completions of one prompt are scored in one call (group batching), so the prompt and rubric are paid once
   per group, and the reply is parsed defensively as a JSON list of scores.
4. Faults never crash training and never invent a score: retries with exponential backoff and jitter on 429, 5xx,
   529 (overloaded), timeouts and connection errors, honouring `retry-after`; after the last retry the reward is
   `None` (TRL leaves it out of the group baseline) and counted in `teacher/failures`. The SDK's own retries are
   off (`max_retries=0`) so that every retry is ours and counted.
5. A persistent SQLite cache (`open_r1_ext.rlaif.cache.ScoreCache`) survives restarts; keys are hashes.

Use it on its own with TRL:

    teacher = AnthropicTeacher(TeacherConfig(model="claude-sonnet-4-5"))
    trainer = GRPOTrainer(model=..., reward_funcs=[teacher], ...)

TRL detects the async `__call__` (`trl.trainer.utils.is_async_callable`), runs it on its reward event loop, turns
`None` into NaN, and passes `log_metric`, through which the teacher reports its per-batch `teacher/*` metrics.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import os
import random
import re
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .cache import ScoreCache, cache_key, short_hash
from .heuristics import detect_language, extract_code, heuristic_score
from .rubric import DEFAULT_RUBRIC


logger = logging.getLogger(__name__)

# Minimum cacheable prefix, in tokens, by model (Anthropic's prompt-caching docs, checked 2026): a `cache_control`
# breakpoint on a shorter prefix is accepted but ignored, and the prefix is billed as ordinary input on every call.
# Sonnet 4.x / Opus 4 and 4.1 / Sonnet 3.7 / Opus 3: 1024; Haiku 3 and 3.5: 2048; Haiku 4.5, Opus 4.5 and 4.6: 4096.
# Third-party mirrors of the docs disagree on Sonnet 4.6 (1024 or 2048): we take 2048 to be safe. First match wins.
MIN_CACHEABLE_TOKENS: tuple[tuple[str, int], ...] = (
    ("haiku-4", 4096),
    ("opus-4-5", 4096),
    ("opus-4-6", 4096),
    ("sonnet-4-6", 2048),
    ("haiku", 2048),
    ("sonnet", 1024),
    ("opus", 1024),
)
DEFAULT_MIN_CACHEABLE_TOKENS = 1024
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


def min_cacheable_tokens(model: str) -> int:
    """The minimum prefix length (tokens) that `model` caches; 1024 for unknown names."""
    name = model.lower()
    for pattern, n in MIN_CACHEABLE_TOKENS:
        if pattern in name:
            return n
    return DEFAULT_MIN_CACHEABLE_TOKENS


class MissingAPIKeyError(RuntimeError):
    """No API key in the environment variable the teacher reads."""


class TeacherAuthError(RuntimeError):
    """The API rejected the key (401/403): a configuration error, not a transient fault, so training stops."""


class MalformedReply(ValueError):
    """The teacher's reply could not be read as one score in [0, 1] per candidate."""


@dataclass
class TeacherConfig:
    """Settings of `AnthropicTeacher`. `RLAIFConfig` carries the same settings with a `teacher_` prefix.

    The API key is never a setting: it is read from the environment variable named by `api_key_env`, so it
    cannot end up in a recipe, a `training_args.bin` or a checkpoint.
    """

    model: str = "claude-sonnet-4-5"
    base_url: str | None = None
    api_key_env: str = "ANTHROPIC_API_KEY"
    rubric: str = DEFAULT_RUBRIC
    max_output_tokens: int = 256
    # savings, each switchable
    use_local_cache: bool = True
    cache_path: str = ":memory:"
    cache_ttl_s: float = 7 * 24 * 3600.0
    truncate_prompt_for_scoring: bool = True
    prompt_context_chars: int = 200
    move_rubric_to_system_prompt: bool = True
    use_prompt_caching: bool = True
    use_tiered_scoring: bool = True
    heuristic_score_threshold: float = 0.3
    batch_group_scoring: bool = True
    max_candidates_per_call: int = 16
    # reliability
    max_concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 4
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 120.0
    seed: int = 0
    # accounting (USD per million tokens; cache multipliers relative to the input price)
    price_input_per_mtok: float = 3.0
    price_output_per_mtok: float = 15.0
    cache_write_multiplier: float = 1.25
    cache_read_multiplier: float = 0.1
    # reward shaping
    reward_threshold: float | None = None
    default_language: str | None = None

    def __post_init__(self):
        def bad(name, why):
            raise ValueError(f"TeacherConfig.{name}={getattr(self, name)!r} is invalid: {why}")

        if not self.rubric or not self.rubric.strip():
            bad("rubric", "must be non-empty text")
        for name in ("max_output_tokens", "max_concurrency", "prompt_context_chars", "max_candidates_per_call"):
            if getattr(self, name) < 1:
                bad(name, "must be >= 1")
        for name in ("timeout_s", "cache_ttl_s"):
            if not getattr(self, name) > 0:
                bad(name, "must be > 0")
        if self.max_retries < 0:
            bad("max_retries", "must be >= 0")
        for name in (
            "backoff_base_s",
            "backoff_max_s",
            "max_retry_after_s",
            "price_input_per_mtok",
            "price_output_per_mtok",
            "cache_write_multiplier",
            "cache_read_multiplier",
        ):
            if getattr(self, name) < 0:
                bad(name, "must be >= 0")
        if not 0.0 <= self.heuristic_score_threshold <= 1.0:
            bad("heuristic_score_threshold", "must be in [0, 1]")
        if self.use_prompt_caching and not self.move_rubric_to_system_prompt:
            bad(
                "use_prompt_caching",
                "caching marks the rubric's system block, so it needs move_rubric_to_system_prompt=True",
            )
        if not self.api_key_env or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env):
            # The value is not quoted: someone may have pasted the key itself here.
            raise ValueError(
                "TeacherConfig.api_key_env must be the name of an environment variable such as "
                "ANTHROPIC_API_KEY, never the key itself"
            )


_COUNTERS = (
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

    def copy(self) -> TeacherStats:
        return TeacherStats(**asdict(self))

    def minus(self, other: TeacherStats) -> TeacherStats:
        return TeacherStats(**{k: getattr(self, k) - getattr(other, k) for k in _COUNTERS})

    def summary(self, cfg: TeacherConfig) -> dict[str, float]:
        """Counters plus `billed_input_tokens` (input + 1.25 cache write + 0.1 cache read by default),
        `tokens_per_sample` (billed-equivalent input per completion seen), `api_tokens_sent` (every input token
        sent, cached or not) and `cost_usd` (price table of `cfg`)."""
        out = {k: float(getattr(self, k)) for k in _COUNTERS}
        billed = (
            self.input_tokens
            + cfg.cache_write_multiplier * self.cache_write_tokens
            + cfg.cache_read_multiplier * self.cache_read_tokens
        )
        out["billed_input_tokens"] = billed
        out["tokens_per_sample"] = billed / self.samples if self.samples else 0.0
        out["api_tokens_sent"] = float(self.input_tokens + self.cache_write_tokens + self.cache_read_tokens)
        out["cost_usd"] = (billed * cfg.price_input_per_mtok + self.output_tokens * cfg.price_output_per_mtok) / 1e6
        return out


def prompt_text(prompt) -> str:
    """A TRL prompt (string, or list of chat messages) as plain text: message contents joined by blank lines."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        parts = []
        for m in prompt:
            content = m.get("content") if isinstance(m, dict) else m
            if isinstance(content, list):  # content blocks
                content = "\n".join(b.get("text", "") for b in content if isinstance(b, dict))
            parts.append(str(content or ""))
        return "\n\n".join(parts)
    return str(prompt)


def completion_text(completion) -> str:
    """A TRL completion (string, or list of chat messages) as plain text (the last message's content)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return completion[-1].get("content") or ""
    return str(completion or "")


_ARRAY_RE = re.compile(r"\[[^\[\]]*\]", re.DOTALL)


def parse_scores(text: str, n: int) -> list[float]:
    """Read exactly `n` scores in [0, 1] from a teacher reply, or raise `MalformedReply`.

    Accepts a bare JSON array, one wrapped in prose or a code fence (the first array that has `n` valid scores),
    numeric strings, and objects with a `score` key. Never guesses: a wrong count, a value outside [0, 1], NaN or
    a boolean is malformed, so the call is retried instead of a score being invented.
    """

    def coerce(v) -> float:
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
            return [coerce(v) for v in data]
        except MalformedReply as exc:
            last_error = exc
    raise last_error


def _retry_after_seconds(headers) -> float | None:
    """`retry-after-ms`, or `retry-after` as seconds or an HTTP date; None when absent or unreadable."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed is not None else None


class _Secret:
    """Holds the API key so that no repr, log record or pickle of the teacher can show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "_Secret('***')"

    def __reduce__(self):
        raise TypeError("the teacher's API key is not picklable (it is re-read from the environment)")


@dataclass
class _Request:
    prompt: str
    language: str
    codes: list[str]
    keys: list[str]
    owners: list[list[int]] = field(default_factory=list)  # sample indices each candidate's score goes to


class AnthropicTeacher:
    """Scores code completions against a rubric through `anthropic.AsyncAnthropic`; an async TRL reward function.

    `await teacher(prompts=..., completions=..., language=[...])` returns one score in [0, 1] (or None after
    exhausted retries) per completion. The language of each completion comes from a `language` dataset column
    when there is one, else from a markdown fence tag, else from the code (`heuristics.detect_language`).

    Raises:
        MissingAPIKeyError: at construction, when the environment variable `config.api_key_env` is unset/empty.
    """

    def __init__(self, config: TeacherConfig | None = None, **overrides):
        import anthropic  # noqa: F401  (fail at construction, not at the first batch, when the SDK is missing)

        self.__name__ = "anthropic_teacher"  # TRL names reward functions by it: rewards/anthropic_teacher/mean
        self.config = config if config is not None else TeacherConfig()
        if overrides:
            self.config = TeacherConfig(**{**asdict(self.config), **overrides})
        self._secret = self._read_key()
        self.stats = TeacherStats()
        self._rng = random.Random(self.config.seed)
        self._cache = None
        if self.config.use_local_cache:
            self._cache = ScoreCache(self.config.cache_path, self.config.cache_ttl_s, scorer=self.fingerprint)
        self._loop = self._client = self._semaphore = None
        self._warn_if_rubric_too_short()

    # -- construction helpers -------------------------------------------------------------------------------

    def _read_key(self) -> _Secret:
        key = os.environ.get(self.config.api_key_env, "").strip()
        if not key:
            raise MissingAPIKeyError(
                f"AnthropicTeacher needs an API key, but the environment variable {self.config.api_key_env!r} is "
                f"unset or empty. Export it (export {self.config.api_key_env}=...) before training; to run offline "
                "against the loopback fake server (open_r1_ext.rlaif.fake_server), set it to any value and point "
                "`teacher_base_url` at the server."
            )
        return _Secret(key)

    @property
    def fingerprint(self) -> str:
        """Identifies what a cached score means: the model and the rubric (not the savings switches)."""
        return short_hash(f"{self.config.model}\n{self.config.rubric}")

    def _warn_if_rubric_too_short(self) -> None:
        if not (self.config.use_prompt_caching and self.config.move_rubric_to_system_prompt):
            return
        est = len(self.config.rubric) / 4  # ~4 characters per token for English prose
        need = min_cacheable_tokens(self.config.model)
        if est < need:
            logger.warning(
                "teacher rubric is about %d tokens, below the %d-token minimum cacheable prefix of %s: prompt caching "
                "will not apply and the rubric is billed in full on every call; lengthen the rubric (more criteria, "
                "anchors, examples) or turn use_prompt_caching off",
                est,
                need,
                self.config.model,
            )

    def __repr__(self) -> str:
        c = self.config
        return (
            f"AnthropicTeacher(model={c.model!r}, base_url={c.base_url!r}, api_key_env={c.api_key_env!r}, "
            f"cache={c.cache_path if c.use_local_cache else None!r})"
        )

    def __getstate__(self):
        state = self.__dict__.copy()
        for k in ("_secret", "_client", "_semaphore", "_loop", "_cache"):
            state[k] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._secret = self._read_key()
        if self.config.use_local_cache:
            self._cache = ScoreCache(self.config.cache_path, self.config.cache_ttl_s, scorer=self.fingerprint)

    def _redact(self, text: str) -> str:
        key = self._secret.get() if self._secret else ""
        return text.replace(key, "***") if key else text

    def _ensure_client(self):
        """One client and semaphore per event loop (httpx clients and semaphores are bound to the loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            from anthropic import AsyncAnthropic

            self._client = AsyncAnthropic(
                api_key=self._secret.get(),
                base_url=self.config.base_url,
                max_retries=0,  # our retries are the only ones, so each is counted and backs off as configured
                timeout=self.config.timeout_s,
            )
            self._semaphore = asyncio.Semaphore(self.config.max_concurrency)
            self._loop = loop
        return self._client, self._semaphore

    # -- state for checkpoints ------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"stats": asdict(self.stats), "fingerprint": self.fingerprint}

    def load_state_dict(self, state: dict) -> None:
        self.stats = TeacherStats(**{k: v for k, v in state.get("stats", {}).items() if k in _COUNTERS})

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    # -- request building -----------------------------------------------------------------------------------

    def build_request(self, prompt: str, language: str, codes: list[str]) -> dict:
        """Keyword arguments of `client.messages.create` for one call scoring `codes` (one group) for `prompt`."""
        c = self.config
        task = prompt
        if c.truncate_prompt_for_scoring and len(task) > c.prompt_context_chars:
            task = task[: c.prompt_context_chars] + " [...]"
        parts = [] if c.move_rubric_to_system_prompt else [c.rubric, ""]
        parts += [f"TASK{' (truncated)' if task is not prompt else ''}:", task, "", f"LANGUAGE: {language}", ""]
        for i, code in enumerate(codes, 1):
            parts += [f'<candidate index="{i}">', code, "</candidate>"]
        parts += [
            "",
            f"Reply with a JSON array of exactly {len(codes)} numbers in [0, 1], one per candidate, in order.",
        ]
        if c.move_rubric_to_system_prompt:
            block = {"type": "text", "text": c.rubric}
            if c.use_prompt_caching:
                block["cache_control"] = {"type": "ephemeral"}
            system = [block]
        else:
            system = "You grade code against the rubric in the user message. Reply with a JSON array of numbers only."
        return {
            "model": c.model,
            "max_tokens": c.max_output_tokens,
            "system": system,
            "messages": [{"role": "user", "content": "\n".join(parts)}],
        }

    # -- one call with retries --------------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        cap = min(self.config.backoff_max_s, self.config.backoff_base_s * (2**attempt))
        return cap * (0.5 + 0.5 * self._rng.random())  # "equal jitter": never less than half the cap

    async def _call(self, req: _Request) -> list[float] | None:
        """Scores for `req.codes`, or None after the last retry (the failure is counted per candidate)."""
        import anthropic

        client, sem = self._ensure_client()
        kwargs = self.build_request(req.prompt, req.language, req.codes)
        reason = "unknown"
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                self.stats.retries += 1
            retry_after = None
            try:
                async with sem:
                    self.stats.calls += 1
                    resp = await client.messages.create(**kwargs)
                usage = getattr(resp, "usage", None)
                if usage is not None:  # a 200 is billed even when its text is unusable
                    self.stats.input_tokens += int(usage.input_tokens or 0)
                    self.stats.cache_write_tokens += int(getattr(usage, "cache_creation_input_tokens", 0) or 0)
                    self.stats.cache_read_tokens += int(getattr(usage, "cache_read_input_tokens", 0) or 0)
                    self.stats.output_tokens += int(usage.output_tokens or 0)
                content = getattr(resp, "content", None)
                if not isinstance(content, list):
                    raise MalformedReply(f"reply is not a Message ({type(resp).__name__})")
                text = "".join(getattr(b, "text", "") or "" for b in content)
                return parse_scores(text, len(req.codes))
            except (MalformedReply, anthropic.APIResponseValidationError, ValueError) as exc:
                self.stats.malformed_replies += 1
                reason = f"malformed reply ({self._redact(str(exc))[:120]})"
            except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as exc:
                raise TeacherAuthError(
                    f"The teacher API rejected the key from ${self.config.api_key_env} (HTTP {exc.status_code}); "
                    "check the key and `teacher_base_url`."
                ) from None
            except anthropic.APIStatusError as exc:
                reason = f"HTTP {exc.status_code}"
                if exc.status_code not in RETRYABLE_STATUS:
                    logger.error(
                        "teacher call failed with non-retryable HTTP %s: %s",
                        exc.status_code,
                        self._redact(str(exc))[:200],
                    )
                    break
                retry_after = _retry_after_seconds(getattr(exc.response, "headers", None))
            except anthropic.APITimeoutError:
                reason = f"timeout after {self.config.timeout_s}s"
            except anthropic.APIConnectionError as exc:
                reason = f"connection error ({type(exc.__cause__ or exc).__name__})"
            if attempt == self.config.max_retries:
                break
            wait = self._backoff(attempt)
            if retry_after is not None:
                wait = max(wait, retry_after)
            wait = min(wait, self.config.max_retry_after_s)
            logger.info("teacher call: %s; retry %d/%d in %.2fs", reason, attempt + 1, self.config.max_retries, wait)
            await asyncio.sleep(wait)
        logger.warning(
            "teacher call gave up after %d attempt(s) (%s): %d completion(s) get reward None",
            attempt + 1,
            reason,
            len(req.codes),
        )
        return None

    # -- scoring ----------------------------------------------------------------------------------------------

    async def score(self, prompts: list, completions: list, languages: list | None = None):
        """Scores and per-sample sources (`filtered`, `cache`, `teacher`, `failed`) for a batch.

        Samples are handled in tiers: the heuristic filter (no call), the local cache and in-batch duplicates
        (no call), then one teacher call per prompt group (or per completion when batching is off).
        """
        c = self.config
        n = len(completions)
        if len(prompts) != n:
            raise ValueError(f"got {len(prompts)} prompts for {n} completions")
        scores: list[float | None] = [None] * n
        sources = ["failed"] * n
        self.stats.samples += n
        pending: dict[tuple[str, str], dict[str, list[int]]] = {}  # (prompt, lang) -> key -> sample indices
        codes: dict[str, str] = {}
        for i, (p, comp) in enumerate(zip(prompts, completions)):
            text = completion_text(comp)
            code, fence_lang = extract_code(text)
            hint = (languages[i] if languages is not None else None) or fence_lang or c.default_language
            lang = detect_language(code, hint)
            if c.use_tiered_scoring:
                h = heuristic_score(text, lang)
                if h < c.heuristic_score_threshold:
                    scores[i], sources[i] = h, "filtered"
                    self.stats.filtered += 1
                    continue
            ptext = prompt_text(p)
            key = cache_key(ptext, code, lang)
            if not c.use_local_cache:
                key = f"{key}#{i}"  # no dedupe without the cache: the "savings off" baseline sends every sample
            codes[key] = code
            pending.setdefault((ptext, lang), {}).setdefault(key, []).append(i)

        if self._cache is not None:
            hits = self._cache.get_many([k for group in pending.values() for k in group])
            for group in pending.values():
                for key in [k for k in group if k in hits]:
                    for i in group.pop(key):
                        scores[i], sources[i] = hits[key], "cache"
                        self.stats.local_cache_hits += 1

        requests = []
        for (ptext, lang), group in pending.items():
            keys = list(group)
            step = c.max_candidates_per_call if c.batch_group_scoring else 1
            for s in range(0, len(keys), step):
                ks = keys[s : s + step]
                requests.append(_Request(ptext, lang, [codes[k] for k in ks], ks, [group[k] for k in ks]))
        results = await asyncio.gather(*(self._call(r) for r in requests))

        fresh = {}
        for req, res in zip(requests, results):
            for j, owners in enumerate(req.owners):
                if res is None:
                    self.stats.failures += len(owners)
                    continue
                fresh[req.keys[j]] = res[j]
                for i in owners:
                    scores[i], sources[i] = res[j], "teacher"
                self.stats.api_scored += 1
                self.stats.local_cache_hits += len(owners) - 1  # in-batch duplicates: scored once, served twice
        if self._cache is not None:
            self._cache.put_many(fresh)

        if c.reward_threshold is not None:
            for i, s in enumerate(scores):
                if s is not None and s < c.reward_threshold:
                    scores[i] = None
                    self.stats.below_reward_threshold += 1
        return scores, sources

    async def __call__(self, prompts, completions, **kwargs) -> list[float | None]:
        """TRL's async reward signature; reports per-batch `teacher/*` metrics through TRL's `log_metric`."""
        before = self.stats.copy()
        languages = kwargs.get("language") or kwargs.get("lang")
        scores, sources = await self.score(prompts, completions, languages)
        log_metric, log_extra = kwargs.get("log_metric"), kwargs.get("log_extra")
        if log_metric is not None:
            for name, value in self.metrics(self.stats.minus(before)).items():
                log_metric(name, value)
            log_metric("teacher/cost_usd_total", self.stats.summary(self.config)["cost_usd"])
        if log_extra is not None:
            log_extra("teacher_source", sources)
        return scores

    def score_sync(self, prompts, completions, languages=None) -> list[float | None]:
        """Blocking convenience wrapper (scripts, benchmarks); not for use inside a running event loop."""

        async def run():
            try:
                return (await self.score(prompts, completions, languages))[0]
            finally:
                await self.aclose()  # the loop ends here, so its connections must close here too

        return asyncio.run(run())

    async def aclose(self) -> None:
        """Close the HTTP client of the current event loop (a later call makes a new one)."""
        if self._client is not None:
            await self._client.close()
        self._loop = self._client = self._semaphore = None

    def metrics(self, stats: TeacherStats | None = None) -> dict[str, float]:
        """`teacher/*` metric names (and `api_tokens_sent`) for `stats` (default: the cumulative counters)."""
        s = (stats or self.stats).summary(self.config)
        names = (
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
        out = {f"teacher/{k}": s[k] for k in names}
        out["api_tokens_sent"] = s["api_tokens_sent"]
        return out


def teacher_config_fields() -> list[str]:
    return [f.name for f in fields(TeacherConfig)]


def default_cache_path() -> str:
    """`$OPEN_R1_EXT_CACHE/rlaif/teacher_scores.sqlite` (default `~/.cache/open_r1_ext/...`), shared across runs:
    entries are namespaced by model and rubric, so sharing never serves a score meant for another rubric."""
    root = Path(os.environ.get("OPEN_R1_EXT_CACHE", Path.home() / ".cache" / "open_r1_ext"))
    return str(root / "rlaif" / "teacher_scores.sqlite")
