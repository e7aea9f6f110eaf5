"""DeepMimeTrainer end to end on a tiny local teacher (offline, CPU, a few steps)."""

import math
import os

import pytest
import torch

from conftest import tiny_config
from open_r1_ext.deepmime import DeepMimeConfig, DeepMimeStudentForCausalLM, DeepMimeTrainer, distillation_kl
from open_r1_ext.grpo import parse_args
from open_r1_ext.token_scavenger.trainer import ReferenceForward
from open_r1_ext.trainers import get_trainer_classes


LOSS_TERMS = (
    "scavenger/ce_loss",
    "scavenger/grpo_loss",
    "deepmime/hidden_mse_loss",
    "deepmime/kd_loss",
    "deepmime/balance_loss",
    "deepmime/router_z_loss",
)
DIAGNOSTICS = ("deepmime/memory_attention_entropy", "deepmime/router_entropy")


def test_registry_and_config_checks(tmp_path):
    assert get_trainer_classes("deepmime") == (DeepMimeConfig, DeepMimeTrainer)
    cfg = DeepMimeConfig(str(tmp_path), use_cpu=True, report_to="none")
    assert cfg.get_teacher_model_id() == "deepseek-ai/deepseek-coder-1.3b-base"
    assert (cfg.ce_loss_weight, cfg.grpo_loss_weight, cfg.hidden_loss_weight) == (1.0, 0.25, 0.275)
    assert (cfg.rl_warmup_steps, cfg.advantage_clamp_max, cfg.num_generations, cfg.beta) == (100, 5.0, 4, 0.0)
    assert (cfg.balance_loss_weight, cfg.router_z_loss_weight) == (1e-2, 1e-3)  # Switch's and ST-MoE's values
    assert cfg.kd_loss_weight == 0.0  # not in the seed; no measured gain on the benchmark
    assert DeepMimeConfig(str(tmp_path), teacher_arch="33b", use_cpu=True).get_teacher_model_id().endswith("33b-base")
    with pytest.raises(ValueError, match="teacher_arch must be one of"):
        DeepMimeConfig(str(tmp_path), teacher_arch="7b", use_cpu=True)
    with pytest.raises(ValueError, match="memory_init"):
        DeepMimeConfig(str(tmp_path), memory_init="zeros", use_cpu=True)
    with pytest.raises(ValueError, match="router_z_loss_weight must be >= 0, got -1"):
        DeepMimeConfig(str(tmp_path), router_z_loss_weight=-1.0, use_cpu=True)
    with pytest.raises(ValueError, match="kd_temperature must be > 0, got 0.0"):
        DeepMimeConfig(str(tmp_path), kd_temperature=0.0, use_cpu=True)


@pytest.mark.parametrize(
    "recipe",
    [
        "recipes/deepmime_builtin_cpu.yaml",
        "recipes/deepmime_addition_cpu.yaml",
        "recipes/deepmime_deepseek-coder-1.3b.yaml",
    ],
)
def test_recipes_parse(recipe):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script_args, training_args, _ = parse_args(["--config", os.path.join(root, recipe), "--use_cpu", "true"])
    assert script_args.trainer_type == "deepmime" and isinstance(training_args, DeepMimeConfig)


def test_train_logs_every_loss_term(tmp_path, teacher, tok, dataset):
    args = tiny_config(tmp_path, max_steps=3)
    trainer = DeepMimeTrainer(args=args, teacher_model=teacher, processing_class=tok, train_dataset=dataset)
    student = trainer.model
    assert isinstance(student, DeepMimeStudentForCausalLM) and student.config.memory_initialized_from
    assert student.config.teacher_hidden_size == 48 and len(tok) == student.config.vocab_size
    before = {n: p.detach().clone() for n, p in student.named_parameters()}
    teacher_before = {n: p.detach().clone() for n, p in teacher.named_parameters()}
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 3
    for h in logs:
        for key in (*LOSS_TERMS, *DIAGNOSTICS, "loss", "rewards/teacher_logprob/mean"):
            assert key in h and math.isfinite(h[key]), key
        assert h["deepmime/balance_loss"] > 0 and h["deepmime/hidden_mse_loss"] > 0 and h["deepmime/kd_loss"] > 0
        assert h["deepmime/router_z_loss"] > 0
        assert 0 < h["deepmime/memory_attention_entropy"] < 0.9 and 0 < h["deepmime/router_entropy"] <= 1
        assert h["rewards/teacher_logprob/mean"] < 0
    assert [h["scavenger/grpo_weight"] for h in logs] == [0.0, 0.25, 0.25]  # 1 warm-up step, 1 ramp step
    changed = [n for n, p in student.named_parameters() if not torch.equal(p, before[n])]
    for part in ("memory.memory_keys", "memory.log_scale", "memory.router", "teacher_proj", "lm_head"):
        assert any(part in n for n in changed), part
    assert all(torch.equal(p, teacher_before[n]) for n, p in teacher.named_parameters())  # frozen


def test_evaluation_logs_the_memory_ablation(tmp_path, teacher, tok, dataset):
    args = tiny_config(tmp_path, max_steps=2, eval_strategy="no", per_device_eval_batch_size=8)
    trainer = DeepMimeTrainer(
        args=args, teacher_model=teacher, processing_class=tok, train_dataset=dataset, eval_dataset=dataset
    )
    trainer.train()
    metrics = trainer.evaluate()
    increase = metrics["eval_deepmime/memory_ablation_ce_increase"]
    assert math.isfinite(increase) and abs(increase) > 1e-3  # removing the memory changes the CE
    assert "eval_deepmime/memory_attention_entropy" in metrics and not trainer.model.memory.ablated
    assert "deepmime/memory_ablation_ce_increase" not in trainer.state.log_history[0]  # evaluation only


def test_distillation_kl():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 7, generator=g)  # (R, W + 1, V): the student's last W + 1 = 4 positions
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    ref = ReferenceForward(
        output=type("Out", (), {"logits": logits})(),
        input_ids=None,
        attention_mask=None,
        targets=torch.zeros(2, 3, dtype=torch.long),
        mask=mask,
    )
    prompt = torch.randn(2, 2, 7, generator=g)  # the teacher sees the prompt too
    same = torch.cat([prompt, logits], dim=1)  # (R, P + W, V)... its last W + 1 positions equal the student's
    assert distillation_kl(ref, same).item() == pytest.approx(0.0, abs=1e-6)
    other = torch.cat([prompt, torch.randn(2, 4, 7, generator=g)], dim=1)
    t = other[:, -4:-1].log_softmax(-1)
    s = logits[:, :-1].log_softmax(-1)
    want = ((t.exp() * (t - s)).sum(-1) * mask).sum() / mask.sum()
    assert distillation_kl(ref, other).item() == pytest.approx(want.item(), rel=1e-5)
    assert distillation_kl(ref, other, temperature=2.0).item() != pytest.approx(want.item(), rel=1e-3)


def test_manual_loop_with_teacher_path(tmp_path, teacher, tok, dataset):
    teacher.save_pretrained(tmp_path / "teacher")
    tok.save_pretrained(tmp_path / "teacher")
    config = tiny_config(tmp_path / "out", teacher_model_name_or_path=None, ce_loss_weight=0.0)
    trainer = DeepMimeTrainer(
        config=config, teacher_model_id=str(tmp_path / "teacher"), student_model=None, train_dataset=dataset
    )
    assert trainer.teacher_name == str(tmp_path / "teacher")
    steps = [trainer.train_step() for _ in range(2)]
    assert trainer.state.global_step == 2
    for logs in steps:
        for key in LOSS_TERMS:  # with ce_loss_weight 0 the CE is still measured (one shared forward)
            assert math.isfinite(logs[key]), key


def test_resume_restores_deepmime_state(tmp_path, teacher, tok, dataset):
    args = tiny_config(tmp_path, max_steps=2, save_strategy="steps", save_steps=2)
    first = DeepMimeTrainer(args=args, teacher_model=teacher, processing_class=tok, train_dataset=dataset)
    first.train()
    checkpoint = tmp_path / "checkpoint-2"
    assert (checkpoint / "open_r1_ext_deepmime.pt").exists()
    assert first.rollouts_scored > 0

    args = tiny_config(tmp_path, max_steps=3, save_strategy="no", memory_init="random")
    second = DeepMimeTrainer(args=args, teacher_model=teacher, processing_class=tok, train_dataset=dataset)
    assert second.memory_codes is None and second.rollouts_scored == 0
    second.train(resume_from_checkpoint=str(checkpoint))
    assert torch.equal(second.memory_codes, first.memory_codes)
    assert second.rollouts_scored > first.rollouts_scored
    assert second.state.global_step == 3
