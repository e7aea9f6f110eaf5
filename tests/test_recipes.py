"""Every recipe parses; bad recipes fail with a message that names the problem."""

from pathlib import Path

import pytest
import yaml

from open_r1_ext.core.configs import UserError
from open_r1_ext.grpo import parse_args
from open_r1_ext.trainers import TRAINERS, get_trainer_classes


ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


def test_there_are_recipes():
    assert len(RECIPES) >= 4


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_parses(recipe):
    # GPU recipes ask for bf16, which TrainingArguments refuses to even parse on a CPU-only machine unless told so
    script_args, training_args, model_args = parse_args(["--config", str(recipe), "--use_cpu", "true"])
    raw = yaml.safe_load(recipe.read_text())
    assert script_args.trainer_type == raw.get("trainer_type", "grpo")
    assert model_args.model_name_or_path == raw.get("model_name_or_path")  # None: the trainer builds its model
    config_cls, _ = get_trainer_classes(script_args.trainer_type)
    assert isinstance(training_args, config_cls)


def _write(tmp_path, recipe):
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump(recipe))
    return p


BASE = {
    "model_name_or_path": "builtin:addition",
    "dataset_name": "builtin:addition",
    "output_dir": "runs/x",
    "use_cpu": True,
}


def test_cli_overrides_recipe(tmp_path):
    p = _write(tmp_path, {**BASE, "learning_rate": 1e-3, "max_steps": 7})
    _, training_args, _ = parse_args(["--config", str(p), "--max_steps", "3"])
    assert training_args.max_steps == 3
    assert training_args.learning_rate == 1e-3


def test_unknown_key_fails_clearly(tmp_path):
    p = _write(tmp_path, {**BASE, "learnin_rate": 1e-3})
    with pytest.raises(ValueError, match=r"Unknown recipe keys .*'learnin_rate' \(did you mean 'learning_rate'\?\)"):
        parse_args(["--config", str(p)])


def test_wrong_type_fails_clearly(tmp_path):
    p = _write(tmp_path, {**BASE, "num_generations": [8], "beta": True, "reward_funcs": "exact_match"})
    with pytest.raises(ValueError, match="wrong type") as err:
        parse_args(["--config", str(p)])
    msg = str(err.value)
    assert "num_generations: [8]" in msg and "beta: True" in msg and "reward_funcs: 'exact_match'" in msg


def test_unparseable_string_fails_clearly(tmp_path):
    p = _write(tmp_path, {**BASE, "learning_rate": "fast"})
    # one message naming the setting and the bad value, not argparse's pages of usage
    with pytest.raises(UserError, match="learning_rate.*invalid float value: 'fast'") as err:
        parse_args(["--config", str(p)])
    assert "usage:" not in str(err.value)


def test_unknown_trainer_type_lists_known(tmp_path):
    p = _write(tmp_path, {**BASE, "trainer_type": "ppo"})
    with pytest.raises(ValueError, match="known trainer types: .*'grpo'"):
        parse_args(["--config", str(p)])
    assert "grpo" in TRAINERS
