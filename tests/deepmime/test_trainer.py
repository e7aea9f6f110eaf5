"""DeepMimeTrainer end to end on a tiny local teacher (offline, CPU, a few steps)."""

import math
import os

import pytest
import torch

from conftest import tiny_config
from open_r1_ext.deepmime import DeepMimeConfig, DeepMimeStudentForCausalLM, DeepMimeTrainer
from open_r1_ext.grpo import parse_args
from open_r1_ext.trainers import get_trainer_classes


LOSS_TERMS = ("scavenger/ce_loss", "scavenger/grpo_loss", "deepmime/hidden_mse_loss", "deepmime/balance_loss")


def test_registry_and_config_checks(tmp_path):
    assert get_trainer_classes("deepmime") == (DeepMimeConfig, DeepMimeTrainer)
    cfg = DeepMimeConfig(str(tmp_path), use_cpu=True, report_to="none")
    assert cfg.get_teacher_model_id() == "deepseek-ai/deepseek-coder-1.3b-base"
    assert (cfg.ce_loss_weight, cfg.grpo_loss_weight, cfg.hidden_loss_weight) == (1.0, 0.25, 0.275)
    assert (cfg.rl_warmup_steps, cfg.advantage_clamp_max, cfg.num_generations, cfg.beta) == (100, 5.0, 4, 0.0)
    assert DeepMimeConfig(str(tmp_path), teacher_arch="33b", use_cpu=True).get_teacher_model_id().endswith("33b-base")
    with pytest.raises(ValueError, match="teacher_arch must be one of"):
        DeepMimeConfig(str(tmp_path), teacher_arch="7b", use_cpu=True)
    with pytest.raises(ValueError, match="memory_init"):
        DeepMimeConfig(str(tmp_path), memory_init="zeros", use_cpu=True)


@pytest.mark.parametrize("recipe", ["recipes/deepmime_builtin_cpu.yaml", "recipes/deepmime_deepseek-coder-1.3b.yaml"])
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
        for key in (*LOSS_TERMS, "loss", "rewards/teacher_logprob/mean"):
            assert key in h and math.isfinite(h[key]), key
        assert h["deepmime/balance_loss"] > 0 and h["deepmime/hidden_mse_loss"] > 0
        assert h["rewards/teacher_logprob/mean"] < 0
    assert [h["scavenger/grpo_weight"] for h in logs] == [0.0, 0.25, 0.25]  # 1 warm-up step, 1 ramp step
    changed = [n for n, p in student.named_parameters() if not torch.equal(p, before[n])]
    for part in ("memory.memory_keys", "memory.router", "teacher_proj", "lm_head"):
        assert any(part in n for n in changed), part
    assert all(torch.equal(p, teacher_before[n]) for n, p in teacher.named_parameters())  # frozen


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
