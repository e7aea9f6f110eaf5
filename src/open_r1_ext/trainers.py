"""Trainer dispatch: `trainer_type` in a recipe -> (config dataclass, trainer class).

Entries are import paths, resolved only when asked for, so the launch script never imports an idea it does not
run (and the core never imports any idea). A new trainer is one line here.
"""

from __future__ import annotations

import importlib


# name -> ("module:ConfigClass", "module:TrainerClass")
TRAINERS: dict[str, tuple[str, str]] = {
    "grpo": ("trl:GRPOConfig", "trl:GRPOTrainer"),
    "rlaif": ("open_r1_ext.rlaif.trainer:RLAIFConfig", "open_r1_ext.rlaif.trainer:RLAIFGRPOTrainer"),
    "char_grpo": ("open_r1_ext.char_rl.trainer:CharGRPOConfig", "open_r1_ext.char_rl.trainer:CharGRPOTrainer"),
    "compression": (
        "open_r1_ext.compression.trainer:CompressionConfig",
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
