"""DeepMime (seed 000, distillation part): a memory/MoE student distilled from a teacher causal LM with CE + GRPO +
hidden-state losses, its memory initialised from weight-encoded teacher matrices. See `trainer.py`."""

from .config import TEACHER_PRESETS, DeepMimeConfig
from .encoders import (
    HybridWeightEncoder,
    PCAWeightEncoder,
    SparseWeightEncoder,
    encode_teacher,
    init_memory_from_teacher,
    weight_statistics,
)
from .model import DeepMimeStudentConfig, DeepMimeStudentForCausalLM, DeepMimeStudentModel, MoEMemory
from .trainer import (
    DeepMimeTrainer,
    TeacherLogProbReward,
    create_student,
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
    "SparseWeightEncoder",
    "TeacherLogProbReward",
    "create_student",
    "encode_teacher",
    "init_memory_from_teacher",
    "load_teacher",
    "weight_statistics",
]
