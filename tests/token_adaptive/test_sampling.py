"""Group assembly with a scripted backend: sizes, shared prefixes, temperature schedule, resample cap, fill-up."""

import pytest

from open_r1_ext.token_adaptive.sampling import (
    Sampled,
    assemble_groups,
    first_rollouts_per_group,
    resample_temperature,
    segments,
)
from open_r1_ext.token_adaptive.uncertainty import NO_FAILURE


EOS = 99


class FakeBackend:
    """First rollouts are 10 tokens `[100*p + 10*i + t]`; those whose prompt id is in `fail_at` fail there (and
    are cut after the failing token, as the transformers backend does). Continuations are `[-1] * budget`."""

    pad_equal = False

    def __init__(self, fail_at: dict[int, int] | None = None, world_max: int | None = None):
        self.fail_at = fail_at or {}
        self.calls: list[tuple] = []
        self.world_max = world_max
        self.counter = 0

    def sync_count(self, n):
        return max(n, self.world_max or 0)

    def sample_first(self, prompts, detect):
        self.calls.append(("first", len(prompts), detect))
        out = []
        for p in prompts:
            i, self.counter = self.counter, self.counter + 1
            toks = [100 * p[0] + 10 * (i % 10) + t for t in range(10)]
            f = self.fail_at.get(p[0], NO_FAILURE) if detect else NO_FAILURE
            kept = toks[: f + 1] if f != NO_FAILURE else toks
            out.append(Sampled(kept, None, f, len(kept)))
        return out

    def sample_continuations(self, prompts, budgets, temperature):
        self.calls.append(("cont", len(prompts), round(temperature, 6), list(budgets)))
        return [Sampled([-1] * b, None, NO_FAILURE, b) for b in budgets]


def _prompts(num_prompts, G):
    return [[p] for p in range(num_prompts) for _ in range(G)]


def _kw(**over):
    kw = dict(temperature=1.0, max_completion_length=10, first_rollout_fraction=0.5, max_resamples_per_prefix=3)
    kw.update(adaptive_temperature_scale=1.2, keep_base=False)
    kw.update(over)
    return kw


def test_first_rollouts_per_group():
    assert first_rollouts_per_group(8, 0.5) == 4
    assert first_rollouts_per_group(8, 0.01) == 1
    assert first_rollouts_per_group(8, 1.0) == 8
    assert first_rollouts_per_group(3, 0.5) == 2


def test_no_failure_is_first_rollouts_plus_fill():
    be = FakeBackend()
    comps, stats = assemble_groups(_prompts(2, 8), 8, be, **_kw())
    assert len(comps) == 16
    assert stats.first_rollouts == 8 and stats.truncated == 0 and stats.resamples == 0 and stats.fill_rollouts == 8
    assert [c[0] for c in be.calls] == ["first", "first"]
    assert all(c.attempt == 0 and c.prefix_length == 0 and c.temperature == 1.0 for c in comps)
    assert len({c.prefix_id for c in comps}) == 16  # every plain rollout is its own prefix
    # each group holds completions of its own prompt, in its own rows
    assert all(comps[r].token_ids[0] // 100 == r // 8 for r in range(16))


def test_failing_prompt_is_filled_with_resamples_sharing_the_prefix():
    be = FakeBackend(fail_at={0: 4})  # every first rollout of prompt 0 fails at position 4
    comps, stats = assemble_groups(_prompts(2, 8), 8, be, **_kw())
    group0, group1 = comps[:8], comps[8:]
    assert len(group0) == 8 and len(group1) == 8
    assert stats.truncated == 4 and stats.failure_points == [4, 4, 4, 4]
    # 4 prefixes x 8 slots: two rounds of 4 resamples, at T*1.2 then T*1.44
    assert stats.resamples == 8
    assert sorted(c.attempt for c in group0) == [1, 1, 1, 1, 2, 2, 2, 2]
    assert {c.prefix_id for c in group0} == {0, 1, 2, 3}
    for c in group0:
        assert c.prefix_length == 4
        assert c.temperature == pytest.approx(resample_temperature(1.0, 1.2, c.attempt))
        same = [d for d in group0 if d.prefix_id == c.prefix_id]
        assert all(d.token_ids[:4] == c.token_ids[:4] for d in same)  # shared prefix
        assert c.token_ids[4:] == [-1] * 6  # continuation fills the budget max_completion_length - prefix
        assert len(c.token_ids) <= 10
    # the truncated originals (prefix + failing token) are nowhere in the batch
    assert not any(c.token_ids[4] == c.token_ids[3] + 1 for c in group0)
    # prompt 1 is untouched: 4 first rollouts + 4 plain fill-ups
    assert all(c.attempt == 0 for c in group1)
    conts = [c for c in be.calls if c[0] == "cont"]
    assert [c[2] for c in conts] == [1.2, 1.44]
    assert all(b == [6] * 4 for *_, b in conts)


def test_resample_cap_then_fill():
    be = FakeBackend(fail_at={0: 3})
    comps, stats = assemble_groups(
        _prompts(1, 8), 8, be, **_kw(first_rollout_fraction=0.125, max_resamples_per_prefix=3)
    )
    # one first rollout fails -> its prefix gets at most 3 resamples; the 5 other slots are plain rollouts
    assert stats.first_rollouts == 1 and stats.resamples == 3 and stats.fill_rollouts == 5
    assert sorted(c.attempt for c in comps) == [0, 0, 0, 0, 0, 1, 2, 3]
    per_prefix = [c for c in comps if c.prefix_id == 0]
    assert len(per_prefix) == 3
    assert [c[2] for c in be.calls if c[0] == "cont"] == [1.2, 1.44, 1.728]
    assert stats.sampled_tokens == 4 + 3 * 7 + 5 * 10


def test_uneven_failures_round_robin():
    be = FakeBackend(fail_at={0: 2})
    # 8 slots, first rollouts: 4; all fail -> round 1 gives 4, round 2 gives 4: each prefix twice
    comps, _ = assemble_groups(_prompts(1, 8), 8, be, **_kw())
    counts = {}
    for c in comps:
        counts[c.prefix_id] = counts.get(c.prefix_id, 0) + 1
    assert counts == {0: 2, 1: 2, 2: 2, 3: 2}
    # with 6 slots: 3 first rollouts -> 3 + 3
    comps, _ = assemble_groups(_prompts(1, 6), 6, FakeBackend(fail_at={0: 2}), **_kw())
    assert sorted(c.attempt for c in comps) == [1, 1, 1, 2, 2, 2]


def test_kept_base_trajectories_train_too_and_share_their_prefix():
    be = FakeBackend(fail_at={0: 4})
    comps, stats = assemble_groups(_prompts(1, 8), 8, be, **_kw(keep_base=True))
    assert len(comps) == 8
    firsts = [c for c in comps if c.attempt == 0]
    assert len(firsts) == 4 and stats.resamples == 4
    assert {c.prefix_id for c in comps} == {0, 1, 2, 3}
    # each base trajectory shares its first 4 tokens with its continuation: both carry prefix_length 4
    assert all(c.prefix_length == 4 for c in comps)
    assert stats.branch_fractions == [0.8] * 4  # branch point 4 of the 5 tokens the fake backend returned


def test_a_branch_without_siblings_shares_nothing():
    """A kept base whose continuations found no room is a leaf of its own: prefix_length 0 (credited as GRPO)."""
    be = FakeBackend(fail_at={0: 4})
    comps, stats = assemble_groups(_prompts(1, 4), 4, be, **_kw(keep_base=True, first_rollout_fraction=1.0))
    assert stats.resamples == 0 and [c.prefix_length for c in comps] == [0, 0, 0, 0]


def test_prefix_ids_are_global_rows_and_groups_may_straddle_processes():
    assert segments(8, 8, row_offset=0) == [(0, 8)]
    assert segments(6, 4, row_offset=6) == [(0, 2), (2, 6)]  # rows 6-7 end group 1, rows 8-11 are group 2
    be = FakeBackend()
    comps, _ = assemble_groups([[1]] * 2 + [[2]] * 4, 4, be, **_kw(row_offset=6))
    assert sorted(c.prefix_id for c in comps) == list(range(6, 12))


def test_collective_calls_are_padded():
    """A process with nothing to resample still calls the backend when another process does."""
    be = FakeBackend(world_max=3)  # another process has 3 rows in every round
    comps, stats = assemble_groups(_prompts(1, 2), 2, be, **_kw(max_resamples_per_prefix=1))
    assert len(comps) == 2
    kinds = [c[0] for c in be.calls]
    assert kinds == ["first", "cont", "first"]  # the resample round ran with one padding row
    assert stats.padding_rows == 1 and stats.resamples == 0
    be = FakeBackend(world_max=3)
    be.pad_equal = True
    _, stats = assemble_groups(_prompts(1, 2), 2, be, **_kw(max_resamples_per_prefix=1), pad_equal=True)
    assert [c[1] for c in be.calls] == [3, 3, 3]
