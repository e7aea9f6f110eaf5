"""`DeepMimeConfig`: `TokenScavengerConfig` (hence `GRPOConfig`) plus DeepMime (see `trainer.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from open_r1_ext.token_scavenger.config import TokenScavengerConfig


TEACHER_PRESETS = {
    "1.3b": "deepseek-ai/deepseek-coder-1.3b-base",
    "33b": "deepseek-ai/deepseek-coder-33b-base",
}
MEMORY_INITS = ("teacher_weights", "teacher_hybrid", "random")


@dataclass
class DeepMimeConfig(TokenScavengerConfig):
    """`TokenScavengerConfig` (hence `GRPOConfig`) plus DeepMime. Defaults are the seed's where it gives one."""

    # ---- teacher
    teacher_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Teacher causal LM: hub id, local path, or `builtin:<task>`. Overrides teacher_arch."},
    )
    teacher_arch: str | None = field(
        default="1.3b",
        metadata={"help": f"Teacher preset when no teacher_model_name_or_path is given: {TEACHER_PRESETS}."},
    )
    teacher_dtype: str = field(default="auto", metadata={"help": "Teacher dtype: auto, float32, bfloat16 or float16."})
    teacher_warm_start_steps: int = field(
        default=600, metadata={"help": "Supervised warm-start steps of a `builtin:<task>` teacher (cached)."}
    )
    # ---- student (auto-created when no model is given)
    student_hidden_size: int = field(default=1024, metadata={"help": "Auto-created student: hidden size."})
    student_num_layers: int = field(default=6, metadata={"help": "Auto-created student: transformer layers."})
    student_num_heads: int = field(default=4, metadata={"help": "Auto-created student: attention heads."})
    student_intermediate_size: int | None = field(
        default=None, metadata={"help": "Auto-created student: MLP width (None: 8/3 * hidden rounded to 64)."}
    )
    student_max_position_embeddings: int = field(
        default=2048, metadata={"help": "Auto-created student: maximum sequence length."}
    )
    memory_slots: int = field(default=64, metadata={"help": "Key-value memory slots of the student."})
    memory_latent_dim: int = field(default=128, metadata={"help": "Latent dimension of memory keys/values."})
    num_experts: int = field(default=4, metadata={"help": "Experts reading the memory."})
    num_experts_per_tok: int = field(default=2, metadata={"help": "Experts active per token (top-k routing)."})
    memory_scale_init: float = field(
        default=2.0,
        metadata={
            "help": "Initial sharpness of the memory read: slot logits are tau * cos(q, k) with tau (learned) starting "
            "at this * sqrt(memory_latent_dim), i.e. logits of std ~this over random keys (model.py)."
        },
    )
    memory_init: str = field(
        default="teacher_weights",
        metadata={
            "help": f"How a fresh student's memory starts, one of {MEMORY_INITS}: the teacher's principal "
            "directions, the seed's hybrid codes, or random (see encoders.py)."
        },
    )
    # ---- losses
    hidden_loss_weight: float = field(
        default=0.275, metadata={"help": "Weight of the MSE between projected student and teacher hidden states."}
    )
    balance_loss_weight: float = field(
        default=0.01,
        metadata={"help": "Weight of the MoE load-balancing loss (Mixtral's; 2.0 at balance). Switch: 1e-2."},
    )
    router_z_loss_weight: float = field(
        default=1e-3,
        metadata={"help": "Weight of ST-MoE's router z-loss, mean logsumexp(router logits)^2 (ST-MoE: 1e-3; 0: off)."},
    )
    kd_loss_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of token-level distillation, kd_temperature^2 * KL(teacher || student) of the next-token "
            "distributions on the reference completion (the same forward as the CE anchor; 0: off)."
        },
    )
    kd_temperature: float = field(default=1.0, metadata={"help": "Softmax temperature of the distillation term."})
    default_dataset: str = field(
        default="builtin:running_sum",
        metadata={"help": "Dataset of the manual loop when no train_dataset is given (`builtin:<task>`)."},
    )
    # ---- changed defaults
    num_generations: int | None = field(default=4, metadata={"help": "Rollouts per prompt (seed: group of 4)."})
    carousel_weight: float = field(
        default=0.0, metadata={"help": "TokenScavenger's carousel (off: the teacher's reward is never >= 1)."}
    )
    learning_rate: float = field(default=5e-4, metadata={"help": "Learning rate (seed: 5e-4)."})

    def __post_init__(self):
        super().__post_init__()
        if self.teacher_model_name_or_path is None and self.teacher_arch not in TEACHER_PRESETS:
            raise ValueError(
                f"teacher_arch must be one of {sorted(TEACHER_PRESETS)} when no teacher_model_name_or_path is "
                f"given, got {self.teacher_arch!r}"
            )
        if self.memory_init not in MEMORY_INITS:
            raise ValueError(f"memory_init must be one of {MEMORY_INITS}, got {self.memory_init!r}")
        if self.teacher_dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"teacher_dtype must be auto, float32, bfloat16 or float16, got {self.teacher_dtype!r}")
        for name in ("hidden_loss_weight", "balance_loss_weight", "router_z_loss_weight", "kd_loss_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("kd_temperature", "memory_scale_init"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 1 <= self.num_experts_per_tok <= self.num_experts:
            raise ValueError(
                f"num_experts_per_tok must be in [1, num_experts={self.num_experts}], got {self.num_experts_per_tok!r}"
            )

    def get_teacher_model_id(self) -> str:
        """The teacher's hub id, local path or `builtin:<task>` (the seed's `Config.get_teacher_model_id()`)."""
        return self.teacher_model_name_or_path or TEACHER_PRESETS[self.teacher_arch]
