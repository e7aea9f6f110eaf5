"""What a user meets on a bad day: reruns, non-finite rewards, early and clear errors, results after a resume."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from test_launch import ROOT, SCRIPT, TINY_RECIPE, run, write_recipe


def launch(args, env_extra=None, timeout=600):
    """Run the launch script; returns (returncode, stdout, stderr) without asserting success."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src"), **(env_extra or {})}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    return done.returncode, done.stdout, done.stderr


def inf_reward(completions, **kwargs):
    """+inf for one completion in four, else its length parity: a reward function with a bug."""
    return [math.inf if i % 4 == 0 else float(len(c) % 2) for i, c in enumerate(completions)]


def test_rerunning_a_finished_run_does_not_train_again(tmp_path):
    recipe = write_recipe(tmp_path)  # 2 steps, a checkpoint at step 2
    run([sys.executable, str(SCRIPT), "--config", str(recipe)])
    out = tmp_path / "out"
    before = (out / "results.json").read_text()
    code, stdout, _ = launch(["--config", str(recipe)])
    assert code == 0 and "already holds a finished run: step 2 of max_steps 2" in stdout
    assert "--max_steps" in stdout and "--resume false" in stdout  # the message says how to continue or start over
    assert not (out / "checkpoint-3").exists() and (out / "results.json").read_text() == before
    # without checkpoints the finished run is recognised from its results
    recipe = write_recipe(tmp_path, save_strategy="no", output_dir=str(tmp_path / "nockpt"))
    run([sys.executable, str(SCRIPT), "--config", str(recipe)])
    code, stdout, _ = launch(["--config", str(recipe)])
    assert code == 0 and "already holds a finished run" in stdout


@pytest.mark.parametrize("trainer", ["grpo", "token_scavenger"])
def test_infinite_rewards_are_counted_and_left_out(tmp_path, trainer):
    extra = {"trainer_type": trainer}
    if trainer == "token_scavenger":
        extra.update(advantage_estimator="two_level", grouping_key="prefix", prefix_tokens=2, rl_warmup_steps=0)
        extra.update(rl_ramp_steps=0, grpo_loss_weight=1.0, ce_loss_weight=0.0, carousel_weight=0.0)
        extra.update(use_adaptive_entropy=False)
    recipe = write_recipe(tmp_path, reward_funcs=["test_bad_day:inf_reward"], save_strategy="no", max_steps=3, **extra)
    env = {"PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'tests'}"}
    code, stdout, stderr = launch(["--config", str(recipe)], env)
    assert code == 0, stdout[-2000:] + stderr[-3000:]
    text = (tmp_path / "out" / "results.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    results = json.loads(text)
    assert results["nonfinite_rewards"]["inf_reward"] == 3 * 8 // 4  # 2 a step, every one counted
    assert "inf_reward" in stdout + stderr and "non-finite" in stdout + stderr  # one warning naming it
    losses = [
        h for h in json.loads((tmp_path / "out" / "trainer_state.json").read_text())["log_history"] if "loss" in h
    ]
    assert all(math.isfinite(h["loss"]) and math.isfinite(h["grad_norm"]) for h in losses)
    assert any(h["grad_norm"] > 0 for h in losses)  # the finite rewards still train


def test_the_estimators_treat_infinity_like_no_verdict():
    from open_r1_ext.core.advantages import ESTIMATORS

    rewards = torch.tensor([1.0, math.inf, 0.0, 1.0, -math.inf, 0.0, 1.0, 0.0])
    groups = torch.arange(8) // 4
    clean = torch.tensor([1.0, math.nan, 0.0, 1.0, math.nan, 0.0, 1.0, 0.0])
    for name, fn in ESTIMATORS.items():
        a = fn(rewards, groups, torch.arange(8), clamp_max=5.0).advantages
        b = fn(clean, groups, torch.arange(8), clamp_max=5.0).advantages
        assert torch.isfinite(a).all() and torch.equal(a, b), name


def test_a_whole_window_without_reward_variance_is_warned(tmp_path):
    recipe = write_recipe(tmp_path, reward_funcs=["test_bad_day:zero_reward"], save_strategy="no")
    code, stdout, stderr = launch(["--config", str(recipe)], {"PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'tests'}"})
    assert code == 0
    assert "zero reward variance" in stdout + stderr
    assert json.loads((tmp_path / "out" / "results.json").read_text())["zero_variance_windows"] == 2


def zero_reward(completions, **kwargs):
    return [0.0] * len(completions)


def _cache_env(tmp_path):
    return {"OPEN_R1_EXT_CACHE": str(tmp_path / "fresh_cache")}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"reward_funcs": ["exact_mach"]}, "Unknown reward function 'exact_mach'"),
        ({"reward_funcs": ["no_such_pkg.rewards:fn"]}, "Could not import reward function"),
        ({"num_generations": 0}, "num_generations: 0"),
        ({"max_completion_length": 0}, "max_completion_length: 0"),
    ],
)
def test_mistakes_are_found_before_the_model_is_built(tmp_path, overrides, message):
    recipe = write_recipe(tmp_path, **overrides)
    code, stdout, stderr = launch(["--config", str(recipe)], _cache_env(tmp_path))
    assert code == 2 and message in stderr, stdout[-2000:] + stderr[-2000:]
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) <= 8
    assert not (tmp_path / "fresh_cache").exists()  # no warm start was trained for a run that cannot start


def test_bad_data_files_get_clear_messages(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "header.csv").write_text("prompt,answer\n")
    (tmp_path / "noprompt.jsonl").write_text(json.dumps({"question": "1+1="}) + "\n")
    cases = {
        "missing.jsonl": "does not exist",
        "data/missing/": "does not exist",
        str(tmp_path / "empty.jsonl"): "has no rows",
        str(tmp_path / "header.csv"): "has only a header line",
        str(tmp_path / "noprompt.jsonl"): "neither a 'prompt' nor a 'problem' column",
    }
    for name, message in cases.items():
        recipe = write_recipe(tmp_path, dataset_name=name)
        code, stdout, stderr = launch(["--config", str(recipe)], _cache_env(tmp_path))
        assert code == 2 and message in stderr and "Traceback" not in stderr, (name, stderr[-2000:])
        assert "Hub" not in stderr and "OfflineModeIsEnabled" not in stderr
    assert not (tmp_path / "fresh_cache").exists()


def test_user_errors_are_one_message_and_debug_shows_the_traceback(tmp_path):
    recipe = write_recipe(tmp_path)
    code, stdout, stderr = launch(["--config", str(recipe), "--temperature", "hot"])
    assert code == 2 and "hot" in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) <= 4  # not the 200 lines of argparse usage
    code, _, stderr = launch(["--config", str(tmp_path / "nope.yaml")])
    assert code == 2 and "recipe file" in stderr and "does not exist" in stderr and "Traceback" not in stderr
    code, _, stderr = launch([])
    assert code == 2 and "usage:" in stderr and "--config RECIPE.yaml" in stderr and "bf16" not in stderr
    code, _, stderr = launch(["--config", str(recipe), "--num_generations", "0"], {"OPEN_R1_EXT_DEBUG": "1"})
    assert code != 0 and "Traceback" in stderr


def test_a_shaped_reward_is_known_to_plain_grpo():
    from open_r1_ext.core.rewards import REWARD_FUNCS, get_reward_funcs

    assert {"length_bonus", "diversity_bonus", "whitespace_penalty"} <= set(REWARD_FUNCS)
    (fn,) = get_reward_funcs(["length_bonus"])
    assert fn(["a b"], completion_ids=[[1, 2]]) == [0.1]


def test_results_after_a_resume_cover_the_whole_run(tmp_path):
    recipe = write_recipe(tmp_path, builtin_eval_every=1, max_steps=2)
    run([sys.executable, str(SCRIPT), "--config", str(recipe)])
    first = json.loads((tmp_path / "out" / "results.json").read_text())
    run([sys.executable, str(SCRIPT), "--config", str(recipe), "--max_steps", "4", "--save_steps", "4"])
    whole = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [c["step"] for c in whole["curve"]] == [1, 2, 3, 4]
    assert [p["step"] for p in whole["eval_curve"]] == [0, 1, 2, 3, 4]
    assert whole["accuracy_before"] == first["accuracy_before"]
    assert whole["curve"][:2] == first["curve"]
    per_step = whole["generated_tokens"] - first["generated_tokens"]
    assert first["generated_tokens"] > 0 and per_step > 0
    assert whole["generated_tokens"] == pytest.approx(whole["curve"][-1]["generated_tokens"])
    assert whole["train_seconds"] > first["train_seconds"]


def test_evaluate_script_agrees_with_the_launch_script(tmp_path):
    recipe = write_recipe(tmp_path, builtin_eval_samples=24, save_strategy="no")
    run([sys.executable, str(SCRIPT), "--config", str(recipe)])
    trained = json.loads((tmp_path / "out" / "results.json").read_text())["accuracy_after"]
    scores = []
    for batch in ("3", "64"):
        cmd = [sys.executable, str(ROOT / "launch" / "evaluate.py"), "--model", str(tmp_path / "out")]
        cmd += ["--task", TINY_RECIPE["dataset_name"].split(":")[1], "--n", "24", "--batch_size", batch]
        line = run(cmd).strip().splitlines()
        scores.append(json.loads([x for x in line if x.startswith("{")][-1])["pass@1"])
    assert scores == [trained, trained]


def test_bench_overhead_rejects_too_few_steps():
    done = subprocess.run(
        [sys.executable, str(ROOT / "launch" / "bench_overhead.py"), "--steps", "3", "--rounds", "1"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert done.returncode == 2 and "--steps must be >= 4" in done.stderr and "StatisticsError" not in done.stderr


def test_empty_reward_plot_is_not_written(tmp_path):
    from open_r1_ext.core.summary import plot_reward

    assert plot_reward([{"step": 1, "reward": math.inf}, {"step": 2, "reward": None}], tmp_path / "r.png") is None
    assert not (tmp_path / "r.png").exists()


@pytest.mark.parametrize("case", ["no key", "unreachable endpoint", "unknown model"])
def test_teacher_misconfiguration_stops_before_the_model_is_built(tmp_path, case):
    """The RLAIF recipe's key, endpoint and model are checked by the trainer's `preflight` before the warm start."""
    import socket

    from open_r1_ext.rlaif.fake_server import FakeMessagesServer

    recipe = ROOT / "recipes" / "rlaif_builtin_cpu.yaml"
    args = ["--config", str(recipe), "--output_dir", str(tmp_path / "out"), "--max_steps", "1"]
    args += ["--teacher_cache_path", str(tmp_path / "t.sqlite"), "--teacher_max_retries", "1"]
    args += ["--teacher_backoff_base_s", "0.01", "--teacher_backoff_max_s", "0.02"]
    env = {**_cache_env(tmp_path), "ANTHROPIC_API_KEY": "sk-test-not-a-real-key"}
    if case == "no key":
        env["ANTHROPIC_API_KEY"] = ""
        code, stdout, stderr = launch(args + ["--teacher_base_url", "http://127.0.0.1:9"], env)
        expected = "ANTHROPIC_API_KEY"
    elif case == "unreachable endpoint":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again: nothing listens there
        code, stdout, stderr = launch(args + ["--teacher_base_url", url], env)
        expected = "teacher_base_url"
    else:
        with FakeMessagesServer(api_key=env["ANTHROPIC_API_KEY"], known_models={"claude-sonnet-4-5"}) as srv:
            code, stdout, stderr = launch(args + ["--teacher_base_url", srv.url, "--teacher_model", "claude-x"], env)
        expected = "teacher_model='claude-x'"
    assert code == 2 and expected in stderr, stdout[-2000:] + stderr[-2000:]
    assert "Traceback" not in stderr and "sk-test-not-a-real-key" not in stdout + stderr
    assert not (tmp_path / "fresh_cache").exists()  # failed before the warm start of the student
