"""`TeacherClient`: sends Messages API requests with bounded concurrency, a timeout and our own counted retries.

Faults never crash training and never invent a score: 429, 5xx, 529 (overloaded), timeouts, connection errors and
malformed replies are retried with exponential backoff and "equal jitter", honouring `retry-after` up to
`teacher_max_retry_after_s`; after the last retry the request yields None. The SDK's own retries are off
(`max_retries=0`) so that every retry is ours and counted. A rejected key (401/403) is a configuration error and
raises `TeacherAuthError`. The client owns the API key, read from the environment; no repr, log or pickle shows it.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import time
from typing import TYPE_CHECKING

import anthropic

from .replies import MalformedReply, parse_scores, reply_text


if TYPE_CHECKING:
    from .config import TeacherConfig
    from .stats import TeacherStats

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


class MissingAPIKeyError(RuntimeError):
    """No API key in the environment variable the teacher reads."""


class TeacherAuthError(RuntimeError):
    """The API rejected the key (401/403): a configuration error, not a transient fault, so training stops."""


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


def read_api_key(env: str) -> _Secret:
    """The key in `$env`, or `MissingAPIKeyError` when it is unset or blank."""
    key = os.environ.get(env, "").strip()
    if not key:
        raise MissingAPIKeyError(
            f"AnthropicTeacher needs an API key, but the environment variable {env!r} is unset or empty. Export it "
            f"(export {env}=...) before training; to run offline against the loopback fake server "
            "(open_r1_ext.rlaif.fake_server), set it to any value and point `teacher_base_url` at the server."
        )
    return _Secret(key)


def retry_after_seconds(headers) -> float | None:
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


class TeacherClient:
    """One `anthropic.AsyncAnthropic` and one semaphore per event loop, and the retry loop around each request.

    Raises:
        MissingAPIKeyError: at construction, when `$teacher_api_key_env` is unset or empty.
    """

    def __init__(self, config: TeacherConfig):
        self.config = config
        self.secret = read_api_key(config.teacher_api_key_env)
        self._rng = random.Random(0 if config.teacher_seed is None else config.teacher_seed)
        self._loop = self._sdk = self._semaphore = None

    def __getstate__(self):
        state = self.__dict__.copy()
        for k in ("secret", "_sdk", "_semaphore", "_loop"):
            state[k] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.secret = read_api_key(self.config.teacher_api_key_env)

    def redact(self, text: str) -> str:
        key = self.secret.get() if self.secret else ""
        return text.replace(key, "***") if key else text

    def _ensure_sdk(self):
        """One client and semaphore per event loop (httpx clients and semaphores are bound to the loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._sdk = anthropic.AsyncAnthropic(
                api_key=self.secret.get(),
                base_url=self.config.teacher_base_url,
                max_retries=0,  # our retries are the only ones, so each is counted and backs off as configured
                timeout=self.config.teacher_timeout_s,
            )
            self._semaphore = asyncio.Semaphore(self.config.teacher_max_concurrency)
            self._loop = loop
        return self._sdk, self._semaphore

    async def aclose(self) -> None:
        """Close the HTTP client of the current event loop (a later request makes a new one)."""
        if self._sdk is not None:
            await self._sdk.close()
        self._loop = self._sdk = self._semaphore = None

    def backoff(self, attempt: int) -> float:
        cap = min(self.config.teacher_backoff_max_s, self.config.teacher_backoff_base_s * (2**attempt))
        return cap * (0.5 + 0.5 * self._rng.random())  # "equal jitter": never less than half the cap

    async def _attempt(self, kwargs: dict, n: int, stats: TeacherStats) -> list[float]:
        """One request: `n` scores, or an exception (the SDK's, or `MalformedReply`)."""
        sdk, sem = self._ensure_sdk()
        async with sem:
            stats.calls += 1
            resp = await sdk.messages.create(**kwargs)
        stats.add_usage(getattr(resp, "usage", None))
        return parse_scores(reply_text(resp), n)

    def _failure(self, exc: Exception, stats: TeacherStats) -> tuple[str, bool, float | None]:
        """`(reason, retryable, retry_after)` for a failed attempt; a rejected key raises `TeacherAuthError`."""
        if isinstance(exc, (MalformedReply, anthropic.APIResponseValidationError, ValueError)):
            stats.malformed_replies += 1
            return f"malformed reply ({self.redact(str(exc))[:120]})", True, None
        if isinstance(exc, (anthropic.AuthenticationError, anthropic.PermissionDeniedError)):
            raise TeacherAuthError(
                f"The teacher API rejected the key from ${self.config.teacher_api_key_env} (HTTP {exc.status_code}); "
                "check the key and `teacher_base_url`."
            ) from None
        if isinstance(exc, anthropic.APIStatusError):
            if exc.status_code not in RETRYABLE_STATUS:
                logger.error(
                    "teacher call failed with non-retryable HTTP %s: %s", exc.status_code, self.redact(str(exc))[:200]
                )
            retry_after = retry_after_seconds(getattr(exc.response, "headers", None))
            return f"HTTP {exc.status_code}", exc.status_code in RETRYABLE_STATUS, retry_after
        if isinstance(exc, anthropic.APITimeoutError):  # before APIConnectionError, its base class
            return f"timeout after {self.config.teacher_timeout_s}s", True, None
        if isinstance(exc, anthropic.APIConnectionError):
            return f"connection error ({type(exc.__cause__ or exc).__name__})", True, None
        raise exc

    async def scores(self, kwargs: dict, n: int, stats: TeacherStats) -> list[float] | None:
        """`n` scores for the request `kwargs`, or None after the last retry; every call and retry is counted."""
        retries = self.config.teacher_max_retries
        for attempt in range(retries + 1):
            if attempt:
                stats.retries += 1
            try:
                return await self._attempt(kwargs, n, stats)
            except (MalformedReply, ValueError, anthropic.APIError) as exc:
                reason, retryable, retry_after = self._failure(exc, stats)
            if not retryable or attempt == retries:
                break
            wait = self.backoff(attempt)
            if retry_after is not None:
                wait = max(wait, retry_after)
            wait = min(wait, self.config.teacher_max_retry_after_s)
            logger.info("teacher call: %s; retry %d/%d in %.2fs", reason, attempt + 1, retries, wait)
            await asyncio.sleep(wait)
        logger.warning(
            "teacher call gave up after %d attempt(s) (%s): %d completion(s) get reward None", attempt + 1, reason, n
        )
        return None
