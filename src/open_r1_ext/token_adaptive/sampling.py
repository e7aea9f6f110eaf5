"""Group assembly for token-adaptive GRPO: first rollouts, branch points, prefix resampling, fill-up.

The assembly is independent of how tokens are sampled: it talks to a `RolloutBackend` (transformers `generate` or
TRL's vLLM integration, see `backends.py`; a fake in the tests). For one process's generation batch it returns,
row for row, the completions that replace TRL's plain samples, so everything downstream (rewards, old log-probs,
advantages, loss) sees them.

For each group (the rows of one prompt; with several processes, each process's share of a group):

1. **First rollouts.** `n_first = round(size * first_rollout_fraction)` (at least 1) samples at the base temperature,
   with per-token uncertainty. The backend reports each rollout's branch point `b` (see `TokenAdaptiveConfig`:
   the entropy peak inside fractional bounds, or the first absolute failure); its first `b` tokens become a
   *prefix*. A rollout without a branch point is a leaf of its own.
2. **Resampling rounds** `k = 1 .. max_resamples_per_prefix`. In round `k` every prefix that has had `k - 1`
   resamples gets one more, in order, while the group has open slots: the continuation is sampled from
   prompt + prefix at `temperature * adaptive_temperature_scale ** k` (the training temperature by default, so
   on-policy), with a budget of `max_completion_length - len(prefix)` tokens. The completion is prefix +
   continuation, scored as a whole; when it was sampled hotter, its tokens carry `log pi_T - log mu` for the
   importance correction.
3. **Fill-up.** Slots still open (no branch anywhere, or every prefix at its cap) get plain rollouts at the base
   temperature, as GRPO would have sampled them.

A first rollout that the backend generated to its end (relative branching, or vLLM) stays in the group as the
*base trajectory* of its branch (`keep_base`): it shares its first `b` tokens with its continuations and is one of
the branch's leaves. A first rollout stopped at its failure point (absolute branching on the transformers path)
has no ending to reward and enters training only through its continuations.

Every completion carries a prefix id: the global row index of the first rollout it grew from (its own row for
first and fill-up rollouts), unique across processes, and `prefix_length`, the tokens it shares with the other
completions of that id (0 when it shares none), so the trainer can credit a shared prefix once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from .uncertainty import NO_FAILURE


@dataclass
class Sampled:
    """What a backend returns per requested row.

    `token_ids` are the generated tokens kept (through EOS, or through the failing token of a first rollout that
    was stopped); `logprobs` the sampled tokens' log-probabilities when the backend has them (vLLM), else None;
    `failure_point` the first rollout's branch point or `NO_FAILURE`; `sampled_tokens` how many tokens were
    actually sampled for this row (what `adaptive/generated_tokens` counts); `log_ratio` per token
    `log pi_T(token) - log mu(token)` when the row was sampled from `mu` other than the policy at the training
    temperature (a hot continuation on the transformers path), else None.
    """

    token_ids: list[int]
    logprobs: list[float] | None = None
    failure_point: int = NO_FAILURE
    sampled_tokens: int = 0
    log_ratio: list[float] | None = None


class RolloutBackend(Protocol):
    """How the assembly samples. Every call is made on every process when any process has rows (see `sync_count`)."""

    def sample_first(self, prompts: list[list[int]], detect: bool) -> list[Sampled]:
        """Sample one rollout per prompt at the base temperature; with `detect`, report failure points (and stop
        at them when the backend can and the trainer asks it to)."""

    def sample_continuations(self, prompts: list[list[int]], budgets: list[int], temperature: float) -> list[Sampled]:
        """Sample one continuation per (prompt + prefix) row at `temperature`, at most `budgets[i]` tokens."""

    def sync_count(self, n: int) -> int:
        """The largest `n` over processes (identity on one process)."""


@dataclass
class Completion:
    """One row of the assembled batch: the completion TRL scores and trains on, and where it came from."""

    token_ids: list[int]
    logprobs: list[float] | None
    prefix_id: int
    prefix_length: int  # tokens shared with the other completions of `prefix_id` (0: shares none)
    attempt: int  # 0 for first and fill-up rollouts, k for the k-th resample of a prefix
    temperature: float  # temperature of the continuation (of the whole rollout when attempt is 0)
    log_ratio: list[float] | None = None  # per token log pi_T - log mu (0 on the prefix); None: all on-policy


@dataclass
class AssemblyStats:
    first_rollouts: int = 0
    truncated: int = 0
    failure_points: list[int] = field(default_factory=list)
    resamples: int = 0
    fill_rollouts: int = 0
    sampled_tokens: int = 0
    padding_rows: int = 0  # rows sampled only so that every process makes the same calls
    rounds: int = 0
    branch_fractions: list[float] = field(default_factory=list)  # branch point / rollout length, per branch


@dataclass
class _Prefix:
    segment: int
    prompt: list[int]
    tokens: list[int]
    logprobs: list[float] | None
    prefix_id: int
    attempts: int = 0


def first_rollouts_per_group(size: int, fraction: float) -> int:
    """Number of first rollouts for a group (share) of `size` rows: `round(size * fraction)`, between 1 and size."""
    return max(1, min(size, math.floor(size * fraction + 0.5)))


def resample_temperature(temperature: float, scale: float, attempt: int) -> float:
    """Temperature of the `attempt`-th resample of a prefix: `temperature * scale ** attempt`."""
    return temperature * scale**attempt


def segments(num_rows: int, num_generations: int, row_offset: int = 0) -> list[tuple[int, int]]:
    """Local `(start, end)` runs of rows belonging to one group, for a process whose first row is global row
    `row_offset` (groups may straddle processes when the per-process batch is not a multiple of the group)."""
    out: list[tuple[int, int]] = []
    start = 0
    while start < num_rows:
        group = (row_offset + start) // num_generations
        end = min(num_rows, (group + 1) * num_generations - row_offset)
        out.append((start, end))
        start = end
    return out


def _padding(num_rows: int, n_global: int, pad_equal: bool) -> int:
    """Rows to add so that every process issues the same call: up to `n_global` rows, or 1 when it has none."""
    return (n_global - num_rows) if pad_equal else (1 if num_rows == 0 else 0)


def _synced(backend, num_rows: int, pad_equal: bool, stats: AssemblyStats, call) -> list[Sampled] | None:
    """One sampling call, made on every process when any process has rows: `call(pad)` samples this process's
    `num_rows` rows plus `pad` dummy rows; the dummies are dropped. None when no process has rows."""
    n = backend.sync_count(num_rows)
    if n == 0:
        return None
    out = call(_padding(num_rows, n, pad_equal))
    stats.rounds += 1
    return _drop_padding(out, num_rows, stats)


def _drop_padding(out: list[Sampled], num_rows: int, stats: AssemblyStats) -> list[Sampled]:
    stats.padding_rows += len(out) - num_rows
    stats.sampled_tokens += sum(s.sampled_tokens for s in out[num_rows:])
    return out[:num_rows]


def assemble_groups(
    prompt_ids: list[list[int]],
    num_generations: int,
    backend: RolloutBackend,
    *,
    temperature: float,
    max_completion_length: int,
    first_rollout_fraction: float = 0.5,
    max_resamples_per_prefix: int = 3,
    adaptive_temperature_scale: float = 1.2,
    keep_base: bool = False,
    row_offset: int = 0,
    pad_equal: bool = False,
) -> tuple[list[Completion], AssemblyStats]:
    """Build this process's rows of the generation batch from first rollouts and prefix resamples.

    Args:
        prompt_ids: `B` prompts as TRL passes them to `_generate_single_turn`: each prompt repeated
            `num_generations` times in a row (globally; this process holds rows `row_offset .. row_offset + B`).
        num_generations: the GRPO group size.
        backend: the sampler.
        temperature: the base sampling temperature.
        max_completion_length: the completion length cap; a continuation gets what its prefix leaves.
        first_rollout_fraction, max_resamples_per_prefix, adaptive_temperature_scale: see `TokenAdaptiveConfig`.
        keep_base: keep a branched first rollout in its group (it was generated to its end).
        row_offset: global index of this process's first row (prefix ids are global row indices).
        pad_equal: pad every call to the same row count on every process (vLLM server mode and tensor parallel
            slice results by `process_index * len(prompts)`); otherwise only a process without rows gets one.

    Returns:
        `(completions, stats)`: `B` completions, row `i` answering `prompt_ids[i]`, and the counts for metrics.
    """
    asm = _Assembly(prompt_ids, num_generations, backend, temperature, row_offset, pad_equal)
    prefixes = asm.first_rollouts(first_rollout_fraction, keep_base)
    asm.resample(prefixes, max_resamples_per_prefix, adaptive_temperature_scale, max_completion_length)
    asm.fill(first_rollout_fraction)
    return asm.finish()


class _Assembly:
    """The three phases of `assemble_groups` over one batch: first rollouts, resampling rounds, fill-up."""

    def __init__(self, prompt_ids, num_generations, backend, temperature, row_offset, pad_equal):
        self.prompt_ids, self.backend, self.temperature = prompt_ids, backend, temperature
        self.row_offset, self.pad_equal = row_offset, pad_equal
        self.stats = AssemblyStats()
        self.segs = segments(len(prompt_ids), num_generations, row_offset)
        self.slots: list[list[Completion]] = [[] for _ in self.segs]
        self.dummy = list(prompt_ids[0]) if prompt_ids else []

    def _call(self, num_rows: int, call) -> list[Sampled] | None:
        return _synced(self.backend, num_rows, self.pad_equal, self.stats, call)

    def first_rollouts(self, fraction: float, keep_base: bool) -> list[_Prefix]:
        """1. First rollouts; the ones with a branch point become prefixes (and stay as rows if `keep_base`)."""
        rows: list[tuple[int, int]] = []  # (segment, local row of the rollout's slot)
        for s, (start, end) in enumerate(self.segs):
            rows += [(s, start + j) for j in range(first_rollouts_per_group(end - start, fraction))]
        prompts = [list(self.prompt_ids[r]) for _, r in rows]
        out = self._call(len(rows), lambda pad: self.backend.sample_first(prompts + [self.dummy] * pad, True))
        prefixes: list[_Prefix] = []
        for (s, r), smp in zip(rows, out or []):
            self.stats.first_rollouts += 1
            self.stats.sampled_tokens += smp.sampled_tokens
            pid = self.row_offset + r
            branched = smp.failure_point != NO_FAILURE
            shared = 0
            if branched:
                f = smp.failure_point
                self.stats.truncated += 1
                self.stats.failure_points.append(f)
                self.stats.branch_fractions.append(f / max(len(smp.token_ids), 1))
                lp = smp.logprobs[:f] if smp.logprobs is not None else None
                prefixes.append(_Prefix(s, list(self.prompt_ids[r]), smp.token_ids[:f], lp, pid))
                shared = f
            if not branched or keep_base:
                self.slots[s].append(Completion(smp.token_ids, smp.logprobs, pid, shared, 0, self.temperature))
        return prefixes

    def resample(self, prefixes: list[_Prefix], max_resamples: int, scale: float, max_completion_length: int):
        """2. Resampling rounds: one more continuation per prefix per round, in order, while its group has room."""
        for k in range(1, max_resamples + 1):
            room = [(end - start) - len(self.slots[s]) for s, (start, end) in enumerate(self.segs)]
            todo: list[_Prefix] = []
            for p in prefixes:
                if p.attempts == k - 1 and room[p.segment] > 0:
                    todo.append(p)
                    room[p.segment] -= 1
            t_k = resample_temperature(self.temperature, scale, k)
            out = self._continuations(todo, t_k, max_completion_length)
            if out is None:
                break
            for p, smp in zip(todo, out):
                p.attempts += 1
                self.stats.resamples += 1
                self.stats.sampled_tokens += smp.sampled_tokens
                lp = p.logprobs + smp.logprobs if p.logprobs is not None and smp.logprobs is not None else None
                ratio = [0.0] * len(p.tokens) + list(smp.log_ratio) if smp.log_ratio is not None else None
                completion = Completion(p.tokens + smp.token_ids, lp, p.prefix_id, len(p.tokens), k, t_k, ratio)
                self.slots[p.segment].append(completion)

    def _continuations(self, todo: list[_Prefix], t_k: float, max_completion_length: int) -> list[Sampled] | None:
        rows = [p.prompt + p.tokens for p in todo]
        budgets = [max_completion_length - len(p.tokens) for p in todo]

        def call(pad: int) -> list[Sampled]:
            return self.backend.sample_continuations(rows + [self.dummy] * pad, budgets + [1] * pad, t_k)

        return self._call(len(todo), call)

    def fill(self, fraction: float) -> None:
        """3. Fill-up: plain rollouts for every slot the first two phases left empty."""
        rows: list[tuple[int, int]] = []
        for s, (start, end) in enumerate(self.segs):
            n_first = first_rollouts_per_group(end - start, fraction)
            rows += [(s, start + n_first + m) for m in range((end - start) - len(self.slots[s]))]
        prompts = [list(self.prompt_ids[r]) for _, r in rows]
        out = self._call(len(rows), lambda pad: self.backend.sample_first(prompts + [self.dummy] * pad, False))
        for (s, r), smp in zip(rows, out or []):
            self.stats.fill_rollouts += 1
            self.stats.sampled_tokens += smp.sampled_tokens
            self.slots[s].append(Completion(smp.token_ids, smp.logprobs, self.row_offset + r, 0, 0, self.temperature))

    def finish(self) -> tuple[list[Completion], AssemblyStats]:
        completions = [c for group in self.slots for c in group]
        if len(completions) != len(self.prompt_ids):  # the phases fill every slot exactly; anything else is a bug
            raise RuntimeError(
                f"token-adaptive assembly built {len(completions)} completions for {len(self.prompt_ids)} rows"
            )
        if any(c.logprobs is None for c in completions):
            for c in completions:
                c.logprobs = None
        # a prefix whose continuations found no room (and no kept base beside it) is shared with nobody
        members: dict[int, int] = {}
        for c in completions:
            members[c.prefix_id] = members.get(c.prefix_id, 0) + 1
        for c in completions:
            if members[c.prefix_id] < 2:
                c.prefix_length = 0
        return completions, self.stats
