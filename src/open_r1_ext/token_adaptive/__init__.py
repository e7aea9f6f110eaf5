"""Token-adaptive GRPO (seed 004): cut rollouts at uncertain tokens and resample from the prefix at a higher
temperature, training on what the adaptive sampler produced. See `trainer.py` for what changes w.r.t. GRPO."""

from .config import TokenAdaptiveConfig
from .sampling import AssemblyStats, Completion, Sampled, assemble_groups, first_rollouts_per_group
from .trainer import TokenAdaptiveGRPOTrainer
from .uncertainty import NO_FAILURE, UncertaintyMonitor, find_failure_points, token_uncertainty, topk_uncertainty


__all__ = [
    "NO_FAILURE",
    "AssemblyStats",
    "Completion",
    "Sampled",
    "TokenAdaptiveConfig",
    "TokenAdaptiveGRPOTrainer",
    "UncertaintyMonitor",
    "assemble_groups",
    "find_failure_points",
    "first_rollouts_per_group",
    "token_uncertainty",
    "topk_uncertainty",
]
