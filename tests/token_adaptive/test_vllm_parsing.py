"""The vLLM path on hand-made outputs shaped like TRL 1.16's `VLLMGeneration.generate` (vLLM is not installed)."""

import math
from types import SimpleNamespace

import pytest

from open_r1_ext.token_adaptive.backends import (
    VLLMBackend,
    overridden,
    parse_continuations,
    parse_first_rollouts,
    sampled_token_logprobs,
    vllm_request,
)
from open_r1_ext.token_adaptive.sampling import assemble_groups
from open_r1_ext.token_adaptive.uncertainty import NO_FAILURE


L = math.log


def test_vllm_request_and_override_restore():
    vg = SimpleNamespace(temperature=0.7, max_completion_length=64, logprobs=0)
    req = vllm_request(0.84, 40, 20)
    assert req == {"temperature": 0.84, "max_completion_length": 40, "logprobs": 20}
    with overridden(vg, req):
        assert (vg.temperature, vg.max_completion_length, vg.logprobs) == (0.84, 40, 20)
    assert (vg.temperature, vg.max_completion_length, vg.logprobs) == (0.7, 64, 0)
    with pytest.raises(RuntimeError), overridden(vg, req):
        raise RuntimeError("generation failed")
    assert vg.temperature == 0.7  # restored on error too


def test_sampled_token_logprobs_finds_the_sampled_token_by_id():
    completion_ids = [[5, 7]]
    # position 0: sampled token 5 is rank 2; position 1: sampled 7 is outside the top-2 (appended last)
    logprobs = [[[L(0.6), L(0.3)], [L(0.5), L(0.4), L(0.01)]]]
    token_ids = [[[3, 5], [1, 2, 7]]]
    out = sampled_token_logprobs(completion_ids, logprobs, token_ids)
    assert out[0] == pytest.approx([L(0.3), L(0.01)])
    # logprobs=0: one entry per position, the sampled token's
    assert sampled_token_logprobs([[5]], [[[L(0.3)]]], None) == [[pytest.approx(L(0.3))]]
    assert sampled_token_logprobs([[5]], None, None) is None


def test_parse_first_rollouts_detects_failures_from_topk():
    confident = [L(0.95), L(0.04)]
    unsure = [L(0.4), L(0.35)]
    completion_ids = [[1, 1, 1, 1], [1, 1, 1]]
    logprobs = [[confident, confident, unsure, confident], [confident, confident, confident]]
    token_ids = [[[1, 2]] * 4, [[1, 2]] * 3]
    out = parse_first_rollouts(
        completion_ids,
        logprobs,
        token_ids,
        detect=True,
        uncertainty_threshold=0.7,
        entropy_threshold=2.0,
        min_prefix_length=1,
        vocab_size=50,
    )
    assert [s.failure_point for s in out] == [2, NO_FAILURE]
    assert [s.sampled_tokens for s in out] == [4, 3]  # vLLM rows run to their end
    assert out[0].logprobs == pytest.approx([L(0.95), L(0.95), L(0.4), L(0.95)])
    off = parse_first_rollouts(
        completion_ids,
        logprobs,
        token_ids,
        detect=False,
        uncertainty_threshold=0.7,
        entropy_threshold=2.0,
        min_prefix_length=1,
        vocab_size=50,
    )
    assert [s.failure_point for s in off] == [NO_FAILURE, NO_FAILURE]


def test_parse_continuations_cuts_each_row_to_its_budget():
    out = parse_continuations([[4, 5, 6], [4, 5, 6]], [[[-0.1], [-0.2], [-0.3]]] * 2, None, [3, 1])
    assert [s.token_ids for s in out] == [[4, 5, 6], [4]]
    assert out[1].logprobs == [-0.1]
    assert [s.sampled_tokens for s in out] == [3, 3]  # the cut tokens were sampled all the same


class FakeVLLMGeneration:
    """Records the settings each `generate` call sees; answers like TRL's (prompt, completion, logprobs, ids)."""

    def __init__(self, mode="colocate"):
        self.mode, self.tensor_parallel_size = mode, 1
        self.temperature, self.max_completion_length, self.logprobs = 1.0, 8, 0
        self.requests = []

    def generate(self, prompts, images, num_generations, profiler=None):
        self.requests.append(
            {
                "rows": [list(p) for p in prompts],
                "temperature": self.temperature,
                "max_tokens": self.max_completion_length,
                "logprobs": self.logprobs,
                "n": num_generations,
            }
        )
        comps, lps, ids = [], [], []
        for _ in prompts:
            n = self.max_completion_length
            comps.append([7] * n)
            if self.logprobs:  # first rollouts: uncertain from position 2 on
                lps.append([[L(0.9), L(0.05)] if t < 2 else [L(0.5), L(0.4)] for t in range(n)])
                ids.append([[7, 8]] * n)
            else:
                lps.append([[L(0.5)]] * n)
                ids.append([[7]] * n)
        return list(prompts), comps, lps, ids


def _trainer(vg):
    args = SimpleNamespace(
        vllm_logprobs_top_k=5, uncertainty_threshold=0.7, entropy_threshold=2.0, min_prefix_length=2
    )
    args.branch_rule, args.branch_min_fraction, args.branch_max_fraction = "absolute", 0.2, 0.8
    accel = SimpleNamespace(num_processes=1, process_index=0)
    return SimpleNamespace(
        vllm_generation=vg,
        args=args,
        accelerator=accel,
        temperature=1.0,
        max_completion_length=8,
        _tokenizer=[0] * 50,
    )


def test_vllm_backend_end_to_end_with_assembly(monkeypatch):
    monkeypatch.setattr("open_r1_ext.token_adaptive.backends.profiling_context", lambda trainer, name: None)
    vg = FakeVLLMGeneration()
    backend = VLLMBackend(_trainer(vg))
    assert backend.pad_equal is False and VLLMBackend(_trainer(FakeVLLMGeneration("server"))).pad_equal is True
    comps, stats = assemble_groups(
        [[1, 2]] * 4, 4, backend, temperature=1.0, max_completion_length=8, max_resamples_per_prefix=1
    )
    first, cont, fill = vg.requests
    assert first == {"rows": [[1, 2]] * 2, "temperature": 1.0, "max_tokens": 8, "logprobs": 5, "n": 1}
    # continuations: prompt + 2-token prefix, hotter, only the sampled token's logprob, budget 8 - 2
    assert cont["rows"] == [[1, 2, 7, 7]] * 2
    assert cont["temperature"] == pytest.approx(1.2) and cont["logprobs"] == 0 and cont["max_tokens"] == 6
    assert fill["logprobs"] == 0 and fill["temperature"] == 1.0
    assert (vg.temperature, vg.max_completion_length, vg.logprobs) == (1.0, 8, 0)  # restored
    assert stats.truncated == 2 and stats.failure_points == [2, 2]
    resampled = [c for c in comps if c.attempt == 1]
    assert len(resampled) == 2 and all(len(c.token_ids) == 8 for c in resampled)
    # the importance-sampling logprobs follow the tokens: prefix from the first rollout, the rest from the resample
    assert resampled[0].logprobs == pytest.approx([L(0.9), L(0.9)] + [L(0.5)] * 6)
    assert stats.sampled_tokens == 2 * 8 + 2 * 6 + 2 * 8
