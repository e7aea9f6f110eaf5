"""Trainer dispatch: `trainer_type` in a recipe -> (config dataclass, trainer class), and the launch protocol.

Entries are import paths, resolved only when asked for, so the launch script never imports an idea it does not
run (and the core never imports any idea). A new trainer is one line here.

What the launch script (`src/open_r1_ext/grpo.py`) asks of a trainer class is `LaunchProtocol` below: it is built as
`trainer_cls(model=, reward_funcs=, args=, train_dataset=, eval_dataset=, processing_class=, peft_config=,
callbacks=)`, like TRL's `GRPOTrainer`, and may declare three optional members. No idea imports the launch script.
"""

from __future__ import annotations

import importlib
from typing import Protocol


class LaunchProtocol(Protocol):
    """The optional members the launch script looks for on a trainer class (all may be absent).

    - `build_model_and_data(script_args, training_args, model_args) -> {"model", "processing_class",
      "dataset"}` (classmethod): for trainers whose model and data are not a causal LM and prompts (the char-level
      game, compression, the DeepMime student); `dataset` is a `DatasetDict`. Without it the launch script loads
      `model_name_or_path` and `dataset_name` itself (`core.data.load_datasets`).
    - `provides_reward_funcs: bool`: the trainer brings its own reward (the RLAIF teacher, DeepMime's teacher
      log-prob), so a recipe may give `reward_funcs: []`.
    - `summary_results() -> dict` (method): trainer-specific figures merged into `results.json` after training
      (validation bits/char, compression ratio, ...).
    - `preflight(script_args, training_args) -> None` (classmethod): checks that need no model (an API key, an
      endpoint), run before anything is loaded or warm-started; raise `core.configs.UserError` with what to fix.
    """

    provides_reward_funcs: bool

    @classmethod
    def build_model_and_data(cls, script_args, training_args, model_args) -> dict: ...

    def summary_results(self) -> dict: ...

    @classmethod
    def preflight(cls, script_args, training_args) -> None: ...


# name -> ("module:ConfigClass", "module:TrainerClass")
TRAINERS: dict[str, tuple[str, str]] = {
    "grpo": ("trl:GRPOConfig", "trl:GRPOTrainer"),
    "rlaif": ("open_r1_ext.rlaif.config:RLAIFConfig", "open_r1_ext.rlaif.trainer:RLAIFGRPOTrainer"),
    "char_grpo": ("open_r1_ext.char_rl.config:CharGRPOConfig", "open_r1_ext.char_rl.trainer:CharGRPOTrainer"),
    "compression": (
        "open_r1_ext.compression.config:CompressionConfig",
        "open_r1_ext.compression.trainer:CompressionTrainer",
    ),
    "token_adaptive": (
        "open_r1_ext.token_adaptive.config:TokenAdaptiveConfig",
        "open_r1_ext.token_adaptive.trainer:TokenAdaptiveGRPOTrainer",
    ),
    "token_scavenger": (
        "open_r1_ext.token_scavenger.config:TokenScavengerConfig",
        "open_r1_ext.token_scavenger.trainer:TokenScavengerGRPOTrainer",
    ),
    "deepmime": ("open_r1_ext.deepmime.config:DeepMimeConfig", "open_r1_ext.deepmime.trainer:DeepMimeTrainer"),
}


def _load(path: str):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def get_trainer_classes(trainer_type: str):
    """Return `(config_cls, trainer_cls)` for `trainer_type`, failing with the list of known names."""
    if trainer_type not in TRAINERS:
        raise ValueError(f"Unknown trainer_type {trainer_type!r}; known trainer types: {sorted(TRAINERS)}")
    config_path, trainer_path = TRAINERS[trainer_type]
    return _load(config_path), _load(trainer_path)
