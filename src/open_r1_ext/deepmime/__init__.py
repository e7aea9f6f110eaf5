"""DeepMime (seed 000, distillation part): a memory/MoE student distilled from a teacher causal LM with CE + GRPO +
hidden-state losses, its memory initialised from weight-encoded teacher matrices. See `trainer.py`."""

from .config import TEACHER_PRESETS, DeepMimeConfig
from .diagnostics import memory_diagnostics
from .encoders import (
    HybridWeightEncoder,
    PCAWeightEncoder,
    PrincipalDirectionEncoder,
    SparseWeightEncoder,
    effective_rank,
    encode_teacher,
    init_memory_from_teacher,
    matrix_descriptor,
    matrix_type_accuracy,
    weight_statistics,
)
from .model import (
    DeepMimeStudentConfig,
    DeepMimeStudentForCausalLM,
    DeepMimeStudentModel,
    MoEMemory,
    memory_ablated,
    normalised_entropy,
)
from .trainer import (
    DeepMimeTrainer,
    TeacherLogProbReward,
    create_student,
    distillation_kl,
    load_teacher,
)


__all__ = [
    "TEACHER_PRESETS",
    "DeepMimeConfig",
    "DeepMimeStudentConfig",
    "DeepMimeStudentForCausalLM",
    "DeepMimeStudentModel",
    "DeepMimeTrainer",
    "HybridWeightEncoder",
    "MoEMemory",
    "PCAWeightEncoder",
    "PrincipalDirectionEncoder",
    "SparseWeightEncoder",
    "TeacherLogProbReward",
    "create_student",
    "distillation_kl",
    "effective_rank",
    "encode_teacher",
    "init_memory_from_teacher",
    "load_teacher",
    "matrix_descriptor",
    "matrix_type_accuracy",
    "memory_ablated",
    "memory_diagnostics",
    "normalised_entropy",
    "weight_statistics",
]
