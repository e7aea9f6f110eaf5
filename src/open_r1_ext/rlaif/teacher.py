"""`AnthropicTeacher`: a Claude teacher that scores student code against a rubric, as an async TRL reward function.

Seed: `../shared/seeds/003_0dfbdc15c190dcdc.txt` (RLAIF with a Claude teacher). How this departs from the seed:

1. Every token is measured, from the `usage` block of each reply (input, cache write, cache read, output), not
   projected (`stats.TeacherStats`); a billed request whose reply was never read (timed out, unreadable) is priced
   with the free token-counting endpoint. The Messages API is stateless: a system prompt is billed on every call.
   Moving the rubric into the system prompt saves nothing by itself; marking it with `cache_control` does, and only
   when the cached prefix reaches the model's minimum cacheable length, which the preflight measures.
2. The heuristic pre-filter really rejects junk: Python is parsed with `ast`, brackets are counted outside strings
   and comments, stubs, prose, hard-coded answers and notes to the grader lose (`heuristics.heuristic_check`). A
   prompt ending in an opened code fence makes the completion a continuation of that block (`extract_code`).
3. Completions are scored in batches: all of one prompt's group in one call, and with `teacher_batch_across_prompts`
   the groups of several prompts together, so the rubric is read once per call (`prompts.build_request`). The
   scores come back through a forced tool call, one `{index, score}` per candidate, read by index
   (`replies.read_scores`), at `teacher_temperature` 0.
4. One candidate cannot spoil its batch: text that cannot be encoded, look-alikes of the delimiters and oversized
   candidates are repaired or cut per candidate and counted (`prompts.prepare_text`).
5. Faults never crash training and never invent a score (`client.TeacherClient`): the SDK's retries with backoff,
   honouring `retry-after`; after the last retry, a refusal or a cut-off reply the reward is `None` (TRL leaves it
   out of the group baseline) and counted. Misconfiguration stops the run: a preflight names the setting to fix,
   and more than `teacher_max_failure_share` failures over the last `teacher_failure_window` samples stop it too.
6. A persistent SQLite cache (`cache.ScoreCache`) survives restarts; keys are hashes.

This module holds the tiers that decide which samples reach the API (filter, cache, batching) and the TRL reward
interface; the settings are `config.TeacherConfig`. Use it on its own with TRL:

    teacher = AnthropicTeacher(TeacherConfig(teacher_model="claude-sonnet-4-5"))
    trainer = GRPOTrainer(model=..., reward_funcs=[teacher], ...)

TRL detects the async `__call__` (`trl.trainer.utils.is_async_callable`), runs it on its reward event loop, turns
`None` into NaN, and passes `log_metric`, through which the teacher reports its per-batch `teacher/*` metrics.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from dataclasses import asdict, dataclass, field

from .cache import ScoreCache, cache_key, short_hash
from .client import MissingAPIKeyError, TeacherAuthError, TeacherClient, TeacherConfigError
from .config import TeacherConfig, default_cache_path
from .heuristics import detect_language, extract_code, heuristic_check
from .prompts import (
    SCORE_TOOL,
    build_request,
    completion_text,
    encodable,
    min_cacheable_tokens,
    prepare_text,
    prompt_text,
    task_text,
)
from .replies import MalformedReply, read_scores
from .stats import TeacherStats


__all__ = [  # the names tests, scripts and `open_r1_ext` import from here
    "AnthropicTeacher",
    "MalformedReply",
    "MissingAPIKeyError",
    "TeacherAuthError",
    "TeacherConfig",
    "TeacherConfigError",
    "TeacherFailureError",
    "TeacherStats",
    "min_cacheable_tokens",
    "read_scores",
]

logger = logging.getLogger(__name__)

ALL_FILTERED_WARN_BATCHES = 5  # consecutive batches scored entirely by the pre-filter before a warning


class TeacherFailureError(RuntimeError):
    """Too many samples sent to the teacher got no score: training would go on without a reward, so it stops."""


@dataclass
class _Request:
    """One call: the tasks it carries and its candidates (each naming its task by position, from 1)."""

    tasks: list[tuple[str, str]]  # (prompt text, language)
    task_of: list[int] = field(default_factory=list)  # per candidate: its task number
    codes: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    owners: list[list[int]] = field(default_factory=list)  # sample indices each candidate's score goes to


@dataclass
class _Batch:
    """One batch on its way through the tiers: what is decided so far, and what still needs the teacher."""

    scores: list[float | None]
    sources: list[str]  # per sample: filtered, cache, teacher or failed
    pending: dict[tuple[str, str], dict[str, list[int]]] = field(default_factory=dict)  # (prompt, lang) -> key -> idx
    codes: dict[str, str] = field(default_factory=dict)  # key -> code

    @classmethod
    def empty(cls, n: int) -> _Batch:
        return cls([None] * n, ["failed"] * n)

    def settle(self, i: int, score: float, source: str) -> None:
        self.scores[i], self.sources[i] = score, source


class AnthropicTeacher:
    """Scores code completions against a rubric through `anthropic.AsyncAnthropic`; an async TRL reward function.

    `await teacher(prompts=..., completions=..., language=[...])` returns one score in [0, 1] (or None when the
    teacher could not score it) per completion. The language of each completion comes from a `language` dataset
    column when there is one, else from a markdown fence tag (the prompt's, for a continuation), else from the code.

    `config` is a `TeacherConfig` or any config that inherits it (`RLAIFConfig`); the teacher keeps a plain
    `TeacherConfig` copy of its `teacher_*` settings, with `overrides` applied.

    Raises:
        MissingAPIKeyError: at construction, when the environment variable `teacher_api_key_env` is unset/empty.
        TeacherAuthError, TeacherConfigError: at the preflight (`preflight_sync`, or the first batch) or the first
            scoring request, when a setting makes every call fail.
        TeacherFailureError: from a batch, when failures exceed `teacher_max_failure_share`.
    """

    def __init__(self, config: TeacherConfig | None = None, **overrides):
        self.__name__ = "anthropic_teacher"  # TRL names reward functions by it: rewards/anthropic_teacher/mean
        self.config = TeacherConfig.of(config if config is not None else TeacherConfig(), **overrides)
        self.rubric = self.config.rubric_text()
        self._client = TeacherClient(self.config)  # reads the key: fails here, not at the first batch
        self.stats = TeacherStats()
        self._cache = self._open_cache()
        self._preflight_done = False
        self._outcomes: deque[bool] = deque(maxlen=self.config.teacher_failure_window)  # True: got no score
        self._all_filtered_batches = 0
        if not self.config.teacher_preflight:
            self._check_prefix_length(None)

    # -- construction helpers -------------------------------------------------------------------------------

    def _open_cache(self) -> ScoreCache | None:
        if not self.config.teacher_use_cache:
            return None
        path = self.config.teacher_cache_path or default_cache_path()
        return ScoreCache(path, self.config.teacher_cache_ttl_s, scorer=self.fingerprint)

    @property
    def fingerprint(self) -> str:
        """Identifies what a cached score means: the model, the rubric and the temperature (not the savings)."""
        c = self.config
        return short_hash(f"{c.teacher_model}\n{self.rubric}\n{c.teacher_temperature}")

    @property
    def _secret(self):
        return self._client.secret

    @property
    def prefix_tokens(self) -> int | None:
        """Tokens before the user message (tool definition + system), measured by the preflight; None: unknown."""
        return self._client.prefix_tokens

    def _check_prefix_length(self, measured: int | None) -> None:
        """Warn when the cached prefix (tool definition + rubric) is shorter than the model caches."""
        c = self.config
        if not (c.teacher_use_prompt_caching and c.teacher_rubric_in_system_prompt):
            return
        need = min_cacheable_tokens(c.teacher_model)
        tokens = measured
        how = "measured by the token-counting endpoint"
        if tokens is None:  # ~4 characters per token for English prose
            tokens, how = (
                round((len(self.rubric) + len(json.dumps(SCORE_TOOL))) / 4),
                "estimated at 4 characters/token",
            )
        if tokens < need:
            logger.warning(
                "teacher rubric and tool definition are %d tokens (%s), below the %d-token minimum cacheable prefix "
                "of %s: prompt caching will not apply and the rubric is billed in full on every call; lengthen the "
                "rubric (more criteria, anchors, examples) or turn teacher_use_prompt_caching off",
                tokens,
                how,
                need,
                c.teacher_model,
            )

    def __repr__(self) -> str:
        c = self.config
        cache = (c.teacher_cache_path or default_cache_path()) if c.teacher_use_cache else None
        return (
            f"AnthropicTeacher(teacher_model={c.teacher_model!r}, teacher_base_url={c.teacher_base_url!r}, "
            f"teacher_api_key_env={c.teacher_api_key_env!r}, cache={cache!r})"
        )

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = None  # a SQLite connection; reopened on the other side
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._cache = self._open_cache()

    # -- state for checkpoints ------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"stats": asdict(self.stats), "fingerprint": self.fingerprint, "outcomes": list(self._outcomes)}

    def load_state_dict(self, state: dict) -> None:
        self.stats = TeacherStats.from_dict(state.get("stats", {}))
        self._outcomes.clear()
        self._outcomes.extend(bool(x) for x in state.get("outcomes", []))

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    # -- preflight ----------------------------------------------------------------------------------------------

    def _preflight_request(self) -> dict:
        return build_request(self.config, self.rubric, [("Preflight: no candidates to grade.", "python")], [])

    async def preflight(self) -> None:
        """Check the settings once before the first scoring call (`client.TeacherClient.preflight`) and warn when
        the measured prefix is too short to be cached. Raises `TeacherAuthError` / `TeacherConfigError`."""
        if self._preflight_done or not self.config.teacher_preflight:
            return
        self._preflight_done = True  # set first: concurrent batches do not check twice
        try:
            measured = await self._client.preflight(self._preflight_request(), self.stats)
        except Exception:
            self._preflight_done = False
            raise
        self._check_prefix_length(measured)

    def preflight_sync(self) -> None:
        """Run the preflight now (at start-up); inside a running event loop it is left to the first batch."""
        try:
            asyncio.get_running_loop()
            return
        except RuntimeError:
            pass

        async def run():
            try:
                await self.preflight()
            finally:
                await self.aclose()

        asyncio.run(run())

    # -- scoring tiers ----------------------------------------------------------------------------------------

    def _route(self, batch: _Batch, i: int, prompt, completion, hint: str | None) -> None:
        """Tier 1: a sample below the heuristic threshold keeps its heuristic score; the rest wait for the teacher."""
        c = self.config
        text, replaced = encodable(completion_text(completion))  # judged, keyed and sent as it will be sent
        self.stats.encoding_replacements += replaced
        ptext = prompt_text(prompt)
        continued = prompt if isinstance(prompt, str) else None  # only a plain-text prompt is continued
        code, fence_lang = extract_code(text, continued)
        lang = detect_language(code, hint or fence_lang or c.teacher_language)
        if c.teacher_use_tiered_scoring:
            h, flag = heuristic_check(text, lang, continued)
            if h < c.teacher_heuristic_score_threshold:
                batch.settle(i, h, "filtered")
                self.stats.filtered += 1
                self.stats.flagged += flag is not None
                return
        key = cache_key(ptext, code, lang)
        if not c.teacher_use_cache:
            key = f"{key}#{i}"  # no dedupe without the cache: the "savings off" baseline sends every sample
        batch.codes[key] = code
        batch.pending.setdefault((ptext, lang), {}).setdefault(key, []).append(i)

    def _serve_cached(self, batch: _Batch) -> None:
        """Tier 2: scores already in the SQLite cache."""
        if self._cache is None:
            return
        hits = self._cache.get_many([k for group in batch.pending.values() for k in group])
        for group in batch.pending.values():
            for key in [k for k in group if k in hits]:
                for i in group.pop(key):
                    batch.settle(i, hits[key], "cache")
                    self.stats.local_cache_hits += 1

    def _requests(self, batch: _Batch) -> list[_Request]:
        """Tier 3: the calls. Without group scoring, one per completion; with it, one per prompt group, or with
        `teacher_batch_across_prompts` whole groups packed together; never more than
        `teacher_max_candidates_per_call` candidates in one call (a larger group is split)."""
        c = self.config
        cap = c.teacher_max_candidates_per_call if c.teacher_batch_group_scoring else 1
        across = c.teacher_batch_group_scoring and c.teacher_batch_across_prompts
        chunks, current = [], []
        for task, group in batch.pending.items():
            if current and (not across or len(current) + len(group) > cap):
                chunks.append(current)
                current = []
            for key in group:
                current.append((task, key))
                if len(current) == cap:
                    chunks.append(current)
                    current = []
        if current:
            chunks.append(current)
        requests = []
        for chunk in chunks:
            req = _Request(tasks=list(dict.fromkeys(task for task, _ in chunk)))
            for task, key in chunk:
                req.task_of.append(req.tasks.index(task) + 1)
                req.codes.append(batch.codes[key])
                req.keys.append(key)
                req.owners.append(batch.pending[task][key])
            requests.append(req)
        return requests

    def _prepare(self, text: str, max_chars: int | None) -> str:
        """Student or task text made safe to send (`prompts.prepare_text`), each repair counted."""
        p = prepare_text(text, max_chars)
        self.stats.encoding_replacements += p.encoding_replaced
        self.stats.escaped_delimiters += p.escaped
        self.stats.candidate_truncations += p.truncated
        return p.text

    def build_request(self, req: _Request) -> dict:
        """Keyword arguments of `client.messages.create` for one call scoring the candidates of `req`."""
        tasks = [(self._prepare(task_text(self.config, p), None), lang) for p, lang in req.tasks]
        cap = self.config.teacher_max_candidate_chars
        candidates = [(t, self._prepare(code, cap)) for t, code in zip(req.task_of, req.codes)]
        return build_request(self.config, self.rubric, tasks, candidates)

    def request_for(self, prompt: str, language: str, codes: list[str]) -> dict:
        """The request that would score `codes` for one `prompt` (for inspection and tests)."""
        return self.build_request(_Request([(prompt, language)], [1] * len(codes), list(codes)))

    async def _send(self, req: _Request) -> list[float] | None:
        return await self._client.scores(self.build_request(req), len(req.codes), self.stats)

    def _record(self, batch: _Batch, requests: list[_Request], results: list[list[float] | None]) -> None:
        """Give each sample its teacher score (or count it failed) and cache the fresh scores."""
        fresh = {}
        for req, res in zip(requests, results):
            for j, owners in enumerate(req.owners):
                self._outcomes.extend([res is None] * len(owners))
                if res is None:
                    self.stats.failures += len(owners)
                    continue
                fresh[req.keys[j]] = res[j]
                for i in owners:
                    batch.settle(i, res[j], "teacher")
                self.stats.api_scored += 1
                self.stats.local_cache_hits += len(owners) - 1  # in-batch duplicates: scored once, served twice
        if self._cache is not None:
            self._cache.put_many(fresh)

    def failure_share(self) -> float:
        """Share of the last `teacher_failure_window` samples sent to the teacher that got no score."""
        return sum(self._outcomes) / len(self._outcomes) if self._outcomes else 0.0

    def _check_failure_share(self) -> None:
        c = self.config
        if len(self._outcomes) == self._outcomes.maxlen and self.failure_share() > c.teacher_max_failure_share:
            raise TeacherFailureError(
                f"{sum(self._outcomes)} of the last {len(self._outcomes)} samples sent to the teacher got no score, "
                f"more than teacher_max_failure_share={c.teacher_max_failure_share}: training would go on without a "
                f"reward signal, so it stops. Last failure: {self._client.last_failure or 'unknown'}. Check "
                f"teacher_base_url={c.teacher_base_url!r}, teacher_model={c.teacher_model!r}, the API's status and "
                "rate limits; teacher_max_failure_share=1.0 never stops."
            )

    def _warn_if_never_called(self, batch: _Batch) -> None:
        if batch.sources and all(s == "filtered" for s in batch.sources):
            self._all_filtered_batches += 1
            if self._all_filtered_batches == ALL_FILTERED_WARN_BATCHES:
                logger.warning(
                    "teacher: the pre-filter scored every sample of the last %d batches locally (all below "
                    "teacher_heuristic_score_threshold=%s), so the teacher was never called; lower the threshold "
                    "if the policy's completions are real code",
                    ALL_FILTERED_WARN_BATCHES,
                    self.config.teacher_heuristic_score_threshold,
                )
        else:
            self._all_filtered_batches = 0

    def _apply_reward_threshold(self, scores: list[float | None]) -> None:
        threshold = self.config.teacher_reward_threshold
        for i, s in enumerate(scores):
            if s is not None and s < threshold:
                scores[i] = None
                self.stats.below_reward_threshold += 1

    async def score(self, prompts: list, completions: list, languages: list | None = None):
        """Scores and per-sample sources (`filtered`, `cache`, `teacher`, `failed`) for a batch.

        Samples are handled in tiers: the heuristic filter (no call), the local cache and in-batch duplicates
        (no call), then the teacher calls (`_requests`). Raises `TeacherFailureError` when failures exceed
        `teacher_max_failure_share` over the last `teacher_failure_window` samples sent.
        """
        n = len(completions)
        if len(prompts) != n:
            raise ValueError(f"got {len(prompts)} prompts for {n} completions")
        self.stats.samples += n
        batch = _Batch.empty(n)
        for i, (prompt, completion) in enumerate(zip(prompts, completions)):
            self._route(batch, i, prompt, completion, languages[i] if languages is not None else None)
        self._serve_cached(batch)
        requests = self._requests(batch)
        if requests:
            await self.preflight()
        results = await asyncio.gather(*(self._send(r) for r in requests))
        self._record(batch, requests, results)
        self._apply_reward_threshold(batch.scores)
        self._warn_if_never_called(batch)
        self._check_failure_share()
        return batch.scores, batch.sources

    # -- TRL reward interface -----------------------------------------------------------------------------------

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
            log_metric("teacher/failure_share", self.failure_share())
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
        await self._client.aclose()

    def metrics(self, stats: TeacherStats | None = None) -> dict[str, float]:
        """`teacher/*` metric names (and `api_tokens_sent`) for `stats` (default: the cumulative counters)."""
        return (stats or self.stats).metrics(self.config)
