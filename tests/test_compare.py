"""The comparison harness end to end on a tiny recipe: paired seeds, the A/A arm, the table and the plot."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_launch import TINY_RECIPE


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_compare_runs_arms_in_parallel_and_prints_the_protocol_table(tmp_path):
    base = {**TINY_RECIPE, "save_strategy": "no", "builtin_eval_every": 1, "builtin_eval_samples": 16}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    spec = {
        "description": "tiny protocol check",
        "recipe": str(tmp_path / "base.yaml"),
        "seeds": [0, 1],
        "flags": {"max_steps": 2},
        "baseline": "grpo",
        "aa": True,
        "arms": {"grpo": {}, "hot": {"temperature": 1.5}},
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    out = tmp_path / "cmp"
    cmd = [sys.executable, str(ROOT / "launch/compare.py"), "--spec", str(tmp_path / "spec.yaml")]
    cmd += ["--out", str(out), "--jobs", "2"]
    env = {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "PYTHON": sys.executable}
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[compare] 6 runs to do" in done.stdout
    table = (out / "compare.md").read_text().splitlines()
    assert [row.split("|")[1].strip() for row in table[2:]] == ["grpo", "grpo (A/A)", "hot"]
    assert "A/A" in table[3] and "2 |" in table[3]
    assert (out / "compare.png").stat().st_size > 5000
    summary = json.loads((out / "compare.json").read_text())
    assert summary["seeds"] == [0, 1]
    # the A/A arm is the baseline with another sampling seed (same data order): its runs differ from the baseline's
    aa = json.loads((out / "grpo_A-A" / "seed_0" / "command.json").read_text())
    assert "--sampling_seed" in aa and aa[aa.index("--sampling_seed") + 1] == "1000"
    base_curve = json.loads((out / "grpo" / "seed_0" / "results.json").read_text())["curve"]
    aa_curve = json.loads((out / "grpo_A-A" / "seed_0" / "results.json").read_text())["curve"]
    assert base_curve != aa_curve

    # a second call reuses every finished run
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "[compare] 0 runs to do" in again.stdout


@pytest.mark.parametrize("spec", sorted((ROOT / "launch" / "benchmarks").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_benchmark_arm_parses_as_the_launch_script_will_run_it(spec):
    """A typo in a benchmark arm fails here, not after hours of the runs before it."""
    sys.path.insert(0, str(ROOT / "launch"))
    import compare

    from open_r1_ext.grpo import parse_args

    arms = compare.arms_from_spec(compare.load_spec(str(spec)))
    assert len(arms) >= 2
    for arm in arms:
        cmd = arm.command("python", 0, Path("/tmp/unused"), {}, [], "")
        _, training_args, _ = parse_args(cmd[2:])  # drop the interpreter and the script
        for key, value in arm.flags.items():
            if hasattr(training_args, key):
                assert getattr(training_args, key) == value, (arm.name, key)
