"""open-r1-ext: reinforcement-learning trainers for language models, built as extensions of TRL's GRPOTrainer.

Trainer classes are imported lazily, so `import open_r1_ext` stays light and an idea's dependencies load only
when it is used.
"""

from __future__ import annotations

import importlib


__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "GRPOScriptArguments": "open_r1_ext.core.configs",
    "REWARD_FUNCS": "open_r1_ext.core.rewards",
    "get_reward_funcs": "open_r1_ext.core.rewards",
    "register_reward": "open_r1_ext.core.rewards",
    "TRAINERS": "open_r1_ext.trainers",
    "get_trainer_classes": "open_r1_ext.trainers",
    # token-adaptive GRPO (issue 3)
    "TokenAdaptiveConfig": "open_r1_ext.token_adaptive.config",
    "TokenAdaptiveGRPOTrainer": "open_r1_ext.token_adaptive.trainer",
    # TokenScavenger advantage shaping (issue 4)
    "TokenScavengerConfig": "open_r1_ext.token_scavenger.config",
    "TokenScavengerGRPOTrainer": "open_r1_ext.token_scavenger.trainer",
    # DeepMime distillation (issue 5)
    "DeepMimeConfig": "open_r1_ext.deepmime.config",
    "DeepMimeTrainer": "open_r1_ext.deepmime.trainer",
    "DeepMimeStudentConfig": "open_r1_ext.deepmime.model",
    "DeepMimeStudentForCausalLM": "open_r1_ext.deepmime.model",
    # token compression (issue 7)
    "CompressionConfig": "open_r1_ext.compression.config",
    "CompressionTrainer": "open_r1_ext.compression.trainer",
    # char-level RL (issue 8)
    "CharGRPOConfig": "open_r1_ext.char_rl.config",
    "CharGRPOTrainer": "open_r1_ext.char_rl.trainer",
    # teacher-scored RLAIF (issue 6)
    "AnthropicTeacher": "open_r1_ext.rlaif.teacher",
    "TeacherConfig": "open_r1_ext.rlaif.config",
    "RLAIFConfig": "open_r1_ext.rlaif.config",
    "RLAIFGRPOTrainer": "open_r1_ext.rlaif.trainer",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'open_r1_ext' has no attribute {name!r}")
