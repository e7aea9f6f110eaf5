"""TokenScavengerGRPOTrainer end to end on a tiny Llama with a character tokenizer (offline, CPU, a few steps)."""

import os

import pytest
import torch
from datasets import Dataset

from open_r1_ext.core.advantages import get_estimator
from open_r1_ext.token_scavenger import TokenScavengerConfig, TokenScavengerGRPOTrainer
from open_r1_ext.trainers import get_trainer_classes
from tiny_helpers import fresh_model, tiny_args


def parity_reward(completions, **kwargs):
    """Reward with variance inside every group: 1 for an odd-length completion."""
    return [float(len(c) % 2) for c in completions]


@pytest.fixture(scope="module")
def tok(char_tok):
    return char_tok


@pytest.fixture(scope="module")
def model_state(micro_model_state):
    return micro_model_state


make_model = fresh_model


@pytest.fixture(scope="module")
def dataset():
    rows = []
    for i in range(64):
        a, b = i % 10, (i * 7) % 10
        rows.append({"prompt": f"{a} {b}=", "completion": f"{a},{a + b}>{a + b}", "answer": str(a + b)})
    return Dataset.from_list(rows)


def config(tmp_path, **over):
    kw = dict(
        learning_rate=1e-2,
        seed=7,
        prefix_tokens=2,
        rl_warmup_steps=0,
        rl_ramp_steps=0,
        grpo_loss_weight=1.0,
        carousel_reward_threshold=1.0,
        use_adaptive_entropy=False,
    )
    kw.update(over)
    return tiny_args(TokenScavengerConfig, tmp_path, **kw)


def make_trainer(model_state, tok, dataset, args, cls=TokenScavengerGRPOTrainer):
    return cls(
        model=make_model(model_state),
        reward_funcs=parity_reward,
        args=args,
        train_dataset=dataset,
        processing_class=tok,
    )


def test_registry_entry():
    config_cls, trainer_cls = get_trainer_classes("token_scavenger")
    assert config_cls is TokenScavengerConfig and trainer_cls is TokenScavengerGRPOTrainer


class Recording(TokenScavengerGRPOTrainer):
    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        self.recorded = getattr(self, "recorded", []) + [out]
        return out


@pytest.mark.parametrize("key", ["answer", "prefix", "hidden"])
def test_two_level_advantages_and_metrics(tmp_path, tok, model_state, dataset, key):
    args = config(tmp_path, grouping_key=key, max_steps=1)
    trainer = make_trainer(model_state, tok, dataset, args, cls=Recording)
    trainer.train()
    out = trainer.recorded[0]
    texts = tok.batch_decode(
        [ids[m.bool()] for ids, m in zip(out["completion_ids"], out["completion_mask"])], skip_special_tokens=True
    )
    rewards = torch.tensor(parity_reward(texts))
    # recompute the two-level estimate from the batch itself (single process: gathered == local)
    if key == "prefix":
        latent = torch.unique(
            out["completion_ids"][:, :2] * out["completion_mask"][:, :2] - (1 - out["completion_mask"][:, :2]),
            dim=0,
            return_inverse=True,
        )[1]
        expected = get_estimator("two_level")(rewards, torch.arange(8) // 4, latent, clamp_max=5.0).advantages
        assert torch.allclose(out["advantages"], expected, atol=1e-5)
    assert out["advantages"].abs().sum() > 0
    logged = trainer.state.log_history[0]
    for name in (
        "micro_adv_std",
        "macro_adv_std",
        "latent_groups_per_prompt",
        "singleton_frac",
        "carousel_mse",
        "carousel_size",
        "ce_loss",
        "grpo_weight",
    ):
        assert f"scavenger/{name}" in logged, name
    assert 1 <= logged["scavenger/latent_groups_per_prompt"] <= 4
    assert logged["scavenger/grpo_weight"] == 1.0 and logged["scavenger/ce_loss"] > 0


def test_warmup_weights_logged_per_step(tmp_path, tok, model_state, dataset):
    args = config(tmp_path, max_steps=4, rl_warmup_steps=2, rl_ramp_steps=2, grpo_loss_weight=0.5, carousel_weight=0.0)
    trainer = make_trainer(model_state, tok, dataset, args)
    before = {k: v.clone() for k, v in trainer.model.named_parameters()}
    trainer.train()
    weights = [h["scavenger/grpo_weight"] for h in trainer.state.log_history if "scavenger/grpo_weight" in h]
    assert weights == pytest.approx([0.0, 0.0, 0.25, 0.5])
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.named_parameters())  # CE alone trains


def test_carousel_mse_zero_unchanged_positive_after_update(tmp_path, tok, model_state, dataset):
    # learning_rate 0: the policy is unchanged after the step, so replaying what was admitted gives MSE 0
    args = config(tmp_path, max_steps=1, learning_rate=0.0, ce_loss_weight=0.0, carousel_reward_threshold=0.5)
    trainer = make_trainer(model_state, tok, dataset, args)
    trainer.train()
    assert len(trainer.carousel) > 0
    trainer.model.eval()
    with torch.no_grad():
        assert trainer._carousel_mse(trainer.model).item() == pytest.approx(0.0, abs=1e-8)
        for p in trainer.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        assert trainer._carousel_mse(trainer.model).item() > 1e-4


def test_resume_restores_the_carousel(tmp_path, tok, model_state, dataset):
    args = config(tmp_path, max_steps=2, save_strategy="steps", save_steps=2, carousel_reward_threshold=0.5)
    trainer = make_trainer(model_state, tok, dataset, args)
    trainer.train()
    ckpt = os.path.join(tmp_path, "checkpoint-2")
    assert os.path.exists(os.path.join(ckpt, "open_r1_ext_token_scavenger_rank0.pt"))
    saved = [(k, e["logps"]) for k, e in trainer.carousel.entries.items()]
    assert saved

    class FirstLoss(TokenScavengerGRPOTrainer):
        def _compute_loss(self, model, inputs):
            if not hasattr(self, "at_first_loss"):  # the buffer as the first replay after resuming sees it
                self.at_first_loss = [(k, e["logps"].clone()) for k, e in self.carousel.entries.items()]
            return super()._compute_loss(model, inputs)

    resumed = make_trainer(
        model_state, tok, dataset, config(tmp_path, max_steps=3, carousel_reward_threshold=0.5), cls=FirstLoss
    )
    assert len(resumed.carousel) == 0
    resumed.train(resume_from_checkpoint=ckpt)
    assert resumed.state.global_step == 3
    restored = resumed.at_first_loss
    assert [k for k, _ in restored] == [k for k, _ in saved]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(restored, saved))
    assert resumed.state.log_history[-2]["scavenger/carousel_mse"] > 0  # replayed the restored entries


def test_token_adaptive_and_two_level_together(tmp_path, tok, model_state, dataset):
    gen = {"suppress_tokens": [tok.eos_token_id]}  # no rollout ends before its failure point
    args = config(
        tmp_path,
        max_steps=2,
        use_token_adaptive=True,
        branch_rule="absolute",  # the seed's rule, thresholds that fire at every position: two rollouts a prefix
        entropy_threshold=0.0,
        min_prefix_length=2,
        keep_failed_rollouts=False,
        first_rollout_fraction=0.5,
        generation_kwargs=gen,
        grouping_key="prefix",
    )
    trainer = make_trainer(model_state, tok, dataset, args, cls=Recording)
    trainer.train()
    out = trainer.recorded[0]
    # groups were assembled from prefixes: latent groups follow the prefix ids, two rollouts per prefix
    assert "prefix_ids" in out
    texts = tok.batch_decode(
        [ids[m.bool()] for ids, m in zip(out["completion_ids"], out["completion_mask"])], skip_special_tokens=True
    )
    expected = get_estimator("two_level")(
        torch.tensor(parity_reward(texts)), torch.arange(8) // 4, out["prefix_ids"], clamp_max=5.0
    ).advantages
    assert torch.allclose(out["advantages"], expected, atol=1e-5)
    logged = trainer.state.log_history[0]
    assert logged["adaptive/truncation_rate"] == 1.0 and logged["scavenger/latent_groups_per_prompt"] == 2.0
    assert trainer.state.global_step == 2
