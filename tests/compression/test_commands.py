"""The prepare / train / evaluate / search commands on a tiny recipe (offline, under a minute).

Training is the launch script (`open_r1_ext.grpo`); prepare, evaluate and search are the scripts in `launch/`.
"""

import json
import sys
from pathlib import Path

import pytest
import yaml
from compression_testutils import TEXT


LAUNCH = str(Path(__file__).resolve().parents[2] / "launch")
if LAUNCH not in sys.path:  # the launch scripts import each other and `common` from their folder
    sys.path.insert(0, LAUNCH)


@pytest.fixture
def recipe(tmp_path):
    plays = tmp_path / "plays"
    plays.mkdir()
    for i in range(6):
        (plays / f"p{i}.txt").write_text(TEXT * (6 + i))
    r = {
        "trainer_type": "compression",
        "model_name_or_path": "scratch",
        "reward_funcs": [],
        "texts_folder": str(plays),
        "data_dir": str(tmp_path / "data"),
        "vocab_size": 280,
        "seq_len": 16,
        "recon_n_layer": 1,
        "recon_n_embd": 16,
        "recon_n_head": 2,
        "policy_hidden_size": 16,
        "policy_num_layers": 1,
        "recon_warm_start_steps": 3,
        "recon_warm_start_batch_size": 4,
        "output_dir": str(tmp_path / "run"),
        "max_steps": 2,
        "per_device_train_batch_size": 4,
        "num_generations": 2,
        "warmup_steps": 0,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "plot": False,
        "eval_num_sequences": 4,
        "similarity_model": "bow",
        "speed_repeats": 1,
    }
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump(r))
    return p, r


def test_prepare_train_evaluate(recipe, tmp_path):
    import compression_evaluate
    import compression_prepare

    from open_r1_ext.grpo import main, parse_args

    p, r = recipe
    meta = compression_prepare.main(["--config", str(p), "--max_sequences", "20"])
    assert meta["vocab_size"] == 280 and max(meta["num_sequences"].values()) <= 20
    results = main(*parse_args(["--config", str(p)]))  # = python src/open_r1_ext/grpo.py --config r.yaml
    assert results["trainer_type"] == "compression"
    assert (tmp_path / "run" / "compression_model.json").exists()
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["compression/warm_start_val_loss"] > 0  # the warm start's validation loss is reported
    assert saved["compression/objective"]["ratio_control"] == "learned"
    out = compression_evaluate.main(["--config", str(p)])
    ((name, group),) = out["groups"].items()
    assert name == "learned rate, λ=1.25"
    methods = group["summary"]["methods"]
    assert set(methods) == {"policy", "random", "frequency", "surprisal", "constant"}
    per_seq = out["per_sequence"][name][0]
    for method in methods:  # every baseline removes as many tokens as the policy, sequence by sequence
        assert per_seq[method]["removed"] == per_seq["policy"]["removed"], method
    assert out["speed"]["seq_len"] == 16 and out["speed"]["t_full_s"] > 0
    assert (tmp_path / "run" / "eval.md").read_text().startswith("**learned rate, λ=1.25**")
    assert (tmp_path / "run" / "rate_distortion.png").exists()


def test_search_is_resumable(recipe, tmp_path):
    import compression_search as search

    p, _ = recipe
    first = search.main(["--config", str(p), "--max-trials", "1", "--max_steps", "1"])
    assert first["trials"] == 1
    second = search.main(["--config", str(p), "--max-trials", "2", "--max_steps", "1"])
    assert second["trials"] == 2 and -2.0 <= second["best_value"] <= 1.0  # rate - λ · unrecovered share
    assert json.loads((tmp_path / "run" / "best_trial.json").read_text())["trials"] == 2
    # the resumed study draws new parameters, not trial 0's again (a sampler reseeded alike would repeat them)
    import optuna

    study = optuna.load_study(study_name="compression", storage=f"sqlite:///{tmp_path / 'run' / 'optuna.db'}")
    params = [t.params for t in study.trials]
    assert len(params) == 2 and params[0] != params[1]


def test_no_idea_imports_the_launch_script():
    """`grpo.py` loads the trainers by name, so a trainer package importing it would be a hidden loop."""
    root = Path(__file__).resolve().parents[2] / "src" / "open_r1_ext"
    for package in ("compression", "char_rl"):
        for path in sorted((root / package).glob("*.py")):
            text = path.read_text()
            assert "open_r1_ext.grpo" not in text and "from open_r1_ext import grpo" not in text, path
