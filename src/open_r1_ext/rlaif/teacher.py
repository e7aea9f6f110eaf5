"""`AnthropicTeacher`: a Claude teacher that scores student code against a rubric, as an async TRL reward function.

Seed: `../shared/seeds/003_0dfbdc15c190dcdc.txt` (RLAIF with a Claude teacher). How this departs from the seed:

1. Every token is measured, from the `usage` block of each reply (input, cache write, cache read, output), not
   projected (`stats.TeacherStats`). The Messages API is stateless: a system prompt is billed on every call. Moving
   the rubric into the system prompt saves nothing by itself; marking it with `cache_control` does, and only when
   the cached prefix reaches the model's minimum cacheable length (`prompts.min_cacheable_tokens`).
2. The heuristic pre-filter really rejects junk: Python is parsed with `ast`, brackets are counted outside strings
   and comments, stubs and prose lose the structure credit (`heuristics.heuristic_score`).
3. All completions of one prompt are scored in one call (group batching, `prompts.build_request`), so the prompt
   and rubric are paid once per group, and the reply is parsed defensively as a JSON list of scores
   (`replies.parse_scores`).
4. Faults never crash training and never invent a score (`client.TeacherClient`): retries with backoff and jitter,
   honouring `retry-after`; after the last retry the reward is `None` (TRL leaves it out of the group baseline)
   and counted in `teacher/failures`.
5. A persistent SQLite cache (`cache.ScoreCache`) survives restarts; keys are hashes.

This module holds the tiers that decide which samples reach the API (filter, cache, batching) and the TRL reward
interface; the settings are `config.TeacherConfig`. Use it on its own with TRL:

    teacher = AnthropicTeacher(TeacherConfig(teacher_model="claude-sonnet-4-5"))
    trainer = GRPOTrainer(model=..., reward_funcs=[teacher], ...)

TRL detects the async `__call__` (`trl.trainer.utils.is_async_callable`), runs it on its reward event loop, turns
`None` into NaN, and passes `log_metric`, through which the teacher reports its per-batch `teacher/*` metrics.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, field

from .cache import ScoreCache, cache_key, short_hash
from .client import MissingAPIKeyError, TeacherAuthError, TeacherClient
from .config import TeacherConfig, default_cache_path
from .heuristics import detect_language, extract_code, heuristic_score
from .prompts import build_request, completion_text, min_cacheable_tokens, prompt_text
from .replies import MalformedReply, parse_scores
from .stats import TeacherStats


__all__ = [  # the names tests, scripts and `open_r1_ext` import from here
    "AnthropicTeacher",
    "MalformedReply",
    "MissingAPIKeyError",
    "TeacherAuthError",
    "TeacherConfig",
    "TeacherStats",
    "min_cacheable_tokens",
    "parse_scores",
]

logger = logging.getLogger(__name__)


@dataclass
class _Request:
    prompt: str
    language: str
    codes: list[str]
    keys: list[str]
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

    `await teacher(prompts=..., completions=..., language=[...])` returns one score in [0, 1] (or None after
    exhausted retries) per completion. The language of each completion comes from a `language` dataset column
    when there is one, else from a markdown fence tag, else from the code (`heuristics.detect_language`).

    `config` is a `TeacherConfig` or any config that inherits it (`RLAIFConfig`); the teacher keeps a plain
    `TeacherConfig` copy of its `teacher_*` settings, with `overrides` applied.

    Raises:
        MissingAPIKeyError: at construction, when the environment variable `teacher_api_key_env` is unset/empty.
    """

    def __init__(self, config: TeacherConfig | None = None, **overrides):
        self.__name__ = "anthropic_teacher"  # TRL names reward functions by it: rewards/anthropic_teacher/mean
        self.config = TeacherConfig.of(config if config is not None else TeacherConfig(), **overrides)
        self.rubric = self.config.rubric_text()
        self._client = TeacherClient(self.config)  # reads the key: fails here, not at the first batch
        self.stats = TeacherStats()
        self._cache = self._open_cache()
        self._warn_if_rubric_too_short()

    # -- construction helpers -------------------------------------------------------------------------------

    def _open_cache(self) -> ScoreCache | None:
        if not self.config.teacher_use_cache:
            return None
        path = self.config.teacher_cache_path or default_cache_path()
        return ScoreCache(path, self.config.teacher_cache_ttl_s, scorer=self.fingerprint)

    @property
    def fingerprint(self) -> str:
        """Identifies what a cached score means: the model and the rubric (not the savings switches)."""
        return short_hash(f"{self.config.teacher_model}\n{self.rubric}")

    @property
    def _secret(self):
        return self._client.secret

    def _warn_if_rubric_too_short(self) -> None:
        if not (self.config.teacher_use_prompt_caching and self.config.teacher_rubric_in_system_prompt):
            return
        est = len(self.rubric) / 4  # ~4 characters per token for English prose
        need = min_cacheable_tokens(self.config.teacher_model)
        if est < need:
            logger.warning(
                "teacher rubric is about %d tokens, below the %d-token minimum cacheable prefix of %s: prompt caching "
                "will not apply and the rubric is billed in full on every call; lengthen the rubric (more criteria, "
                "anchors, examples) or turn teacher_use_prompt_caching off",
                est,
                need,
                self.config.teacher_model,
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
        return {"stats": asdict(self.stats), "fingerprint": self.fingerprint}

    def load_state_dict(self, state: dict) -> None:
        self.stats = TeacherStats.from_dict(state.get("stats", {}))

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    # -- request building -----------------------------------------------------------------------------------

    def build_request(self, prompt: str, language: str, codes: list[str]) -> dict:
        """Keyword arguments of `client.messages.create` for one call scoring `codes` (one group) for `prompt`."""
        return build_request(self.config, self.rubric, prompt, language, codes)

    # -- scoring tiers ----------------------------------------------------------------------------------------

    def _route(self, batch: _Batch, i: int, prompt, completion, hint: str | None) -> None:
        """Tier 1: a sample below the heuristic threshold keeps its heuristic score; the rest wait for the teacher."""
        c = self.config
        text = completion_text(completion)
        code, fence_lang = extract_code(text)
        lang = detect_language(code, hint or fence_lang or c.teacher_language)
        if c.teacher_use_tiered_scoring:
            h = heuristic_score(text, lang)
            if h < c.teacher_heuristic_score_threshold:
                batch.settle(i, h, "filtered")
                self.stats.filtered += 1
                return
        ptext = prompt_text(prompt)
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
        """Tier 3: one request per prompt group (split above `teacher_max_candidates_per_call`), or per sample."""
        step = self.config.teacher_max_candidates_per_call if self.config.teacher_batch_group_scoring else 1
        requests = []
        for (ptext, lang), group in batch.pending.items():
            keys = list(group)
            for s in range(0, len(keys), step):
                ks = keys[s : s + step]
                requests.append(_Request(ptext, lang, [batch.codes[k] for k in ks], ks, [group[k] for k in ks]))
        return requests

    async def _send(self, req: _Request) -> list[float] | None:
        kwargs = self.build_request(req.prompt, req.language, req.codes)
        return await self._client.scores(kwargs, len(req.codes), self.stats)

    def _record(self, batch: _Batch, requests: list[_Request], results: list[list[float] | None]) -> None:
        """Give each sample its teacher score (or count it failed) and cache the fresh scores."""
        fresh = {}
        for req, res in zip(requests, results):
            for j, owners in enumerate(req.owners):
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

    def _apply_reward_threshold(self, scores: list[float | None]) -> None:
        threshold = self.config.teacher_reward_threshold
        for i, s in enumerate(scores):
            if s is not None and s < threshold:
                scores[i] = None
                self.stats.below_reward_threshold += 1

    async def score(self, prompts: list, completions: list, languages: list | None = None):
        """Scores and per-sample sources (`filtered`, `cache`, `teacher`, `failed`) for a batch.

        Samples are handled in tiers: the heuristic filter (no call), the local cache and in-batch duplicates
        (no call), then one teacher call per prompt group (or per completion when batching is off).
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
        results = await asyncio.gather(*(self._send(r) for r in requests))
        self._record(batch, requests, results)
        self._apply_reward_threshold(batch.scores)
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
