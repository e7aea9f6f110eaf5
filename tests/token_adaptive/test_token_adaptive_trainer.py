"""TokenAdaptiveGRPOTrainer end to end on a tiny Llama with a character tokenizer (offline, CPU, a few steps)."""

import copy
import inspect
import math
import os

import pytest
import torch
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from open_r1_ext.core.advantages import get_estimator
from open_r1_ext.core.tiny import char_tokenizer
from open_r1_ext.token_adaptive import TokenAdaptiveConfig, TokenAdaptiveGRPOTrainer
from open_r1_ext.token_adaptive.backends import TransformersBackend
from open_r1_ext.trainers import get_trainer_classes
from tiny_helpers import TINY_TRAINING, fresh_model


SEEN: list[str] = []


STATE_FILE = "open_r1_ext_token_adaptive.pt"  # core.checkpoint: the counters, one file


def parity_reward(completions, **kwargs):
    """A reward with variance inside groups; records what it scored."""
    SEEN.extend(completions)
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
    return Dataset.from_list([{"prompt": f"{i:03d}+{i * 7 % 1000:03d}="} for i in range(64)])


def common(tmp_path, **over):
    return {"output_dir": str(tmp_path), **TINY_TRAINING, "learning_rate": 1e-2, "seed": 7, "beta": 0.0, **over}


def forced(tmp_path, **over):
    """The seed's absolute rule with thresholds that fire at every position: each first rollout is cut at
    `min_prefix_length` and only its prefix trains (EOS is suppressed so no rollout of the random model ends before
    it); continuations at 1.2x, sequence-level advantages (the shipped trainer's behaviour before tree credit)."""
    gen = {"suppress_tokens": [char_tokenizer().eos_token_id]}
    kw = dict(entropy_threshold=0.0, min_prefix_length=2, generation_kwargs=gen, branch_rule="absolute")
    kw.update(keep_failed_rollouts=False, adaptive_temperature_scale=1.2, first_rollout_fraction=0.5)
    kw.update(tree_advantages=False)
    return TokenAdaptiveConfig(**common(tmp_path, **{**kw, **over}))


def test_registry_and_config_validation(tmp_path):
    config_cls, trainer_cls = get_trainer_classes("token_adaptive")
    assert config_cls is TokenAdaptiveConfig and trainer_cls is TokenAdaptiveGRPOTrainer
    cfg = TokenAdaptiveConfig(**common(tmp_path, max_completion_length=32))
    assert (cfg.uncertainty_threshold, cfg.entropy_threshold, cfg.min_prefix_length) == (0.7, 2.0, 15)
    assert (cfg.max_resamples_per_prefix, cfg.use_token_adaptive) == (3, True)
    # on-policy continuations, relative branch points, tree credit, base trajectories kept when generated anyway
    assert (cfg.adaptive_temperature_scale, cfg.branch_rule, cfg.tree_advantages) == (1.0, "relative", True)
    assert cfg.keep_failed_rollouts is None and cfg.keeps_base(use_vllm=False) and cfg.keeps_base(use_vllm=True)
    absolute = TokenAdaptiveConfig(**common(tmp_path, max_completion_length=32, branch_rule="absolute"))
    assert not absolute.keeps_base(use_vllm=False) and absolute.keeps_base(use_vllm=True)
    bad = {
        "uncertainty_threshold": 1.5,
        "entropy_threshold": -1.0,
        "min_prefix_length": 0,
        "max_resamples_per_prefix": 0,
        "adaptive_temperature_scale": 0.0,
        "first_rollout_fraction": 0.0,
        "vllm_logprobs_top_k": 0,
        "branch_rule": "random",
        "branch_min_fraction": 0.9,
        "importance_ratio_cap": 0.5,
    }
    for name, value in bad.items():
        with pytest.raises(ValueError, match=name) as err:
            TokenAdaptiveConfig(**common(tmp_path, **{"min_prefix_length": 2, name: value}))
        assert repr(value) in str(err.value)
    with pytest.raises(ValueError, match="min_prefix_length"):
        TokenAdaptiveConfig(**common(tmp_path, min_prefix_length=8, branch_rule="absolute"))


def test_overridden_hooks_keep_their_signatures():
    expected = {
        "training_step": ["self", "model", "inputs", "num_items_in_batch"],
        "_save_checkpoint": ["self", "model", "trial"],
        "_load_optimizer_and_scheduler": ["self", "checkpoint"],
    }
    for name, params in expected.items():
        assert list(inspect.signature(getattr(GRPOTrainer, name)).parameters)[: len(params)] == params


class RecordingTrainer(TokenAdaptiveGRPOTrainer):
    """Records every batch `_compute_loss` receives and the model's log-probs of it at that moment."""

    def _compute_loss(self, model, inputs):
        with torch.no_grad():
            input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
            mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
            logps, _, _ = self._get_per_token_logps_and_entropies(
                model, input_ids, mask, inputs["completion_ids"].size(1), batch_size=8
            )
        self.loss_batches = getattr(self, "loss_batches", []) + [({k: v for k, v in inputs.items()}, logps)]
        return super()._compute_loss(model, inputs)


def test_loss_sees_the_resampled_completions_not_the_originals(tmp_path, tok, model_state, dataset, monkeypatch):
    firsts = []
    orig = TransformersBackend.sample_first

    def spy(self, prompts, detect):
        out = orig(self, prompts, detect)
        if detect:
            firsts.extend(out)
        return out

    monkeypatch.setattr(TransformersBackend, "sample_first", spy)
    SEEN.clear()
    # steps_per_generation=2 with one accumulation step makes TRL compute old log-probs, so they can be checked
    args = forced(tmp_path, max_steps=1, steps_per_generation=2)
    trainer = RecordingTrainer(
        model=make_model(model_state),
        reward_funcs=parity_reward,
        args=args,
        train_dataset=dataset,
        processing_class=tok,
    )
    trainer.train()
    completions, stats = trainer.last_assembly
    G, B = 4, 16  # one generation of 2 micro-batches of 8
    assert stats.first_rollouts == B // 2 and stats.truncated == B // 2 and set(stats.failure_points) == {2}
    assert stats.resamples == B and stats.fill_rollouts == 0
    assert all(c.attempt >= 1 and c.prefix_length == 2 for c in completions)
    assert {round(c.temperature, 6) for c in completions} == {1.2, 1.44}

    # the rewards were computed on exactly the assembled completions
    decoded = tok.batch_decode([c.token_ids for c in completions], skip_special_tokens=True)
    assert sorted(SEEN) == sorted(decoded)

    # the loss saw every assembled completion, with its prefix id, and no truncated original
    (batch, logps_now), *_ = trainer.loss_batches
    assert len(trainer.loss_batches) == 1  # max_steps=1: one micro-batch trained
    seen = {}
    for ids, m, pid, plen in zip(
        batch["completion_ids"], batch["completion_mask"], batch["prefix_ids"], batch["prefix_lengths"]
    ):
        seen[tuple(ids[m.bool()].tolist())] = (int(pid), int(plen))
    assembled = {tuple(c.token_ids): (c.prefix_id, c.prefix_length) for c in completions}
    assert len(seen) == 8 and all(assembled[k] == v for k, v in seen.items())
    originals = {tuple(s.token_ids) for s in firsts}
    assert len(originals) > 0 and not originals & set(seen) and not originals & set(assembled)
    # completions sharing a prefix id share their first 2 tokens, and come from the same group
    by_pid = {}
    for c in completions:
        by_pid.setdefault(c.prefix_id, []).append(c)
    assert all(len(v) == 2 and v[0].token_ids[:2] == v[1].token_ids[:2] for v in by_pid.values())
    assert all(c.prefix_id // G == r // G for r, c in enumerate(completions))

    # old log-probs were computed on these completions (same weights at the first micro-batch)
    mask = batch["completion_mask"].bool()
    assert torch.allclose(batch["old_per_token_logps"][mask], logps_now[mask], atol=1e-5)
    # the continuations were sampled at 1.2x: per-token advantages carry their importance weights
    assert batch["advantages"].shape == (8, 8)

    logged = trainer.state.log_history[0]
    for key in (
        "adaptive/truncation_rate",
        "adaptive/resample_rate",
        "adaptive/avg_failure_point",
        "adaptive/total_rollouts",
        "adaptive/generated_tokens",
        "adaptive/mean_temperature",
    ):
        assert key in logged, key
    assert logged["adaptive/truncation_rate"] == 1.0 and logged["adaptive/resample_rate"] == 1.0
    assert logged["adaptive/avg_failure_point"] == 2.0
    assert logged["adaptive/total_rollouts"] == B // 2 + B
    assert logged["adaptive/generated_tokens"] == stats.sampled_tokens
    # the first rollouts stopped at their failure point: 3 tokens each were sampled, not 8
    assert all(s.sampled_tokens == 3 for s in firsts)


def _losses(trainer):
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


def test_adaptation_off_is_plain_grpo(tmp_path, tok, model_state, dataset):
    kw = common(tmp_path, max_steps=2)
    base = GRPOTrainer(
        model=make_model(model_state),
        reward_funcs=parity_reward,
        args=GRPOConfig(**kw),
        train_dataset=dataset,
        processing_class=tok,
    )
    base.train()
    off = TokenAdaptiveGRPOTrainer(
        model=make_model(model_state),
        reward_funcs=parity_reward,
        args=TokenAdaptiveConfig(**kw, use_token_adaptive=False, min_prefix_length=2),
        train_dataset=dataset,
        processing_class=tok,
    )
    off.train()
    assert _losses(base) == _losses(off)
    assert [h.get("reward") for h in base.state.log_history] == [h.get("reward") for h in off.state.log_history]
    for (n, p), (_, q) in zip(base.model.named_parameters(), off.model.named_parameters()):
        assert torch.equal(p, q), n
    assert not any(k.startswith("adaptive/") for h in off.state.log_history for k in h)


def test_resume_keeps_the_counters(tmp_path, tok, model_state, dataset):
    kw = dict(max_steps=2, save_strategy="steps", save_steps=1)
    first = TokenAdaptiveGRPOTrainer(
        model=make_model(model_state),
        reward_funcs=parity_reward,
        args=forced(tmp_path, **kw),
        train_dataset=dataset,
        processing_class=tok,
    )
    first.train()
    ckpt = tmp_path / "checkpoint-2"
    saved = torch.load(ckpt / STATE_FILE, weights_only=True)["state"]
    assert saved == {**first.adaptive_counters, "branch_histogram": first.branch_histogram}
    per_step = 4 + 8  # 2 groups x (2 cut first rollouts + 4 resamples)
    assert saved["total_rollouts"] == 2 * per_step and saved["total_truncated"] == 4 * 2

    second = TokenAdaptiveGRPOTrainer(
        model=make_model(model_state),
        reward_funcs=parity_reward,
        args=forced(tmp_path, **{**kw, "max_steps": 3}),
        train_dataset=dataset,
        processing_class=tok,
    )
    second.train(resume_from_checkpoint=str(ckpt))
    assert second.state.global_step == 3
    assert second.adaptive_counters["total_rollouts"] == 3 * per_step
    assert second.adaptive_counters["total_resamples"] == saved["total_resamples"] + 8
    assert second.state.log_history[-2]["adaptive/total_rollouts"] == 3 * per_step
    assert os.path.exists(tmp_path / "checkpoint-3" / STATE_FILE)


def test_evaluation_is_plain_generation(tmp_path, tok, model_state, dataset):
    trainer = TokenAdaptiveGRPOTrainer(
        model=make_model(model_state),
        reward_funcs=parity_reward,
        args=forced(tmp_path, max_steps=1, eval_strategy="steps", eval_steps=1, per_device_eval_batch_size=8),
        train_dataset=dataset,
        eval_dataset=dataset.select(range(4)),
        processing_class=tok,
    )
    trainer.train()
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    assert evals and not any(k.startswith("eval_adaptive/") for k in evals[0])
    assert copy.copy(trainer.adaptive_counters)["total_rollouts"] == 4 + 8


def test_lora_accumulation_and_reuse(tmp_path, tok, model_state, dataset):
    """LoRA, gradient accumulation, steps_per_generation and num_iterations together: tokens are counted once per
    generation, per optimizer step; the base weights stay frozen and the adapters train."""
    import peft

    args = forced(tmp_path, max_steps=2, gradient_accumulation_steps=2, steps_per_generation=2, num_iterations=2)
    model = make_model(model_state)
    trainer = TokenAdaptiveGRPOTrainer(
        model=model,
        reward_funcs=parity_reward,
        args=args,
        train_dataset=dataset,
        processing_class=tok,
        peft_config=peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    tokens = [h["adaptive/generated_tokens"] for h in logs]
    assert tokens[0] > 0 and tokens[1] == 0  # one generation (16 rows) serves both optimizer steps
    assert trainer.adaptive_counters["total_generated_tokens"] == tokens[0]
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)


def _row_logits(model, prompt_ids, prompt_mask, completion_ids):
    """Logits of the completion positions `(B, C, V)` under `model` (left-padded prompts, as in the batch)."""
    with torch.no_grad():
        ids = torch.cat([prompt_ids, completion_ids], dim=1)
        att = torch.cat([prompt_mask, torch.ones_like(completion_ids)], dim=1)
        logits = model(input_ids=ids, attention_mask=att).logits
    return logits[:, prompt_ids.size(1) - 1 : -1]


def test_hot_continuations_carry_their_importance_weight(tmp_path, tok, model_state, dataset):
    """Continuations sampled at T x 1.5 are weighted per token by min(exp(log pi_T - log mu), cap), pi_T and mu
    recomputed here from the model's logits; prefix tokens (sampled on-policy) keep weight 1."""
    args = TokenAdaptiveConfig(
        **common(
            tmp_path, max_steps=1, adaptive_temperature_scale=1.5, tree_advantages=False, importance_ratio_cap=2.0
        )
    )
    trainer = RecordingTrainer(
        model=make_model(model_state),
        reward_funcs=parity_reward,
        args=args,
        train_dataset=dataset,
        processing_class=tok,
    )
    trainer.train()
    (batch, _), *_ = trainer.loss_batches
    completions, _ = trainer.last_assembly
    by_tokens = {tuple(c.token_ids): c for c in completions}
    fresh = make_model(model_state)  # the weights the batch was sampled with (one step, recorded before it)
    logits = _row_logits(fresh, batch["prompt_ids"], batch["prompt_mask"], batch["completion_ids"])
    adv, mask = batch["advantages"], batch["completion_mask"].bool()
    assert adv.shape == batch["completion_ids"].shape
    checked = 0
    for b in range(adv.size(0)):
        c = by_tokens[tuple(batch["completion_ids"][b][mask[b]].tolist())]
        if c.attempt == 0 or abs(adv[b, 0].item()) < 1e-6:
            continue
        t_k = 1.5**c.attempt
        n = int(mask[b].sum())
        toks = batch["completion_ids"][b, :n]
        lp_pi = torch.log_softmax(logits[b, :n].float(), -1).gather(1, toks[:, None]).squeeze(1)
        lp_mu = torch.log_softmax(logits[b, :n].float() / t_k, -1).gather(1, toks[:, None]).squeeze(1)
        expected = torch.exp(lp_pi - lp_mu).clamp(max=2.0)
        expected[: c.prefix_length] = 1.0
        assert torch.allclose(adv[b, :n] / adv[b, 0], expected, atol=1e-4), (c.prefix_length, c.attempt)
        checked += 1
    assert checked >= 2
    logged = trainer.state.log_history[0]
    assert 0 < logged["adaptive/importance_weight_mean"] and "adaptive/importance_weight_capped" in logged


def test_a_prefix_shared_by_k_siblings_carries_the_weight_of_one_rollout(tmp_path, tok, model_state, dataset):
    """With tree credit the loss batch's advantages on a shared prefix sum, over its k siblings, to the node's
    advantage once; GRPO's sequence advantages put k times that on the same tokens."""
    args = TokenAdaptiveConfig(**common(tmp_path, max_steps=1, first_rollout_fraction=0.5))  # 2 branches a group
    trainer = RecordingTrainer(
        model=make_model(model_state),
        reward_funcs=parity_reward,
        args=args,
        train_dataset=dataset,
        processing_class=tok,
    )
    trainer.train()
    (batch, _), *_ = trainer.loss_batches
    mask = batch["completion_mask"].bool()
    texts = tok.batch_decode([ids[m] for ids, m in zip(batch["completion_ids"], mask)], skip_special_tokens=True)
    rewards = torch.tensor(parity_reward(texts))
    groups = batch["prefix_ids"] // 4  # TRL shuffles the batch; a prefix id is a row of the unshuffled one
    grpo = get_estimator("grpo")(rewards, groups, None).advantages
    adv = batch["advantages"]
    nodes = 0
    for pid in batch["prefix_ids"].unique():
        rows = (batch["prefix_ids"] == pid).nonzero().squeeze(1)
        k, L = len(rows), int(batch["prefix_lengths"][rows[0]])
        if k < 2:
            continue
        nodes += 1
        node_adv = grpo[rows].mean()  # = (node mean - group mean) / group std
        assert torch.allclose(adv[rows, :L].sum(0), node_adv.expand(L), atol=1e-4)
        assert torch.allclose((grpo[rows].unsqueeze(1).expand(k, L)).sum(0), k * node_adv.expand(L), atol=1e-4)
    assert nodes >= 1
    logged = trainer.state.log_history[0]
    assert 0 < logged["adaptive/prefix_copy_share"] < 1
    # diagnostics of how much of the batch is credited: the share of branched nodes whose leaves score differently,
    # and the share of loss tokens with a nonzero advantage, recomputed from the loss batch
    mixed = [
        len(set(rewards[batch["prefix_ids"] == pid].tolist())) > 1
        for pid in batch["prefix_ids"].unique()
        if (batch["prefix_ids"] == pid).sum() > 1
    ]
    assert logged["adaptive/mixed_node_frac"] == pytest.approx(sum(mixed) / len(mixed))
    credited = ((adv != 0) & mask).sum() / mask.sum()
    assert logged["adaptive/credited_token_frac"] == pytest.approx(credited.item(), abs=1e-6)


def test_branch_points_follow_entropy_peaks_not_the_minimum_prefix(tmp_path, tok, model_state, dataset, monkeypatch):
    """Each first rollout branches at its highest-entropy position inside [0.2, 0.8] of its length (recomputed here
    from the model), not at a fixed minimum prefix; the base trajectory stays in its group."""
    seen = []
    orig = TransformersBackend.sample_first

    def spy(self, prompts, detect):
        out = orig(self, prompts, detect)
        if detect:
            seen.extend(zip(prompts, out))
        return out

    monkeypatch.setattr(TransformersBackend, "sample_first", spy)
    args = TokenAdaptiveConfig(**common(tmp_path, max_steps=1, max_completion_length=16))
    trainer = TokenAdaptiveGRPOTrainer(
        model=make_model(model_state),
        reward_funcs=parity_reward,
        args=args,
        train_dataset=dataset,
        processing_class=tok,
    )
    fresh = make_model(model_state)
    trainer.train()
    assert len(seen) == 2  # 8 rows, groups of 4, first_rollout_fraction 0.25
    positions = []
    for prompt, s in seen:
        n = len(s.token_ids)
        logits = _row_logits(
            fresh, torch.tensor([prompt]), torch.ones(1, len(prompt), dtype=torch.long), torch.tensor([s.token_ids])
        )[0]
        logp = torch.log_softmax(logits.float(), -1)
        entropy = -(logp.exp() * logp).sum(-1)
        lo, hi = max(1, math.ceil(0.2 * n)), min(n - 1, math.floor(0.8 * n))
        assert s.failure_point == lo + int(entropy[lo : hi + 1].argmax())
        positions.append(s.failure_point / n)
    completions, stats = trainer.last_assembly
    assert stats.first_rollouts == 2 and stats.truncated == 2
    assert sum(c.attempt == 0 for c in completions) == 2  # the base trajectories are kept
    assert trainer.branch_histogram == [sum(int(p * 10) == i for p in positions) for i in range(10)]
