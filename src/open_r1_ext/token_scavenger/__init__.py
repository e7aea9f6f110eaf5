"""TokenScavenger (seed 000, GRPO part): two-level latent-group advantages, carousel memory alignment, CE-anchored
RL warm-up, TRL's entropy control and shaped rewards. See `trainer.py` for what changes w.r.t. GRPO."""

from open_r1_ext.core.advantages import ESTIMATORS, AdvantageEstimate, get_estimator, register_estimator

from .carousel import CarouselBuffer
from .config import TokenScavengerConfig, grpo_weight_schedule
from .grouping import GROUPING_KEYS, LatentBatch, get_grouping_key, register_grouping_key
from .trainer import ReferenceForward, TokenScavengerGRPOTrainer


__all__ = [
    "ESTIMATORS",
    "GROUPING_KEYS",
    "AdvantageEstimate",
    "CarouselBuffer",
    "LatentBatch",
    "ReferenceForward",
    "TokenScavengerConfig",
    "TokenScavengerGRPOTrainer",
    "get_estimator",
    "get_grouping_key",
    "grpo_weight_schedule",
    "register_estimator",
    "register_grouping_key",
]
