"""The launch script end to end: parse a recipe, train a couple of steps, resume, and run on two processes."""

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "src" / "open_r1_ext" / "grpo.py"

TINY_RECIPE = {
    "trainer_type": "grpo",
    "model_name_or_path": "builtin:running_sum",
    "warm_start_steps": 3,
    "dataset_name": "builtin:running_sum",
    "builtin_num_train": 64,
    "builtin_eval_samples": 8,
    "reward_funcs": ["exact_match", "partial_credit"],
    "max_steps": 2,
    "learning_rate": 1e-3,
    "per_device_train_batch_size": 8,
    "num_generations": 4,
    "max_completion_length": 8,
    "logging_steps": 1,
    "save_strategy": "steps",
    "save_steps": 2,
    "report_to": "none",
    "use_cpu": True,
    "seed": 0,
}


def write_recipe(tmp_path, **overrides) -> Path:
    recipe = {**TINY_RECIPE, "output_dir": str(tmp_path / "out"), **overrides}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def run(cmd, timeout=600):
    """Run `cmd`; on a timeout kill its whole process group (torchrun's workers too) before failing."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"command timed out after {timeout}s:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    assert proc.returncode == 0, f"command failed ({proc.returncode}):\n{stdout[-3000:]}\n{stderr[-5000:]}"
    return stdout + stderr


def test_launch_script_trains_two_steps_and_resumes(tmp_path):
    recipe = write_recipe(tmp_path)
    out = run([sys.executable, str(SCRIPT), "--config", str(recipe)])
    assert "[eval] held-out accuracy before training" in out
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["trainer_type"] == "grpo"
    assert len(results["curve"]) == 2 and results["generated_tokens"] > 0
    assert 0.0 <= results["accuracy_after"] <= 1.0
    assert (tmp_path / "out" / "reward.png").stat().st_size > 1000
    assert (tmp_path / "out" / "checkpoint-2").is_dir()

    # a second launch with more steps resumes from checkpoint-2 rather than starting over
    out = run([sys.executable, str(SCRIPT), "--config", str(recipe), "--max_steps", "3"])
    assert "Resuming from checkpoint" in out
    state = json.loads((tmp_path / "out" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert [h["step"] for h in state["log_history"] if "reward" in h] == [1, 2, 3]


def test_heldout_curve_every_step_and_sampling_seed(tmp_path):
    """`builtin_eval_every` scores held-out accuracy during training; `sampling_seed` changes only the sampling."""
    recipe = write_recipe(tmp_path, builtin_eval_every=1, save_strategy="no", max_steps=2)
    run([sys.executable, str(SCRIPT), "--config", str(recipe), "--sampling_seed", "5"])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    curve = results["eval_curve"]
    assert [p["step"] for p in curve] == [0, 1, 2]
    assert curve[0]["generated_tokens"] == 0 and curve[0]["seconds"] == 0
    tokens_by_step = {c["step"]: c["generated_tokens"] for c in results["curve"]}
    assert [p["generated_tokens"] for p in curve[1:]] == [tokens_by_step[1], tokens_by_step[2]]
    assert results["accuracy_before"] == curve[0]["pass@1"] and results["accuracy_after"] == curve[-1]["pass@1"]
    assert "greedy" in curve[0] and results["eval_seconds"] > 0
    assert (tmp_path / "out" / "heldout.png").stat().st_size > 1000

    # same sampling seed: the same run again; another sampling seed: other samples from the same data
    def sampled(sampling_seed, name):
        out = tmp_path / name
        cmd = [sys.executable, str(SCRIPT), "--config", str(recipe), "--output_dir", str(out)]
        run(cmd + ["--sampling_seed", str(sampling_seed), "--builtin_eval_samples", "0"])
        res = json.loads((out / "results.json").read_text())
        return [(c["reward"], c["generated_tokens"]) for c in res["curve"]]

    same_a, same_b, other = sampled(5, "a"), sampled(5, "b"), sampled(6, "c")
    assert same_a == same_b
    assert other != same_a


TOKEN_ADAPTIVE = {"trainer_type": "token_adaptive", "min_prefix_length": 2, "uncertainty_threshold": 0.99}


@pytest.mark.distributed
@pytest.mark.parametrize("overrides", [{}, TOKEN_ADAPTIVE], ids=["grpo", "token_adaptive"])
def test_two_process_cpu_run(tmp_path, overrides):
    """Two CPU processes (gloo) through torchrun: generation, gathered rewards and DDP gradients.

    torchrun rather than `accelerate launch`: accelerate's multi-CPU launcher needs MPI (mpirun), which a plain
    machine lacks; the script and TRL still run under accelerate's MULTI_CPU state.
    """
    recipe = write_recipe(tmp_path, per_device_train_batch_size=4, save_strategy="no", **overrides)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    out = run([*cmd, str(SCRIPT), "--config", str(recipe)])
    assert out.count("[done]") == 1  # results written once, by the main process
    state = json.loads((tmp_path / "out" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["world_size"] == 2
    # 2 processes x 4 completions per step (8 tokens at most each): the summary counts the global batch
    logs = [h for h in state["log_history"] if "reward" in h]
    if overrides:
        # each process resampled its own prompts; the logged counts are gathered over both
        assert all(h["adaptive/truncation_rate"] > 0 for h in logs)
        assert all(h["adaptive/total_rollouts"] >= 2 * 4 for h in logs)
        assert results["generated_tokens"] > 0
    else:
        # 2 processes x 4 completions per step (8 tokens at most each): the summary counts the global batch
        assert 8 * 2 < results["generated_tokens"] <= 2 * 4 * 8 * 2


@pytest.mark.distributed
def test_two_process_compression_run(tmp_path):
    """The compression trainer's policy -> sample -> reconstruct step on two processes (gradients averaged by hand)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(SCRIPT)]
    cmd += ["--config", str(ROOT / "recipes" / "compression_integration.yaml"), "--output_dir", str(tmp_path / "out")]
    run([*cmd, "--data_dir", str(tmp_path / "data"), "--save_strategy", "no"])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["world_size"] == 2 and results["trainer_type"] == "compression"
    assert all(math.isfinite(c["reward"]) for c in results["curve"])
