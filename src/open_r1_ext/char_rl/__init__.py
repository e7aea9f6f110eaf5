"""Char-level GRPO from random weights: language modelling as a game (seed 002). See `trainer.py` and `game.py`.

Training goes through the launch script: `python src/open_r1_ext/grpo.py --config recipes/char_grpo_cpu_quick.yaml`.
"""

from .config import CharGRPOConfig
from .data import CharCorpus, CharTokenizer, load_corpus
from .game import ADVANTAGE_NORMS, game_loss, game_rewards, get_advantage_norm, register_advantage_norm
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
    "build_char_gpt2",
    "expected_calibration_error",
    "game_loss",
    "game_rewards",
    "get_advantage_norm",
    "load_corpus",
    "register_advantage_norm",
]
