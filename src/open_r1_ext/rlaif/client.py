"""`TeacherClient`: sends Messages API requests through the SDK's own retries, counts every attempt, fails fast.

- **Retries are the SDK's** (`max_retries=teacher_max_retries`, `timeout=teacher_timeout_s`): it decides what to
  retry (408, 409, 429, every 5xx including 529 overloaded, timeouts and connection errors; `x-should-retry` overrides
  the status either way) and honours `retry-after`. The one thing changed is how long it waits
  (`_TeacherSDK._calculate_retry_timeout`): exponential backoff from `teacher_backoff_base_s` to
  `teacher_backoff_max_s` with "equal jitter" seeded by `teacher_seed`, never less than the server's `retry-after`
  and never more than `teacher_max_retry_after_s` (the SDK's own would wait whatever `retry-after` says).
  A reply that arrives but cannot be read as scores (`replies.MalformedReply`) is the only thing retried here, up to
  `teacher_max_retries` times. After the last retry a request yields None, never an invented score.
- **Every billed request is counted**: a middleware (`_CountAttempts`) sees each HTTP attempt inside the SDK's retry
  loop, so calls and retries are counted, and an attempt that timed out (which the API may well have processed and
  billed) or a 200 whose body cannot be read is priced with the free token-counting endpoint (`_bill_unread`).
- **Misconfiguration stops the run**: `preflight` checks the key, the URL, the model and the request shape with
  `messages.count_tokens` before the first scoring call and measures the cached prefix; a 401/403 raises
  `TeacherAuthError`, and a 400/404/422 or an unreachable endpoint raises `TeacherConfigError`, naming the setting to
  fix. Until one scoring reply has been read, a 400/404/422 from `messages.create` raises the same way.

The client owns the API key, read from the environment; no repr, log or pickle shows it.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import math
import os
import random
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anthropic

from .prompts import count_tokens_kwargs, min_cacheable_tokens
from .replies import MalformedReply, TerminalReply, read_scores


if TYPE_CHECKING:
    from .config import TeacherConfig
    from .stats import TeacherStats

logger = logging.getLogger(__name__)

CONFIG_STATUS = frozenset({400, 404, 422})  # the request itself is wrong: the same settings will fail every call
PROMPT_CACHE_TTL_S = 300.0  # the API's ephemeral cache lifetime, refreshed on each hit


class MissingAPIKeyError(RuntimeError):
    """No API key in the environment variable the teacher reads."""


class TeacherConfigError(RuntimeError):
    """A teacher setting makes every call fail (wrong model, base URL, request): the run stops with what to fix."""


class TeacherAuthError(TeacherConfigError):
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


class _TeacherSDK(anthropic.AsyncAnthropic):
    """`AsyncAnthropic` whose retry waits follow the teacher's backoff settings; what is retried stays the SDK's."""

    _teacher_wait = None  # (retries taken, server's retry-after or None) -> seconds; None: the SDK's own waits

    def _calculate_retry_timeout(self, remaining_retries, options, response_headers=None):
        if self._teacher_wait is None:  # a copy made by `with_options` keeps the SDK's waits
            return super()._calculate_retry_timeout(remaining_retries, options, response_headers)
        taken = options.get_max_retries(self.max_retries) - remaining_retries
        return self._teacher_wait(taken, self._parse_retry_after_header(response_headers))


@dataclass
class _Attempts:
    """What the SDK did inside one `messages.create`: HTTP attempts, retries, timed-out request bodies."""

    calls: int = 0
    retries: int = 0
    timed_out: list = field(default_factory=list)
    last_status: int | None = None


_ATTEMPTS: contextvars.ContextVar[_Attempts | None] = contextvars.ContextVar("teacher_attempts", default=None)


class _CountAttempts(anthropic.Middleware):
    """Runs once per HTTP attempt inside the SDK's retry loop: counts `POST .../v1/messages` attempts (token counting
    is free and not counted) into the `_Attempts` of the calling task, and keeps the body of any that timed out."""

    async def handle_async(self, request, call_next):
        log = _ATTEMPTS.get()
        if log is None or not str(request.url).rstrip("/").endswith("/messages"):
            return await call_next(request)
        log.calls += 1
        log.retries += request.retries_taken > 0
        try:
            response = await call_next(request)
        except anthropic.APITimeoutError:
            log.timed_out.append(request.json)
            log.last_status = None
            raise
        except anthropic.APIConnectionError:
            log.last_status = None
            raise
        log.last_status = response.status_code
        return response


def _error_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    err = body.get("error") if isinstance(body.get("error"), dict) else body
    return str(err.get("message") or exc.message)


def _public_url(url) -> str:
    """A URL without any user:password part (a proxy URL may carry credentials)."""
    return re.sub(r"//[^/@]*@", "//***@", str(url))


class TeacherClient:
    """One `_TeacherSDK` and one semaphore per event loop; preflight, the malformed-reply retry loop and accounting.

    Raises:
        MissingAPIKeyError: at construction, when `$teacher_api_key_env` is unset or empty.
    """

    def __init__(self, config: TeacherConfig):
        self.config = config
        self.secret = read_api_key(config.teacher_api_key_env)
        self._rng = random.Random(0 if config.teacher_seed is None else config.teacher_seed)
        self._loop = self._sdk = self._semaphore = None
        self.verified = False  # a scoring reply has been read: the settings work, a later 400/404 is per request
        self.prefix_tokens: int | None = None  # tools + system, measured by `preflight` (None: not measured)
        self.last_failure = ""  # why the last request got no scores (quoted when the failure share stops the run)
        self._cache_seen = -math.inf  # monotonic time of the last reply that read or wrote the prompt cache

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
            self._sdk = _TeacherSDK(
                api_key=self.secret.get(),
                base_url=self.config.teacher_base_url,
                max_retries=self.config.teacher_max_retries,
                timeout=self.config.teacher_timeout_s,
                middleware=[_CountAttempts()],
            )
            self._sdk._teacher_wait = self.wait
            self._semaphore = asyncio.Semaphore(self.config.teacher_max_concurrency)
            self._loop = loop
        return self._sdk, self._semaphore

    async def aclose(self) -> None:
        """Close the HTTP client of the current event loop (a later request makes a new one)."""
        if self._sdk is not None:
            await self._sdk.close()
        self._loop = self._sdk = self._semaphore = None

    @property
    def base_url(self) -> str:
        url = self._sdk.base_url if self._sdk is not None else self.config.teacher_base_url
        return _public_url(url or "the SDK's default")

    # -- waits -------------------------------------------------------------------------------------------------

    def backoff(self, attempt: int) -> float:
        cap = min(self.config.teacher_backoff_max_s, self.config.teacher_backoff_base_s * (2**attempt))
        return cap * (0.5 + 0.5 * self._rng.random())  # "equal jitter": never less than half the cap

    def wait(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before retry `attempt + 1`: the backoff, or the server's `retry-after` when longer, capped."""
        wait = self.backoff(attempt)
        if retry_after is not None and retry_after > 0:
            wait = max(wait, retry_after)
        return min(wait, self.config.teacher_max_retry_after_s)

    # -- configuration errors ------------------------------------------------------------------------------------

    def _auth_error(self, exc: anthropic.APIStatusError) -> TeacherAuthError:
        return TeacherAuthError(
            f"The teacher API at {self.base_url} rejected the key from ${self.config.teacher_api_key_env} "
            f"(HTTP {exc.status_code}: {self.redact(_error_message(exc))[:200]}); check the key "
            "(teacher_api_key_env) and teacher_base_url."
        )

    def _config_error(self, exc: anthropic.APIStatusError, where: str) -> TeacherConfigError:
        """The error for a 400/404/422: which setting to fix, with the API's own message."""
        msg = self.redact(_error_message(exc))[:300]
        c = self.config
        if exc.status_code == 404 and "model" not in msg.lower():
            fix = (
                f"teacher_base_url={c.teacher_base_url!r} (the SDK appends /v1/messages to it; None means "
                "$ANTHROPIC_BASE_URL or https://api.anthropic.com)"
            )
        else:
            hints = [
                (r"model", f"teacher_model={c.teacher_model!r} (a Claude model id such as 'claude-sonnet-4-5')"),
                (r"max_tokens", f"teacher_max_output_tokens={c.teacher_max_output_tokens!r}"),
                (r"temperature", f"teacher_temperature={c.teacher_temperature!r}"),
                (r"cache_control|system", "teacher_rubric / teacher_rubric_file / teacher_use_prompt_caching"),
            ]
            named = [setting for pattern, setting in hints if re.search(pattern, msg, re.IGNORECASE)]
            fix = " or ".join(named) or (
                f"teacher_model={c.teacher_model!r}, teacher_max_output_tokens={c.teacher_max_output_tokens!r} and "
                f"teacher_temperature={c.teacher_temperature!r}"
            )
        return TeacherConfigError(
            f"The teacher's {where} was rejected by {self.base_url} with HTTP {exc.status_code} ({msg}); every "
            f"call would fail the same way, so training stops. Check {fix}."
        )

    def _unreachable_error(self, exc: Exception) -> TeacherConfigError:
        cause = type(exc.__cause__ or exc).__name__
        what = (
            f"timed out after {self.config.teacher_timeout_s}s"
            if isinstance(exc, anthropic.APITimeoutError)
            else cause
        )
        return TeacherConfigError(
            f"The teacher could not reach {self.base_url} ({what}, after {self.config.teacher_max_retries} "
            f"retries); check teacher_base_url={self.config.teacher_base_url!r} (None means $ANTHROPIC_BASE_URL or "
            "https://api.anthropic.com), the network, and teacher_timeout_s."
        )

    # -- preflight -----------------------------------------------------------------------------------------------

    async def preflight(self, request: dict, stats: TeacherStats) -> int | None:
        """Check key, URL, model and request shape with the free `messages.count_tokens`; return the tokens of the
        prefix before the user message (tools + system: what prompt caching caches), or None when not measurable.

        Raises:
            TeacherAuthError: 401/403. TeacherConfigError: 400/404/422, or the endpoint cannot be reached.
        """
        sdk, _ = self._ensure_sdk()
        bare = {"model": request["model"], "messages": request["messages"]}
        try:
            full = await sdk.messages.count_tokens(**count_tokens_kwargs(request))
            base = await sdk.messages.count_tokens(**bare)
        except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as exc:
            raise self._auth_error(exc) from None
        except anthropic.NotFoundError as exc:
            if "model" in _error_message(exc).lower():
                raise self._config_error(exc, "token-count preflight") from None
            # Some gateways lack the token-counting endpoint: check the Messages endpoint itself (1 token, billed).
            await self._preflight_create(request, stats)
            return None
        except anthropic.APIStatusError as exc:
            if exc.status_code in CONFIG_STATUS:
                raise self._config_error(exc, "token-count preflight") from None
            logger.warning(
                "teacher preflight: %s answered HTTP %s after %d retries; going on (a persistent failure stops the "
                "run through teacher_max_failure_share)",
                self.base_url,
                exc.status_code,
                self.config.teacher_max_retries,
            )
            return None
        except anthropic.APIConnectionError as exc:
            raise self._unreachable_error(exc) from None
        self.prefix_tokens = max(0, full.input_tokens - base.input_tokens)
        return self.prefix_tokens

    async def _preflight_create(self, request: dict, stats: TeacherStats) -> None:
        sdk, _ = self._ensure_sdk()
        ping = {"model": request["model"], "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]}
        try:
            resp = await self._create(ping, stats)
        except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as exc:
            raise self._auth_error(exc) from None
        except anthropic.APIStatusError as exc:
            if exc.status_code in CONFIG_STATUS:
                raise self._config_error(exc, "preflight request") from None
            return
        except anthropic.APIConnectionError as exc:
            raise self._unreachable_error(exc) from None
        stats.add_usage(getattr(resp, "usage", None))
        logger.warning(
            "teacher preflight: %s has no token-counting endpoint; the rubric's length is estimated and timed-out "
            "requests are priced at ~4 characters per token",
            self.base_url,
        )

    # -- sending -------------------------------------------------------------------------------------------------

    async def _create(self, kwargs: dict, stats: TeacherStats):
        """One `messages.create` with the SDK's retries; counts every attempt and prices those it could not read.

        Raises the SDK's errors once its retries are spent, or `MalformedReply` for a 200 whose body is unreadable.
        """
        sdk, sem = self._ensure_sdk()
        log = _Attempts()
        token = _ATTEMPTS.set(log)
        unreadable = None
        try:
            async with sem:
                return await sdk.messages.create(**kwargs)
        except (ValueError, anthropic.APIResponseValidationError) as exc:
            if log.last_status is None or not 200 <= log.last_status < 300:
                raise
            unreadable = exc
        finally:
            _ATTEMPTS.reset(token)
            stats.calls += log.calls
            stats.retries += log.retries
            stats.timed_out_requests += len(log.timed_out)
            for body in log.timed_out:
                await self._bill_unread(body, stats)
        await self._bill_unread(kwargs, stats)  # the API billed the 200 we could not read
        raise MalformedReply(f"unreadable reply body ({type(unreadable).__name__}: {str(unreadable)[:80]})")

    async def _bill_unread(self, body: dict, stats: TeacherStats) -> None:
        """Add the estimated usage of a billed request whose reply we never read: its input from the free token
        count (or ~4 characters per token), the cached prefix as a cache read when the cache was used within its
        5-minute lifetime (else as a write), and the mean output of the replies read so far."""
        total = None
        try:
            sdk, _ = self._ensure_sdk()
            counted = await sdk.with_options(max_retries=1).messages.count_tokens(**count_tokens_kwargs(body))
            total = counted.input_tokens
        except Exception as exc:  # best effort: pricing must never break scoring
            logger.debug("teacher: token count of an unread request failed (%s); estimating", type(exc).__name__)
        if total is None:
            total = math.ceil(len(json.dumps(count_tokens_kwargs(body), ensure_ascii=False)) / 4)
        system = body.get("system")
        marked = isinstance(system, list) and any(isinstance(b, dict) and b.get("cache_control") for b in system)
        prefix = min(total, self.prefix_tokens or 0) if marked and self._cacheable(body) else 0
        warm = time.monotonic() - self._cache_seen < PROMPT_CACHE_TTL_S
        stats.add_estimate(total - prefix, 0 if warm else prefix, prefix if warm else 0, stats.mean_output_tokens())

    def _cacheable(self, body: dict) -> bool:
        return (self.prefix_tokens or 0) >= min_cacheable_tokens(str(body.get("model", "")))

    def _note_usage(self, resp, stats: TeacherStats) -> None:
        usage = getattr(resp, "usage", None)
        stats.add_usage(usage)
        if usage is not None and (
            getattr(usage, "cache_read_input_tokens", 0) or getattr(usage, "cache_creation_input_tokens", 0)
        ):
            self._cache_seen = time.monotonic()

    def _status_failure(self, exc: anthropic.APIStatusError, n: int) -> None:
        """A status error the SDK did not (or no longer) retry: raise on configuration errors, else give up."""
        if exc.status_code in (401, 403):
            raise self._auth_error(exc) from None
        if exc.status_code in CONFIG_STATUS and not self.verified:
            raise self._config_error(exc, "first scoring request") from None
        self.last_failure = f"HTTP {exc.status_code}: {self.redact(_error_message(exc))[:160]}"
        level = logging.ERROR if exc.status_code in CONFIG_STATUS else logging.WARNING
        logger.log(level, "teacher call failed (%s): %d completion(s) get reward None", self.last_failure, n)

    async def scores(self, kwargs: dict, n: int, stats: TeacherStats) -> list[float] | None:
        """`n` scores for the request `kwargs`, or None once retries are spent or the reply is a refusal or cut off.

        Transport faults are retried by the SDK inside `_create`; a malformed reply is retried here (a fresh
        request, up to `teacher_max_retries` times). Every attempt is counted in `stats`.
        """
        retries = self.config.teacher_max_retries
        reason = ""
        for attempt in range(retries + 1):
            if attempt:
                stats.retries += 1
            try:
                resp = await self._create(kwargs, stats)
            except anthropic.APIStatusError as exc:
                self._status_failure(exc, n)
                return None
            except anthropic.APIConnectionError as exc:  # timeouts included, after the SDK's retries
                if isinstance(exc, anthropic.APITimeoutError):
                    what = f"timed out after {self.config.teacher_timeout_s}s"
                else:
                    what = type(exc.__cause__ or exc).__name__
                self.last_failure = f"{what} at {self.base_url}"
                logger.warning(
                    "teacher call failed after %d retries (%s): %d completion(s) get reward None",
                    retries,
                    self.last_failure,
                    n,
                )
                return None
            except MalformedReply as exc:
                stats.malformed_replies += 1
                reason = str(exc)
            else:
                self.verified = True
                self._note_usage(resp, stats)
                try:
                    return read_scores(resp, n)
                except TerminalReply as exc:
                    self._terminal(exc, resp, n, stats)
                    return None
                except MalformedReply as exc:
                    stats.malformed_replies += 1
                    reason = self.redact(str(exc))[:160]
            if attempt < retries:
                logger.info("teacher reply malformed (%s); retry %d/%d", reason, attempt + 1, retries)
        self.last_failure = f"malformed reply ({reason})"
        logger.warning(
            "teacher call gave up after %d attempt(s) (%s): %d completion(s) get reward None",
            retries + 1,
            self.last_failure,
            n,
        )
        return None

    def _terminal(self, exc: TerminalReply, resp, n: int, stats: TeacherStats) -> None:
        request_id = getattr(resp, "_request_id", None) or getattr(resp, "id", "")
        if exc.stop_reason == "refusal":
            stats.refusals += 1
            hint = "the grader declined these candidates"
        else:
            stats.max_tokens_stops += 1
            hint = "raise teacher_max_output_tokens or lower teacher_max_candidates_per_call"
        self.last_failure = f"reply {exc} ({request_id})"
        logger.warning(
            "teacher reply %s stopped with %s (%s): %d completion(s) get reward None, not retried",
            request_id,
            exc,
            hint,
            n,
        )
