"""Char-level GRPO from random weights: language modelling as a game (seed 002). See `trainer.py` and `game.py`.

The exhaustive game (all characters scored) is cross-entropy plus n-gram distillation, exactly: its gradient is
that of `(1 + c pi(y)) CE + lambda H(q, pi) + beta KL(pi || q)`. The sampled game (K characters drawn per position,
only their rewards read) is the reinforcement-learning version.

Training goes through the launch script: `python src/open_r1_ext/grpo.py --config recipes/char_grpo_cpu_quick.yaml`.
"""

from .config import CharGRPOConfig
from .data import CharCorpus, CharTokenizer, load_corpus
from .game import (
    ADVANTAGE_NORMS,
    SAMPLERS,
    draw_group,
    game_loss,
    game_rewards,
    get_advantage_norm,
    proposal_logp,
    register_advantage_norm,
    sampled_coefficients,
    teacher_expected_reward,
)
from .health import HealthMonitor, expected_calibration_error
from .model import PRESETS, build_char_gpt2
from .ngram import NGramModel
from .trainer import CharGRPOTrainer


__all__ = [
    "ADVANTAGE_NORMS",
    "CharCorpus",
    "CharGRPOConfig",
    "CharGRPOTrainer",
    "CharTokenizer",
    "HealthMonitor",
    "NGramModel",
    "PRESETS",
    "SAMPLERS",
    "build_char_gpt2",
    "draw_group",
    "expected_calibration_error",
    "game_loss",
    "game_rewards",
    "get_advantage_norm",
    "load_corpus",
    "proposal_logp",
    "register_advantage_norm",
    "sampled_coefficients",
    "teacher_expected_reward",
]
