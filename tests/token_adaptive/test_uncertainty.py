"""Per-token uncertainty and failure points on hand-made logits (no model)."""

import math

import pytest
import torch

from open_r1_ext.token_adaptive.uncertainty import (
    NO_FAILURE,
    UncertaintyMonitor,
    find_failure_points,
    token_uncertainty,
    topk_uncertainty,
)


def test_token_uncertainty_uniform_and_peaked():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [10.0, 0.0, 0.0, 0.0], [0.0, -math.inf, -math.inf, -math.inf]])
    mp, h = token_uncertainty(logits)
    assert mp[0].item() == pytest.approx(0.25)
    assert h[0].item() == pytest.approx(math.log(4))
    assert mp[1].item() > 0.99 and h[1].item() < 0.01
    assert mp[2].item() == pytest.approx(1.0) and h[2].item() == pytest.approx(0.0)  # -inf entries are fine


def test_token_uncertainty_uses_temperature():
    logits = torch.tensor([[2.0, 0.0]])
    mp1, h1 = token_uncertainty(logits, 1.0)
    mp2, h2 = token_uncertainty(logits, 2.0)
    assert mp1.item() == pytest.approx(1 / (1 + math.exp(-2)))
    assert mp2.item() == pytest.approx(1 / (1 + math.exp(-1)))
    assert h2.item() > h1.item()


def _stats(max_prob_rows, entropy_rows):
    return torch.tensor(max_prob_rows), torch.tensor(entropy_rows)


def test_failure_on_max_prob_only():
    mp, h = _stats([[0.9, 0.9, 0.5, 0.9]], [[0.1, 0.1, 0.1, 0.1]])
    fp = find_failure_points(
        mp, h, torch.ones(1, 4), uncertainty_threshold=0.7, entropy_threshold=2.0, min_prefix_length=0
    )
    assert fp.tolist() == [2]


def test_failure_on_entropy_only():
    mp, h = _stats([[0.9, 0.9, 0.9, 0.9]], [[0.1, 2.5, 0.1, 3.0]])
    fp = find_failure_points(
        mp, h, torch.ones(1, 4), uncertainty_threshold=0.7, entropy_threshold=2.0, min_prefix_length=0
    )
    assert fp.tolist() == [1]


def test_min_prefix_length_skips_early_failures():
    mp, h = _stats([[0.1, 0.1, 0.9, 0.9, 0.2]], [[3.0, 3.0, 0.1, 0.1, 0.1]])
    ones = torch.ones(1, 5)
    assert find_failure_points(mp, h, ones, min_prefix_length=0).tolist() == [0]
    assert find_failure_points(mp, h, ones, min_prefix_length=2).tolist() == [4]
    assert find_failure_points(mp, h, ones, min_prefix_length=5).tolist() == [NO_FAILURE]


def test_no_failure_and_mask():
    mp, h = _stats([[0.9, 0.95, 0.99], [0.9, 0.9, 0.1]], [[0.1, 0.2, 0.3], [0.1, 0.1, 3.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])  # row 1's uncertain position is padding (after its EOS)
    fp = find_failure_points(mp, h, mask, min_prefix_length=0)
    assert fp.tolist() == [NO_FAILURE, NO_FAILURE]


def test_seed_defaults_and_batch():
    mp = torch.full((3, 20), 0.95)
    h = torch.full((3, 20), 0.5)
    mp[0, 10] = 0.3  # before min_prefix_length 15: ignored
    mp[0, 16] = 0.69
    h[1, 15] = 2.01
    fp = find_failure_points(mp, h, torch.ones(3, 20))
    assert fp.tolist() == [16, 15, NO_FAILURE]


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="share one"):
        find_failure_points(torch.ones(2, 3), torch.ones(2, 4), torch.ones(2, 3))


def test_topk_uncertainty_exact_when_topk_covers_all():
    probs = [0.5, 0.3, 0.2]
    lps = [[[math.log(p) for p in probs]]]
    mp, h, mask = topk_uncertainty(lps, vocab_size=3)
    assert mp.item() == pytest.approx(0.5)
    assert h.item() == pytest.approx(-sum(p * math.log(p) for p in probs))
    assert mask.tolist() == [[1]]


def test_topk_uncertainty_spreads_missing_mass_and_pads_rows():
    lps = [[[math.log(0.6), math.log(0.2)]], [[math.log(0.9)], [None]]]
    mp, h, mask = topk_uncertainty(lps, vocab_size=102)
    rest = 0.2
    expected = -(0.6 * math.log(0.6) + 0.2 * math.log(0.2)) - rest * math.log(rest / 100)
    assert h[0, 0].item() == pytest.approx(expected, rel=1e-5)
    assert mask.tolist() == [[1, 0], [1, 1]]
    assert mp[1, 1].item() == 1.0 and h[1, 1].item() == 0.0  # NaN from vLLM: no invented failure


def test_monitor_stops_rows_at_their_failure_point():
    """Drive the monitor and its stopper as `generate` does, step by step, on hand-made logits."""
    mon = UncertaintyMonitor(1.0, 0.7, 2.0, min_prefix_length=1, eos_token_ids=[9])
    stop = mon.stopper()
    certain, uncertain = torch.tensor([10.0, 0, 0, 0]), torch.zeros(4)
    steps = [
        (torch.stack([uncertain, certain]), [1, 9]),  # step 0: below min prefix; row 1 emits EOS
        (torch.stack([certain, uncertain]), [2, 0]),  # step 1: row 1 already ended: not a failure
        (torch.stack([uncertain, uncertain]), [3, 0]),  # step 2: row 0 fails
    ]
    ids = torch.zeros(2, 1, dtype=torch.long)
    done = []
    for scores, toks in steps:
        mon(ids, scores)
        ids = torch.cat([ids, torch.tensor(toks)[:, None]], dim=1)
        done.append(stop(ids, None).tolist())
    assert done == [[False, False], [False, False], [True, False]]
    assert mon.stop_step.tolist() == [2, NO_FAILURE]
    assert mon.max_prob.shape == (2, 3)


def test_branch_points_follow_entropy_peaks_inside_the_bounds():
    from open_r1_ext.token_adaptive.uncertainty import find_branch_points

    entropy = torch.tensor(
        [
            [0.1, 0.2, 0.1, 0.9, 0.3, 0.2, 0.1, 0.1, 0.1, 0.1],  # peak at 3
            [2.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.8, 0.1, 3.0],  # peaks at 0 and 9 lie outside [2, 8]: 7
            [0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # length 4: allowed 1..3, ties -> the earliest
            [0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # length 2: allowed 1..1
            [0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # length 1: no position leaves a prefix
        ]
    )
    lengths = torch.tensor([10, 10, 4, 2, 1])
    mask = torch.arange(10).expand(5, 10) < lengths.unsqueeze(1)
    assert find_branch_points(entropy, mask, 0.2, 0.8).tolist() == [3, 7, 1, 1, NO_FAILURE]
    # not the lower bound: a rollout whose entropy rises late branches late
    late = torch.linspace(0, 1, 10).unsqueeze(0)
    assert find_branch_points(late, torch.ones(1, 10), 0.2, 0.8).tolist() == [8]


def test_sampled_log_ratio_is_log_pi_minus_log_mu_of_the_sampled_token():
    from open_r1_ext.token_adaptive.uncertainty import SampledLogRatio

    torch.manual_seed(0)
    steps = [torch.randn(3, 7) for _ in range(4)]
    tokens = torch.randint(0, 7, (3, 4))
    rec = SampledLogRatio(policy_temperature=1.0, sample_temperature=1.5)
    prompt = torch.zeros(3, 2, dtype=torch.long)
    for t, scores in enumerate(steps):
        ids = torch.cat([prompt, tokens[:, :t]], dim=1)
        assert torch.equal(rec(ids, scores.clone()), scores)  # scores pass through unchanged
    got = rec.finish(tokens)
    for t, scores in enumerate(steps):
        lp_pi = torch.log_softmax(scores, -1).gather(1, tokens[:, t : t + 1]).squeeze(1)
        lp_mu = torch.log_softmax(scores / 1.5, -1).gather(1, tokens[:, t : t + 1]).squeeze(1)
        assert torch.allclose(got[:, t], lp_pi - lp_mu, atol=1e-6)
