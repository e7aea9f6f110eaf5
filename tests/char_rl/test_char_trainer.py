"""CharGRPOTrainer end to end on a tiny in-memory corpus: learning, resume, launch-script integration, hooks."""

import inspect
import json
import os

import pytest
import torch
from transformers import Trainer

from open_r1_ext.char_rl.data import CharCorpus
from open_r1_ext.char_rl.trainer import STATE_NAME, CharGRPOConfig, CharGRPOTrainer, corpus_datasets
from open_r1_ext.core.checkpoint import load_extra_state
from tiny_helpers import CPU_RUN


def _args(tmp_path, **kw):
    base = dict(
        output_dir=str(tmp_path / "out"),
        model_preset="cpu-tiny",
        block_size=32,
        per_device_train_batch_size=8,
        learning_rate=3e-3,
        max_steps=150,
        eval_strategy="no",
        eval_batches=4,
        sample_chars=20,
        disable_tqdm=True,
        seed=0,
    )
    base = {**CPU_RUN, **base, "logging_steps": 50}
    base.update(kw)
    return CharGRPOConfig(**base)


def _trainer(args, play_text):
    corpus = CharCorpus.from_text(play_text)
    ds = corpus_datasets(corpus)
    torch.manual_seed(args.seed)
    return CharGRPOTrainer(
        model=CharGRPOTrainer.build_model(args, len(corpus.tokenizer)),
        reward_funcs=[],
        args=args,
        train_dataset=ds["train"],
        eval_dataset=ds["test"],
        processing_class=corpus.tokenizer,
    )


def test_short_game_run_beats_unigram(tmp_path, play_text):
    trainer = _trainer(_args(tmp_path), play_text)
    before = trainer.evaluate()["eval_accuracy"]
    trainer.train()
    res = trainer.summary_results()
    unigram = res["baselines"]["unigram"]["accuracy"]
    assert res["val_accuracy"] > unigram > before
    assert res["val_ce"] < res["baselines"]["unigram"]["ce"]
    logged = {k for h in trainer.state.log_history for k in h}
    for key in ("game/reward_mean", "game/kl_ngram", "health/ece", "health/grad_norm", "perf/chars_per_second"):
        assert key in logged, key
    assert res["samples"] and len(res["samples"][-1]["text"]) == 20


def test_sampled_game_learns_and_its_control_variate_acts(tmp_path, play_text):
    """The RL game (K = 8 sampled characters, only their rewards read) learns past the unigram model, and the
    diagnostic shows the teacher's control variate bringing its gradient estimate nearer the exact one."""
    trainer = _trainer(_args(tmp_path, group="sampled", ngram_order=3, partial_credit=0.0), play_text)
    trainer.train()
    res = trainer.summary_results()
    assert res["val_ce"] < res["baselines"]["unigram"]["ce"]
    hist = [h for h in trainer.state.log_history if "game/est_rel_var" in h]
    assert hist and all(h["game/est_rel_var"] < h["game/est_rel_var_no_cv"] for h in hist)
    assert all(0.0 < h["game/target_in_group"] < 1.0 for h in hist)
    assert "game/est_rel_var_no_baseline" not in hist[0]  # no baseline configured: nothing to compare


def test_adaptive_guidance_fades_as_the_model_overtakes_the_teacher(tmp_path, play_text):
    trainer = _trainer(
        _args(tmp_path, guidance_schedule="adaptive", partial_credit=1.0, guidance_gap_scale=0.5), play_text
    )
    assert trainer.schedules()[0] == 1.0  # no measurement yet: full weight
    for gap, lam in ((2.0, 1.0), (0.5, 1.0), (0.25, 0.5), (0.0, 0.0), (-0.3, 0.0)):
        trainer.teacher_gap = gap
        assert trainer.schedules()[0] == pytest.approx(lam)
    trainer.teacher_gap = None
    trainer.args.max_steps = 3
    trainer.train()
    logged = [h for h in trainer.state.log_history if "game/teacher_gap" in h][-1]
    assert logged["game/teacher_ce"] > 0 and logged["game/teacher_gap"] == pytest.approx(
        logged["train/ce"] - logged["game/teacher_ce"], rel=0.5
    )


def test_objective_ce_is_the_twin(tmp_path, play_text):
    trainer = _trainer(_args(tmp_path, objective="ce", max_steps=3), play_text)
    trainer.train()
    logged = {k for h in trainer.state.log_history for k in h}
    assert "train/ce" in logged and not any(k.startswith("game/") for k in logged)


def test_resume_restores_extra_state(tmp_path, play_text):
    kw = dict(max_steps=6, save_strategy="steps", save_steps=3, adaptive_kl=True, kl_target=0.05, beta=0.1)
    kw.update(group="sampled", guidance_schedule="adaptive", ngram_order=3)
    first = _trainer(_args(tmp_path, **kw), play_text)
    first.train()
    ckpt = tmp_path / "out" / "checkpoint-3"
    assert (ckpt / f"open_r1_ext_{STATE_NAME}.pt").is_file()  # core.checkpoint's file, from the main process
    saved = load_extra_state(first, str(ckpt), STATE_NAME)
    assert saved["beta"] != 0.1 and saved["health"]["step"] == 3
    assert saved["ngram"]["fingerprint"] == first.corpus.fingerprint and os.path.isfile(saved["ngram"]["cache_path"])

    second = _trainer(_args(tmp_path, **kw), play_text)
    assert second.load_checkpoint_state(str(ckpt))
    assert second.beta == pytest.approx(saved["beta"]) and second.kl_controller.beta == pytest.approx(saved["beta"])
    assert second.health.state_dict() == saved["health"]
    assert saved["teacher_gap"] is not None and second.teacher_gap == pytest.approx(saved["teacher_gap"])
    assert torch.equal(second._sample_gen.get_state(), saved["sample_generator"])
    second.train(resume_from_checkpoint=str(ckpt))
    assert second.state.global_step == 6 and second.health.step == 6
    assert second.beta == pytest.approx(first.beta)
    assert second.teacher_gap == pytest.approx(first.teacher_gap)  # same draws after resume: same trajectory

    other = _trainer(_args(tmp_path, **kw), play_text[:30_000])
    with pytest.raises(ValueError, match="another corpus"):
        other.load_char_state(saved)


def test_launch_script_builds_and_trains(tmp_path, corpus_file):
    from open_r1_ext.grpo import main, parse_args

    recipe = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "char_grpo_cpu_quick.yaml")
    flags = ["--corpus", corpus_file, "--model_preset", "cpu-tiny", "--max_steps", "4", "--eval_steps", "2"]
    flags += ["--eval_batches", "2", "--output_dir", str(tmp_path / "run"), "--plot", "false", "--block_size", "32"]
    script_args, training_args, model_args = parse_args(["--config", recipe, *flags])
    assert isinstance(training_args, CharGRPOConfig)
    results = main(script_args, training_args, model_args)
    assert results["objective"] == "game" and 0.0 <= results["val_accuracy"] <= 1.0
    written = json.loads((tmp_path / "run" / "results.json").read_text())
    assert written["val_ce"] == pytest.approx(results["val_ce"]) and written["final_reward"] is not None


def test_launch_script_runs_the_ce_twin_without_eval(tmp_path, corpus_file):
    """What `char_rl/train.py` used to do, through the one launch script (`eval_strategy: no`: val from `corpus`)."""
    from open_r1_ext.grpo import main, parse_args

    recipe = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "char_grpo_cpu_quick.yaml")
    res = main(
        *parse_args(
            ["--config", recipe, "--corpus", corpus_file, "--model_preset", "cpu-tiny", "--max_steps", "2"]
            + ["--eval_strategy", "no", "--output_dir", str(tmp_path / "e"), "--block_size", "16"]
            + ["--objective", "ce", "--plot", "false"]
        )
    )
    assert res["objective"] == "ce" and (tmp_path / "e" / "results.json").is_file()


def test_log_averages_without_nan_and_keeps_its_extras(tmp_path, play_text):
    trainer = _trainer(_args(tmp_path, max_steps=2), play_text)
    trainer.model.train()
    trainer._metrics["game/reward_mean"] += [1.0, float("nan"), 3.0]
    trainer._metrics["game/kl_ngram"] += [float("nan")]
    trainer._chars, trainer._step_seconds = 1000, 2.0
    trainer.log({"loss": 0.5})
    entry = trainer.state.log_history[-1]
    assert entry["game/reward_mean"] == pytest.approx(2.0) and entry["reward"] == pytest.approx(2.0)
    assert entry["game/kl_ngram"] is None  # no valid value: None, not NaN (JSON loggers reject NaN)
    assert entry["perf/chars_per_second"] == pytest.approx(500.0) and entry["loss"] == 0.5
    assert not trainer._metrics and trainer._chars == 0


def test_config_validation_quotes_bad_values(tmp_path):
    with pytest.raises(ValueError, match="'sgd'"):
        _args(tmp_path, objective="sgd")
    with pytest.raises(ValueError, match="known: .*'target_mean'"):
        _args(tmp_path, advantage_norm="median")
    with pytest.raises(ValueError, match="known presets"):
        _args(tmp_path, model_preset="gpt5")
    with pytest.raises(ValueError, match="known: \\['replacement', 'priority'\\]"):
        _args(tmp_path, sampler="topk")
    with pytest.raises(ValueError, match="needs sampler 'replacement'"):
        _args(tmp_path, sampled_baseline="loo", sampler="priority")
    with pytest.raises(ValueError, match="'sometimes'"):
        _args(tmp_path, guidance_schedule="sometimes")
    with pytest.raises(ValueError, match="ngram_order must be in 1..6, got 7"):
        _args(tmp_path, ngram_order=7)


# Trainer hooks CharGRPOTrainer overrides; a transformers upgrade that changes one must fail here.
HOOKS = {
    "compute_loss": ["self", "model", "inputs", "return_outputs", "num_items_in_batch"],
    "training_step": ["self", "model", "inputs", "num_items_in_batch"],
    "_prepare_inputs": ["self", "inputs"],
    "_get_grad_norm": ["self", "model", "grad_norm"],
    "_save_checkpoint": ["self", "model", "trial"],
    "_load_optimizer_and_scheduler": ["self", "checkpoint"],
    "log": ["self", "logs", "start_time"],
    "evaluate": ["self", "eval_dataset", "ignore_keys", "metric_key_prefix"],
    "get_train_dataloader": ["self"],
}


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_trainer_hook_signature(name):
    params = list(inspect.signature(getattr(Trainer, name)).parameters)
    assert params[: len(HOOKS[name])] == HOOKS[name], f"Trainer.{name} signature changed: {params}"
