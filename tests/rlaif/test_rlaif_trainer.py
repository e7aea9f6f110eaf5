"""RLAIFGRPOTrainer on a tiny char-level Llama with LoRA, the teacher on the loopback fake Messages API."""

import dataclasses

import pytest
import torch
from datasets import Dataset
from peft import LoraConfig

from open_r1_ext.core.tiny import char_tokenizer, micro_llama
from open_r1_ext.rlaif.config import TeacherConfig
from open_r1_ext.rlaif.fake_server import FakeMessagesServer
from open_r1_ext.rlaif.teacher import TeacherConfigError, TeacherFailureError
from open_r1_ext.rlaif.trainer import AdaptiveKLController, RLAIFConfig, RLAIFGRPOTrainer, teacher_reward
from open_r1_ext.trainers import get_trainer_classes
from tiny_helpers import CPU_RUN


PROMPTS = ["def add(a, b):\n", "def mul(a, b):\n", "int sub(int a) {\n", "fn neg(a: i64) -> i64 {\n"]


def tiny_model(tok):
    return micro_llama(tok)


def make_args(tmp_path, server, **kw):
    base = dict(
        **CPU_RUN,
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=12,
        learning_rate=1e-2,
        seed=0,
        beta=0.04,
        teacher_base_url=server.url,
        teacher_cache_path=str(tmp_path / "scores.sqlite"),
        teacher_heuristic_score_threshold=0.0,  # junk reaches the server
        teacher_timeout_s=5.0,
        teacher_backoff_base_s=0.01,
    )
    base.update(kw)
    return RLAIFConfig(**base)


def make_trainer(tmp_path, server, lora=True, **kw):
    tok = char_tokenizer()
    return RLAIFGRPOTrainer(
        model=tiny_model(tok),
        reward_funcs=[teacher_reward],
        args=make_args(tmp_path, server, **kw),
        train_dataset=Dataset.from_dict({"prompt": PROMPTS * 4}),
        processing_class=tok,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
        if lora
        else None,
    )


def test_registered_and_defaults():
    config_cls, trainer_cls = get_trainer_classes("rlaif")
    assert (config_cls, trainer_cls) == (RLAIFConfig, RLAIFGRPOTrainer)
    args = RLAIFConfig(output_dir="x", use_cpu=True, report_to="none")
    assert (args.temperature, args.num_generations, args.teacher_reward_threshold) == (0.85, 4, 0.0)
    assert args.teacher_heuristic_score_threshold == 0.3 and args.teacher_prompt_context_chars == 200
    assert not args.use_frozen_reference_for_kl


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"teacher_reward_threshold": 1.5}, "teacher_reward_threshold=1.5 is invalid: must be in \\[0, 1\\]"),
        ({"adaptive_kl": True, "beta": 0.0}, "adaptive_kl needs beta > 0"),
        ({"teacher_heuristic_score_threshold": -0.2}, "teacher_heuristic_score_threshold=-0.2"),
        ({"teacher_max_retries": -1}, "teacher_max_retries=-1"),
        ({"teacher_rubric_file": "/no/such/rubric.txt"}, "/no/such/rubric.txt"),
        ({"teacher_api_key_env": "sk-ant-123"}, "name of an environment variable"),
    ],
)
def test_config_validation_quotes_bad_values(kw, match):
    with pytest.raises(ValueError, match=match) as err:
        RLAIFConfig(output_dir="x", use_cpu=True, report_to="none", **kw)
    assert "sk-ant-123" not in str(err.value)  # a key pasted into teacher_api_key_env is never echoed


def test_adaptive_kl_controller():
    c = AdaptiveKLController(beta=0.1, target=0.05, rate=0.1)
    assert c.update(0.5) == pytest.approx(0.1 * 1.02)  # error clipped at +0.2
    assert c.update(0.05) == pytest.approx(0.1 * 1.02)  # on target: unchanged
    assert c.update(0.0) == pytest.approx(0.1 * 1.02 * 0.98)


def test_lora_training_changes_only_adapters_and_logs_teacher_metrics(tmp_path, server, api_key):
    trainer = make_trainer(tmp_path, server)
    assert trainer.reward_funcs == [trainer.teacher]  # the placeholder was replaced, nothing appended
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    changed_lora, changed_base = [], []
    for n, p in trainer.model.named_parameters():
        if not torch.equal(before[n], p.detach()):
            (changed_lora if "lora_" in n else changed_base).append(n)
    assert changed_lora and not changed_base
    assert server.request_count >= 2  # one group call per prompt per step
    logs = {k for h in trainer.state.log_history for k in h}
    for name in (
        "teacher/input_tokens",
        "teacher/cache_write_tokens",
        "teacher/calls",
        "teacher/failures",
        "teacher/tokens_per_sample",
        "teacher/cost_usd",
        "teacher/failure_share",
        "teacher/refusals",
        "teacher/max_tokens_stops",
        "teacher/timed_out_requests",
        "teacher/candidate_truncations",
        "teacher/escaped_delimiters",
        "teacher/encoding_replacements",
        "api_tokens_sent",
        "rewards/anthropic_teacher/mean",
        "kl",
    ):
        assert name in logs, name
    assert trainer.ref_model is None  # default reference: the policy with adapters disabled


def test_resume_restores_teacher_counters_and_key_not_in_checkpoint(tmp_path, server, api_key):
    # No score cache here: the resumed run regenerates the same completions, which would all be cache hits.
    trainer = make_trainer(
        tmp_path, server, save_strategy="steps", save_steps=1, adaptive_kl=True, teacher_use_cache=False
    )
    trainer.train()
    ckpt = tmp_path / "out" / "checkpoint-1"
    saved = torch.load(ckpt / "open_r1_ext_rlaif_rank0.pt", weights_only=True)["state"]  # core.checkpoint's file
    assert 0 < saved["teacher"]["stats"]["calls"] < trainer.teacher.stats.calls
    assert saved["kl_controller"]["beta"] == saved["beta"] != 0.04  # the controller moved beta
    for f in (tmp_path / "out").rglob("*"):
        if f.is_file():
            assert api_key.encode() not in f.read_bytes(), f

    resumed = make_trainer(
        tmp_path, server, save_strategy="steps", save_steps=1, adaptive_kl=True, teacher_use_cache=False
    )
    assert resumed.teacher.stats.calls == 0
    sent_before = server.request_count
    resumed.train(resume_from_checkpoint=str(ckpt))
    new_calls = server.request_count - sent_before
    assert new_calls > 0
    assert resumed.teacher.stats.calls == saved["teacher"]["stats"]["calls"] + new_calls
    assert resumed.teacher.stats.samples == saved["teacher"]["stats"]["samples"] + 4  # one more step of 4
    assert len(saved["teacher"]["outcomes"]) == 4 and not any(saved["teacher"]["outcomes"])  # failure window


def test_frozen_reference_copy(tmp_path, server, api_key):
    trainer = make_trainer(tmp_path, server, use_frozen_reference_for_kl=True, max_steps=1)
    assert trainer.ref_model is not None
    assert not any(p.requires_grad for p in trainer.ref_model.parameters())
    assert not any("lora_" in n for n, _ in trainer.ref_model.named_parameters())
    trainer.train()
    assert "kl" in {k for h in trainer.state.log_history for k in h}


def test_adaptive_kl_moves_beta_once_per_optimizer_step(tmp_path, server, api_key):
    """With gradient accumulation, beta moves once per optimizer step (as TRL's adaptive entropy), not per micro-batch."""
    trainer = make_trainer(tmp_path, server, adaptive_kl=True, gradient_accumulation_steps=2, max_steps=2)
    updates = []
    update = trainer.kl_controller.update

    def counting_update(kl):
        updates.append(kl)
        return update(kl)

    trainer.kl_controller.update = counting_update
    trainer.train()
    assert trainer.state.global_step == 2
    assert len(updates) == trainer.state.global_step  # one controller update per optimizer step
    assert trainer.beta == trainer.kl_controller.beta != 0.04


def test_teacher_settings_declared_once():
    """`RLAIFConfig` inherits every teacher setting from `TeacherConfig`: one declaration, one `teacher_` prefix."""
    teacher_fields = {f.name: f for f in dataclasses.fields(TeacherConfig)}
    assert issubclass(RLAIFConfig, TeacherConfig)
    for name, f in teacher_fields.items():
        assert name.startswith("teacher_") and f.metadata.get("help"), name
    own = {f.name for f in dataclasses.fields(RLAIFConfig)} - set(teacher_fields)
    assert not {n for n in own if n.startswith("teacher")}  # no second, hand-mapped copy
    args = RLAIFConfig("out", use_cpu=True, report_to="none", seed=7)  # positional output_dir, as GRPOConfig
    assert args.output_dir == "out" and args.teacher_seed == 7  # the jitter seed follows the training seed
    copy = TeacherConfig.of(args)
    assert type(copy) is TeacherConfig and copy.teacher_model == "claude-sonnet-4-5" == args.teacher_model


def test_model_card_names_rlaif_and_its_paper(tmp_path, server, api_key):
    trainer = make_trainer(tmp_path, server)
    trainer.create_model_card(model_name="student")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "RLAIF" in card and "2309.00267" in card and "2402.03300" not in card  # not GRPO's DeepSeekMath paper


def test_a_wrong_model_stops_the_trainer_at_start_up(tmp_path, api_key):
    with FakeMessagesServer(api_key=api_key, known_models={"claude-sonnet-4-5"}) as srv:
        with pytest.raises(TeacherConfigError, match="teacher_model='claude-sonet-4-5'"):
            make_trainer(tmp_path, srv, teacher_model="claude-sonet-4-5")
        assert srv.request_count == 0 and len(srv.count_requests) == 1  # before any generation or billed call


def test_a_teacher_that_stops_scoring_stops_training(tmp_path, api_key):
    with FakeMessagesServer(api_key=api_key, fault_rate=1.0, fault_kinds=("500",)) as srv:
        trainer = make_trainer(tmp_path, srv, teacher_max_retries=0, teacher_failure_window=4, max_steps=3)
        with pytest.raises(TeacherFailureError, match="4 of the last 4 samples sent to the teacher got no score"):
            trainer.train()
        assert trainer.state.global_step == 0 and srv.request_count >= 1
