"""Warm-up schedule, carousel buffer, shaped rewards and config validation (no training)."""

import pytest
import torch

from open_r1_ext.core.rewards import REWARD_FUNCS, get_reward_funcs
from open_r1_ext.token_scavenger import CarouselBuffer, TokenScavengerConfig, grpo_weight_schedule
from open_r1_ext.token_scavenger.carousel import pad_replay_batch


def test_warmup_schedule():
    w = [grpo_weight_schedule(s, warmup_steps=100, ramp_steps=4, target=0.25) for s in range(98, 106)]
    assert w == pytest.approx([0, 0, 0.0625, 0.125, 0.1875, 0.25, 0.25, 0.25])
    assert grpo_weight_schedule(0, 0, 0, 0.25) == 0.25
    assert grpo_weight_schedule(2, 3, 0, 0.25) == 0.0 and grpo_weight_schedule(3, 3, 0, 0.25) == 0.25


def test_carousel_fifo_dedup_and_state():
    buf = CarouselBuffer(capacity=2, seed=1)
    p = torch.tensor([1, 2])
    assert buf.add(p, torch.tensor([3, 4]), torch.tensor([-0.1, -0.2]), 1.0)
    assert not buf.add(p, torch.tensor([3, 4]), torch.tensor([-9.0, -9.0]), 1.0)  # duplicate keeps the first
    assert buf.add(p, torch.tensor([5]), torch.tensor([-0.3]), 1.0)
    assert buf.add(p, torch.tensor([6]), torch.tensor([-0.4]), 1.0)  # evicts [3, 4]
    assert len(buf) == 2 and [e["completion_ids"].tolist() for e in buf.entries.values()] == [[5], [6]]
    other = CarouselBuffer(capacity=2, seed=99)
    other.load_state_dict(buf.state_dict())
    assert [e["logps"].item() for e in other.entries.values()] == pytest.approx([-0.3, -0.4])
    assert other.sample(1)[0]["completion_ids"].tolist() == buf.sample(1)[0]["completion_ids"].tolist()
    batch = pad_replay_batch(
        list(buf.entries.values())
        + [
            {
                "prompt_ids": torch.tensor([7]),
                "completion_ids": torch.tensor([8, 9]),
                "logps": torch.tensor([-1.0, -2.0]),
            }
        ],
        0,
        "cpu",
    )
    assert batch["input_ids"].tolist() == [[1, 2, 5, 0], [1, 2, 6, 0], [0, 7, 8, 9]]
    assert batch["completion_mask"].tolist() == [[1, 0], [1, 0], [1, 1]] and batch["logits_to_keep"] == 2


def test_shaped_rewards():
    assert {"whitespace_penalty", "diversity_bonus", "length_bonus"} <= set(REWARD_FUNCS)
    ws, div, length = get_reward_funcs(["whitespace_penalty", "diversity_bonus", "length_bonus"])
    assert ws(["ab  ", "a   ", "    ", ""]) == pytest.approx([0.0, -0.5, -1.0, 0.0])
    assert div(["x"] * 3, completion_ids=[[1, 1, 2, 3], [4], []]) == pytest.approx([0.75, 1.0, 0.0])
    assert length(["a b c", "x"], completion_ids=None) == pytest.approx([3 / 20, 1 / 20])
    assert length(["x"], completion_ids=[list(range(40))]) == [1.0]


def test_config_defaults_and_validation(tmp_path):
    cfg = TokenScavengerConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    assert (cfg.ce_loss_weight, cfg.grpo_loss_weight, cfg.rl_warmup_steps, cfg.beta) == (1.0, 0.25, 100, 0.0)
    assert (cfg.carousel_weight, cfg.advantage_clamp_max, cfg.micro_weight) == (0.1, 5.0, 1.0)
    assert (cfg.use_adaptive_entropy, cfg.entropy_target, cfg.use_token_adaptive) == (True, 1.5, False)
    bad = {
        "advantage_estimator": "ppo",
        "grouping_key": "length",
        "carousel_weight": -1.0,
        "carousel_size": 0,
        "rl_warmup_steps": -1,
        "advantage_clamp_max": 0.0,
        "entropy_target_vocab_fraction": 2.0,
        "scale_rewards": "batch",
    }
    for name, value in bad.items():
        with pytest.raises(ValueError, match=name) as err:
            TokenScavengerConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", **{name: value})
        assert repr(value) in str(err.value)
