"""Fail loudly when a TRL private hook that open-r1-ext trainers override changes shape.

The trainers subclass `trl.GRPOTrainer` and override narrow private methods; TRL does not promise their
signatures, so an upgrade that renames or reorders a parameter must stop the suite here, not corrupt training.
"""

import inspect

import pytest
import trl
from trl import GRPOTrainer


HOOKS = {
    "_generate_and_score_completions": ["self", "inputs"],
    "_calculate_rewards": ["self", "inputs", "prompts", "completions", "completion_ids_list"],
    "_compute_loss": ["self", "model", "inputs"],
    "_generate_single_turn": [
        "self",
        "prompt_ids",
        "images",
        "multimodal_fields",
        "num_generations",
        "has_tool_images",
    ],
    "_get_per_token_logps_and_entropies": [
        "self",
        "model",
        "input_ids",
        "attention_mask",
        "logits_to_keep",
        "batch_size",
        "compute_entropy",
    ],
    "_generate": ["self", "prompts"],
    "_prepare_inputs": ["self", "generation_batch"],
    "training_step": ["self", "model", "inputs", "num_items_in_batch"],
    "_save_checkpoint": ["self", "model", "trial"],
    "_load_optimizer_and_scheduler": ["self", "checkpoint"],
}


def test_trl_version_is_the_pinned_one():
    assert trl.__version__ == "1.16.0", "open-r1-ext pins trl==1.16.0; re-check every hook below before moving"


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_signature(name):
    fn = getattr(GRPOTrainer, name, None)
    assert fn is not None, f"GRPOTrainer.{name} no longer exists"
    params = list(inspect.signature(fn).parameters)
    expected = HOOKS[name]
    assert params[: len(expected)] == expected, f"GRPOTrainer.{name} signature changed: {params}"
