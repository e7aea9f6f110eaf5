"""Advantage estimators on hand-made reward tensors (pure functions, no trainer)."""

import math

import pytest
import torch
from trl.trainer.utils import nanstd

from open_r1_ext.core.advantages import ESTIMATORS, get_estimator, segment_stats


def t(*xs):
    return torch.tensor(xs, dtype=torch.float32)


def ids(*xs):
    return torch.tensor(xs, dtype=torch.long)


def test_registry_lists_names_in_its_error():
    assert {"grpo", "two_level", "rloo", "dr_grpo"} <= set(ESTIMATORS)
    with pytest.raises(ValueError, match=r"known estimators: \['dr_grpo', 'grpo', 'rloo', 'two_level'"):
        get_estimator("ppo")


def test_segment_stats_bessel_and_singletons():
    mean, std, count = segment_stats(t(1, 3, 5, 7), ids(0, 0, 9, 4), torch.ones(4, dtype=torch.bool))
    assert mean.tolist() == [2, 2, 5, 7] and count.tolist() == [2, 2, 1, 1]
    assert std[:2].tolist() == pytest.approx([math.sqrt(2)] * 2) and std[2:].tolist() == [0, 0]


def test_grpo_matches_trl_formula():
    r = t(1, 0, 0, 1, 0.2, 0.4, 0.9, 0.1)
    g = torch.arange(8) // 4
    out = get_estimator("grpo")(r, g, g, scale=True)
    grouped = r.view(2, 4)
    expected = (grouped - grouped.mean(1, keepdim=True)) / (nanstd(grouped, dim=1, keepdim=True) + 1e-4)
    assert torch.allclose(out.advantages, expected.view(-1), atol=1e-6)
    assert out.advantages[:4].tolist() == pytest.approx([0.8659, -0.8659, -0.8659, 0.8659], abs=1e-4)
    assert torch.equal(out.micro, torch.zeros(8))
    unscaled = get_estimator("grpo")(r, g, g, scale=False)
    assert unscaled.advantages[:4].tolist() == pytest.approx([0.5, -0.5, -0.5, 0.5])


def test_rloo_and_dr_grpo():
    r, g = t(1, 0, 0, 1, 1, 1, 1, 0), torch.arange(8) // 4
    rloo = get_estimator("rloo")(r, g, g).advantages
    # leave-one-out: 1 - mean(0, 0, 1) = 2/3; 0 - mean(1, 0, 1) = -2/3; second group 1 - 2/3 = 1/3, 0 - 1 = -1
    assert rloo.tolist() == pytest.approx([2 / 3, -2 / 3, -2 / 3, 2 / 3, 1 / 3, 1 / 3, 1 / 3, -1])
    dr = get_estimator("dr_grpo")(r, g, g, scale=True).advantages  # mean-only even when scale is asked
    assert dr.tolist() == pytest.approx([0.5, -0.5, -0.5, 0.5, 0.25, 0.25, 0.25, -0.75])
    # one valid rollout in a group: no baseline, advantage 0 (not NaN)
    lone = get_estimator("rloo")(t(1, float("nan")), ids(0, 0), ids(0, 1)).advantages
    assert lone.tolist() == [0.0, 0.0]


def test_two_level_hand_computed():
    # one prompt group of 4: latent groups {1, 1} (zero variance) and {0, 0.5}
    r, g, lat = t(1, 1, 0, 0.5), ids(0, 0, 0, 0), ids(0, 0, 1, 1)
    out = get_estimator("two_level")(r, g, lat, omega=1.0, clamp_max=5.0)
    # latent means m = (1, 1, .25, .25); mean 0.625, Bessel std sqrt(0.1875) = 0.4330 -> macro = +-0.375 / 0.4331
    macro = 0.375 / (math.sqrt(0.1875) + 1e-4)
    # micro: {1, 1} has zero variance -> 0; {0, .5}: (-+0.25) / (sqrt(0.125) + 1e-4)
    micro = 0.25 / (math.sqrt(0.125) + 1e-4)
    assert out.macro.tolist() == pytest.approx([macro, macro, -macro, -macro], abs=1e-5)
    assert out.micro.tolist() == pytest.approx([0, 0, -micro, micro], abs=1e-5)
    assert out.advantages.tolist() == pytest.approx([0.8658, 0.8658, -1.5729, -0.1588], abs=1e-3)
    half = get_estimator("two_level")(r, g, lat, omega=0.5, clamp_max=None).advantages
    assert half.tolist() == pytest.approx([macro, macro, -macro - micro / 2, -macro + micro / 2], abs=1e-5)
    clamped = get_estimator("two_level")(r, g, lat, omega=1.0, clamp_max=1.0).advantages
    assert clamped.tolist() == pytest.approx([0.8658, 0.8658, -1.0, -0.1588], abs=1e-3)


def test_seed_degenerate_contiguous_slices_now_give_signal():
    """The seed's latent groups were contiguous slices of the batch; every layout of that kind now gives each
    rollout whose reward differs from its prompt mean a non-zero advantage."""
    r = t(1, 0, 0, 1, 0, 1, 1, 1)
    g = torch.arange(8) // 4
    grpo = get_estimator("grpo")(r, g, g).advantages
    two_level = get_estimator("two_level")
    for size in (1, 2, 4, 8):  # singletons, pairs, whole prompt groups, the whole batch
        out = two_level(r, g, torch.arange(8) // size, clamp_max=5.0)
        assert (out.advantages != 0).all(), size
        assert (out.macro.abs() + out.micro.abs() > 0).all(), size
    # singletons: exactly GRPO (macro carries it); one latent group per prompt: exactly GRPO (micro carries it)
    single = two_level(r, g, torch.arange(8), clamp_max=5.0)
    assert torch.allclose(single.advantages, grpo, atol=1e-5) and torch.equal(single.micro, torch.zeros(8))
    whole = two_level(r, g, torch.zeros(8, dtype=torch.long), clamp_max=5.0)
    assert torch.allclose(whole.advantages, grpo, atol=1e-5) and torch.equal(whole.macro, torch.zeros(8))


def test_zero_variance_latent_groups_keep_their_signal():
    # every latent group is uniform (e.g. grouping by answer with an answer-only reward): two-level == GRPO
    r = t(1, 1, 1, 0, 0, 0, 0, 0)
    lat = ids(0, 0, 0, 1, 1, 2, 2, 2)
    out = get_estimator("two_level")(r, torch.zeros(8, dtype=torch.long), lat, clamp_max=5.0)
    grpo = get_estimator("grpo")(r, torch.zeros(8, dtype=torch.long), lat).advantages
    assert torch.allclose(out.advantages, grpo, atol=1e-5) and (out.advantages != 0).all()


def test_nan_rewards_are_left_out_and_get_zero():
    r, g, lat = t(1, float("nan"), 0, 0), ids(0, 0, 0, 0), ids(0, 0, 1, 1)
    for name in ESTIMATORS:
        out = get_estimator(name)(r, g, lat, clamp_max=5.0)
        assert torch.isfinite(out.advantages).all() and out.advantages[1] == 0, name
    grpo = get_estimator("grpo")(r, g, lat).advantages
    assert grpo[0] == pytest.approx((1 - 1 / 3) / (math.sqrt(1 / 3) + 1e-4), abs=1e-4)


def test_tree_credit_counts_a_shared_prefix_once_and_is_grpo_without_branches():
    from open_r1_ext.core.advantages import expand_token_advantages, tree_token_advantages

    # group 0: a base trajectory and two continuations share 3 tokens (node 0) + one plain rollout (node 3)
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    groups = torch.zeros(4, dtype=torch.long)
    nodes = torch.tensor([0, 0, 0, 3])
    shared = torch.tensor([3, 3, 3, 0])
    parts = tree_token_advantages(rewards, groups, nodes, shared)
    adv = expand_token_advantages(parts, 6)
    grpo = get_estimator("grpo")(rewards, groups, None).advantages
    sigma = rewards.std() + 1e-4
    macro = (rewards[:3].mean() - rewards.mean()) / sigma
    # the prefix carries the node's advantage once in total over its 3 siblings (GRPO: 3 x macro)
    assert adv[:3, :3].sum(0).tolist() == pytest.approx([macro.item()] * 3, abs=1e-6)
    assert grpo[:3].sum().item() == pytest.approx(3 * macro.item(), abs=1e-5)
    # continuation tokens: the leaf against its node's value; the unbranched rollout: GRPO's advantage everywhere
    assert adv[0, 3:].tolist() == pytest.approx([((1.0 - 1 / 3) / sigma).item()] * 3, abs=1e-5)
    assert adv[3].tolist() == pytest.approx([grpo[3].item()] * 6, abs=1e-6)
    # macro + micro on a leaf's own row reproduces its GRPO advantage
    assert (parts.shared[0] * parts.siblings[0] + parts.own[0]).item() == pytest.approx(grpo[0].item(), abs=1e-5)
    # no shared prefixes at all: exactly GRPO's advantages on every token
    flat = expand_token_advantages(tree_token_advantages(rewards, groups, torch.arange(4), torch.zeros(4)), 5)
    assert torch.allclose(flat, grpo.unsqueeze(1).expand(4, 5), atol=1e-6)
    # an unscorable rollout gets 0 and leaves the statistics
    nan = tree_token_advantages(torch.tensor([1.0, float("nan"), 0.0, 1.0]), groups, nodes, shared)
    assert nan.shared[1] == 0 and nan.own[1] == 0 and nan.siblings[0] == 2
