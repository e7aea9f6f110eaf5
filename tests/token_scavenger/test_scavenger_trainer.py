"""TokenScavengerGRPOTrainer end to end on a tiny Llama with a character tokenizer (offline, CPU, a few steps)."""

import math
import os

import pytest
import torch
from datasets import Dataset

from open_r1_ext.core.advantages import get_estimator
from open_r1_ext.token_scavenger import TokenScavengerConfig, TokenScavengerGRPOTrainer
from open_r1_ext.token_scavenger.grouping import LatentBatch, answer_key
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
    latent = None
    if key == "prefix":
        latent = torch.unique(
            out["completion_ids"][:, :2] * out["completion_mask"][:, :2] - (1 - out["completion_mask"][:, :2]),
            dim=0,
            return_inverse=True,
        )[1]
    elif key == "answer":
        latent = answer_key(LatentBatch(group_ids=torch.arange(8) // 4, completions=texts))
    if latent is not None:
        expected = get_estimator("two_level")(rewards, torch.arange(8) // 4, latent, clamp_max=5.0).advantages
        assert torch.allclose(out["advantages"], expected, atol=1e-5)
    assert out["advantages"].abs().sum() > 0
    logged = trainer.state.log_history[0]
    for name in (
        "micro_adv_std",
        "macro_adv_std",
        "latent_groups_per_prompt",
        "singleton_frac",
        "latent_reward_constant_frac",
        "carousel_loss",
        "carousel_size",
        "ce_loss",
        "grpo_weight",
    ):
        assert f"scavenger/{name}" in logged, name
    if latent is not None:  # the logged count is the batch's: distinct (prompt, latent label) pairs over 2 prompts
        pairs = {(i // 4, int(label)) for i, label in enumerate(latent)}
        assert logged["scavenger/latent_groups_per_prompt"] == pytest.approx(len(pairs) / 2)
    else:  # `hidden`: k-means labels of pooled hidden states, not recomputed here; at most one group per rollout
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
    args = config(
        tmp_path,
        max_steps=1,
        learning_rate=0.0,
        ce_loss_weight=0.0,
        carousel_reward_threshold=0.5,
        carousel_loss="mse",
    )
    trainer = make_trainer(model_state, tok, dataset, args)
    trainer.train()
    assert len(trainer.carousel) > 0
    trainer.model.eval()
    with torch.no_grad():
        assert trainer._carousel_term(trainer.model).item() == pytest.approx(0.0, abs=1e-8)
        for p in trainer.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        assert trainer._carousel_term(trainer.model).item() > 1e-4


def test_resume_restores_the_carousel(tmp_path, tok, model_state, dataset):
    args = config(
        tmp_path, max_steps=2, save_strategy="steps", save_steps=2, carousel_reward_threshold=0.5, carousel_loss="mse"
    )
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
        model_state,
        tok,
        dataset,
        config(tmp_path, max_steps=3, carousel_reward_threshold=0.5, carousel_loss="mse"),
        cls=FirstLoss,
    )
    assert len(resumed.carousel) == 0
    resumed.train(resume_from_checkpoint=ckpt)
    assert resumed.state.global_step == 3
    restored = resumed.at_first_loss
    assert [k for k, _ in restored] == [k for k, _ in saved]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(restored, saved))
    assert resumed.state.log_history[-2]["scavenger/carousel_loss"] > 0  # replayed the restored entries


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


def test_answer_key_with_an_answer_only_reward_is_detected_as_grpo(tmp_path, tok, model_state, dataset, caplog):
    """Rollouts with one answer and a reward that depends on the answer only form reward-constant latent groups:
    two-level is then exactly GRPO's estimate, and the trainer says so once (and logs the share of such groups)."""
    trainer = make_trainer(model_state, tok, dataset, config(tmp_path, grouping_key="answer"))
    groups = torch.arange(8) // 4
    answers = torch.tensor([0, 0, 1, 1, 0, 1, 1, 1])  # latent groups by answer
    exact = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0])  # a function of the answer
    est = get_estimator("two_level")(exact, groups, answers, clamp_max=5.0)
    grpo = get_estimator("grpo")(exact, groups, None, clamp_max=5.0)
    assert (est.advantages - grpo.advantages).abs().max() < 1e-5  # the README's old "two_level(answer)" row
    with caplog.at_level("WARNING"):
        trainer._log_advantages("train", est, groups, answers)
        trainer._log_advantages("train", est, groups, answers)
    assert caplog.text.count("equals GRPO's advantages") == 1
    assert trainer._metrics["train"]["scavenger/latent_reward_constant_frac"] == [1.0, 1.0]
    # a graded reward that differs inside an answer group carries micro signal: no warning, share below 1
    graded = torch.tensor([1.0, 0.75, 0.5, 0.0, 0.25, 1.0, 0.5, 1.0])
    est = get_estimator("two_level")(graded, groups, answers, clamp_max=5.0)
    caplog.clear()
    trainer._warned_constant_groups = False
    with caplog.at_level("WARNING"):
        trainer._log_advantages("train", est, groups, answers)
    assert "equals GRPO" not in caplog.text
    assert trainer._metrics["train"]["scavenger/latent_reward_constant_frac"][-1] < 1.0
    assert (est.advantages - get_estimator("grpo")(graded, groups, None).advantages).abs().max() > 0.1


def _replay_trainer(tmp_path, model_state, tok, dataset, kind):
    args = config(tmp_path, max_steps=1, carousel_loss=kind, carousel_batch_size=4)
    trainer = make_trainer(model_state, tok, dataset, args)
    model = trainer.model
    prompt = torch.tensor(tok("3 4=", add_special_tokens=False)["input_ids"])
    completion = torch.tensor(tok("3,7>7", add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        logits = model(input_ids=torch.cat([prompt, completion]).unsqueeze(0)).logits[0, len(prompt) - 1 : -1]
        now = torch.log_softmax(logits.float() / trainer.temperature, -1).gather(1, completion[:, None]).squeeze(1)
    return trainer, prompt, completion, now


@pytest.mark.parametrize("kind", ["one_sided", "mse"])
def test_one_sided_carousel_never_pushes_down_a_success_the_policy_prefers(tmp_path, tok, model_state, dataset, kind):
    trainer, prompt, completion, now = _replay_trainer(tmp_path, model_state, tok, dataset, kind)
    # stored log-probs 0.5 below today's: the policy already prefers this success more than when it was stored
    trainer.carousel.add(prompt, completion, now - 0.5, reward=1.0)
    trainer.model.zero_grad()
    term = trainer._carousel_term(trainer.model)
    term.backward()
    grad = sum(p.grad.abs().sum().item() for p in trainer.model.parameters() if p.grad is not None)
    if kind == "one_sided":
        assert term.item() == 0.0 and grad == 0.0
    else:  # the seed's two-sided MSE pulls the success's probability back down towards the stored one
        assert term.item() == pytest.approx(0.25, rel=1e-3) and grad > 0
    # where today's log-prob fell below the stored one, the one-sided pull acts and raises it
    trainer.carousel.entries.clear()
    trainer.carousel.add(prompt, completion, now + 0.5, reward=1.0)
    trainer.model.zero_grad()
    term = trainer._carousel_term(trainer.model)
    assert term.item() == pytest.approx(0.25, rel=1e-3)
    term.backward()
    assert sum(p.grad.abs().sum().item() for p in trainer.model.parameters() if p.grad is not None) > 0
    assert trainer._metrics["train"]["scavenger/carousel_below_frac"][-1] == 1.0


def test_pg_carousel_weights_by_truncated_ratio_and_reward_above_the_batch(tmp_path, tok, model_state, dataset):
    trainer, prompt, completion, now = _replay_trainer(tmp_path, model_state, tok, dataset, "pg")
    trainer.carousel.add(prompt, completion, now - 2.0, reward=1.0)  # ratio e^2 > cap 2: truncated
    inputs = {"scavenger_reward": torch.tensor([0.0, 0.5])}  # batch mean 0.25: advantage 0.75
    term = trainer._carousel_term(trainer.model, inputs)
    assert term.item() == pytest.approx(-(2.0 * 0.75 * now).mean().item(), rel=1e-4)


@pytest.mark.parametrize("accumulation", [1, 2])
def test_entropy_bonus_does_not_follow_the_grpo_warmup_weight(tmp_path, tok, model_state, dataset, accumulation):
    """During the RL warm-up (GRPO weight 0) TRL's entropy bonus, which lives inside the GRPO loss, would be 0;
    the correction keeps it at its coefficient; `entropy_follows_grpo_weight` restores the seed's behaviour."""
    losses = {}
    for follows in (False, True):
        args = config(
            tmp_path / str(follows),
            max_steps=1,
            rl_warmup_steps=5,
            ce_loss_weight=0.0,
            carousel_weight=0.0,
            entropy_coef=0.1,
            entropy_follows_grpo_weight=follows,
            gradient_accumulation_steps=accumulation,
        )
        trainer = make_trainer(model_state, tok, dataset, args)
        trainer.train()
        losses[follows] = trainer.state.log_history[0]["loss"]
        entropy = trainer.state.log_history[0]["entropy"]
    assert losses[True] == 0.0
    assert losses[False] == pytest.approx(-0.1 * entropy, rel=0.05)


def test_resume_under_another_world_size_is_refused(tmp_path, tok, model_state, dataset):
    from open_r1_ext.core.checkpoint import save_extra_state

    trainer = make_trainer(model_state, tok, dataset, config(tmp_path, max_steps=1))
    trainer.state.global_step = 1
    save_extra_state(trainer, None, "token_scavenger", {"carousel": trainer.carousel.state_dict()}, per_process=True)
    path = tmp_path / "checkpoint-1" / "open_r1_ext_token_scavenger_rank0.pt"
    payload = torch.load(path, weights_only=True)
    payload["world_size"] = 2  # as if two processes had written their buffers
    torch.save(payload, path)
    with pytest.raises(ValueError, match="written by 2 processes; resuming with 1"):
        trainer._load_optimizer_and_scheduler(str(tmp_path / "checkpoint-1"))


def test_tree_estimator_shares_the_token_adaptive_tree_credit(tmp_path, tok, model_state, dataset):
    """`advantage_estimator: tree` with token-adaptive sampling: latent groups are the prefix nodes, credited per
    token (the token-adaptive trainer's `core.advantages.tree_token_advantages`)."""
    from open_r1_ext.core.advantages import expand_token_advantages, tree_token_advantages

    with pytest.raises(ValueError, match="set use_token_adaptive"):
        config(tmp_path, advantage_estimator="tree")
    args = config(
        tmp_path, max_steps=1, advantage_estimator="tree", use_token_adaptive=True, first_rollout_fraction=0.5
    )
    trainer = make_trainer(model_state, tok, dataset, args, cls=Recording)
    trainer.train()
    out = trainer.recorded[0]
    mask = out["completion_mask"].bool()
    texts = tok.batch_decode([ids[m] for ids, m in zip(out["completion_ids"], mask)], skip_special_tokens=True)
    rewards = torch.tensor(parity_reward(texts))
    parts = tree_token_advantages(rewards, out["prefix_ids"] // 4, out["prefix_ids"], out["prefix_lengths"])
    expected = expand_token_advantages(parts, out["completion_ids"].size(1)).clamp(-5.0, 5.0)
    assert out["advantages"].shape == expected.shape
    assert torch.allclose(out["advantages"], expected, atol=1e-4)


def test_loss_term_probe_measures_norm_ratio_and_cosine_against_grpo():
    from collections import defaultdict
    from types import SimpleNamespace

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    x = torch.randn(5, 3)
    grpo = model(x).pow(2).mean()
    other = model.bias.sum()  # touches only the bias
    host = SimpleNamespace(_metrics={"train": defaultdict(list)})
    terms = {"t/double": (2.0, grpo), "t/opposite": (1.0, -grpo), "t/other": (1.0, other)}
    TokenScavengerGRPOTrainer._probe_loss_terms(host, model, grpo, terms)
    m = host._metrics["train"]
    assert m["t/double_grad_ratio"] == [pytest.approx(2.0)] and m["t/double_grad_cos"] == [pytest.approx(1.0)]
    assert m["t/opposite_grad_cos"] == [pytest.approx(-1.0)]
    g_w, g_b = torch.autograd.grad(grpo, [model.weight, model.bias])
    expected = g_b.sum() / (g_b.norm() * 2**0.5) * g_b.norm() / torch.cat([g_w.reshape(-1), g_b]).norm()
    assert m["t/other_grad_cos"] == [pytest.approx(expected.item(), rel=1e-5)]
    assert model.weight.grad is None  # measured without touching .grad

    # a micro-batch whose groups are all reward-constant: GRPO's term has no gradient, so no ratio (NaN, which the
    # NaN-safe log leaves out) instead of a norm divided by ~0
    host = SimpleNamespace(_metrics={"train": defaultdict(list)})
    flat = (model(x) * 0.0).sum()
    TokenScavengerGRPOTrainer._probe_loss_terms(host, model, flat, {"t/other": (1.0, other)})
    assert math.isnan(host._metrics["train"]["t/other_grad_ratio"][0])
    assert math.isnan(host._metrics["train"]["t/other_grad_cos"][0])


def test_loss_terms_are_probed_every_n_steps(tmp_path, tok, model_state, dataset):
    args = config(tmp_path, max_steps=3, ce_loss_weight=1.0, carousel_weight=0.5, carousel_reward_threshold=0.5)
    args.loss_term_probe_every = 2
    trainer = make_trainer(model_state, tok, dataset, args)
    trainer.train()
    logged = [h for h in trainer.state.log_history if "scavenger/ce_loss_grad_ratio" in h]
    assert [h["step"] for h in logged] == [1, 3]  # optimizer steps 0 and 2 (logged as steps 1 and 3)
    for h in logged:  # None (NaN in the log) where the weighted GRPO term had no gradient (warm-up weight 0, or
        # every group reward-constant): there is nothing to compare with
        ratio, cos = h["scavenger/ce_loss_grad_ratio"], h["scavenger/ce_loss_grad_cos"]
        assert (ratio is None and cos is None) or (ratio > 0 and -1 <= cos <= 1)
    assert any("scavenger/carousel_loss_grad_ratio" in h for h in logged[1:])  # the carousel holds rollouts by then
