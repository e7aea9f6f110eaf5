"""`TokenScavengerConfig`: `TokenAdaptiveConfig` (hence `GRPOConfig`) plus TokenScavenger (see `trainer.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from open_r1_ext.core.advantages import ESTIMATORS
from open_r1_ext.token_adaptive.config import TokenAdaptiveConfig

from .grouping import GROUPING_KEYS


TREE = "tree"  # the token-level estimator on the prefix tree (core.advantages.tree_token_advantages)
CAROUSEL_LOSSES = ("one_sided", "mse", "pg")


def grpo_weight_schedule(step: int, warmup_steps: int, ramp_steps: int, target: float) -> float:
    """GRPO loss weight at optimizer step `step` (0-based): 0 for `warmup_steps` steps, then `target * j /
    ramp_steps` at the j-th step after them (j = 1, 2, ...), `target` from then on (at once when `ramp_steps` is 0)."""
    if step < warmup_steps:
        return 0.0
    if ramp_steps <= 0:
        return target
    return target * min(1.0, (step - warmup_steps + 1) / ramp_steps)


@dataclass
class TokenScavengerConfig(TokenAdaptiveConfig):
    """`TokenAdaptiveConfig` (hence `GRPOConfig`) plus TokenScavenger. Defaults are the seed's where it gives one."""

    use_token_adaptive: bool = field(
        default=False,
        metadata={"help": "Token-adaptive sampling (see open_r1_ext.token_adaptive); off by default here."},
    )
    advantage_estimator: str = field(
        default="two_level",
        metadata={
            "help": f"Advantage estimator, one of {sorted([*ESTIMATORS, TREE])}; `grpo` keeps TRL's advantages; "
            "`tree` is the token-level two-level estimate on the token-adaptive prefix tree "
            "(core.advantages.tree_token_advantages: latent groups = prefix nodes; needs use_token_adaptive)."
        },
    )
    grouping_key: str = field(
        default="prefix",
        metadata={"help": f"Latent-group key for the two-level estimator, one of {sorted(GROUPING_KEYS)}."},
    )
    micro_weight: float = field(
        default=1.0, metadata={"help": "omega in A = macro + omega * micro (two-level estimator)."}
    )
    advantage_clamp_max: float | None = field(
        default=5.0, metadata={"help": "Clamp advantages to +-this (None: no clamp). The seed's 5.0."}
    )
    prefix_tokens: int = field(
        default=8,
        metadata={"help": "`prefix` key without token-adaptive sampling: rollouts sharing this many first tokens."},
    )
    hidden_num_clusters: int = field(
        default=2, metadata={"help": "`hidden` key: k-means clusters per prompt group (at most num_generations)."}
    )
    carousel_weight: float = field(
        default=0.1,
        metadata={"help": "Weight of the carousel replay term (carousel_loss) on stored successes (0: off)."},
    )
    carousel_loss: str = field(
        default="one_sided",
        metadata={
            "help": f"Carousel replay term, one of {CAROUSEL_LOSSES}: `one_sided` pulls a stored success's token "
            "log-probs up only where they fell below the stored ones (mean of relu(stored - now)^2); `mse` is the "
            "seed's two-sided (now - stored)^2 (also pushes down successes the policy came to prefer); `pg` an "
            "off-policy policy gradient on the stored successes, each token weighted by min(pi_now / mu_stored, "
            "carousel_ratio_cap) and by the success's reward above the current batch's mean."
        },
    )
    carousel_ratio_cap: float = field(
        default=2.0, metadata={"help": "`pg` carousel: truncation of the per-token ratio pi_now / mu_stored."}
    )
    carousel_size: int = field(default=256, metadata={"help": "Carousel capacity (rollouts, oldest evicted)."})
    carousel_reward_threshold: float = field(
        default=1.0, metadata={"help": "A rollout whose total weighted reward is >= this enters the carousel."}
    )
    carousel_batch_size: int = field(
        default=8, metadata={"help": "Rollouts replayed per micro-batch for the carousel term (cost: one forward)."}
    )
    loss_term_probe_every: int = field(
        default=50,
        metadata={
            "help": "Every this many optimizer steps (0: never), measure each extra loss term's gradient against the "
            "weighted GRPO term's on one micro-batch: `<term>_grad_ratio` (norm ratio) and `<term>_grad_cos` "
            "(cosine). One extra backward per term on that micro-batch; single-process runs only."
        },
    )
    ce_loss_weight: float = field(
        default=1.0,
        metadata={
            "help": "Weight of the cross-entropy anchor on the dataset's reference completions (column "
            "`completion`); 0 turns it off. Ignored, with a warning, when the dataset has no such column."
        },
    )
    grpo_loss_weight: float = field(
        default=0.25, metadata={"help": "GRPO loss weight once the warm-up and ramp are over (seed: 0.25)."}
    )
    rl_warmup_steps: int = field(
        default=100, metadata={"help": "Optimizer steps with GRPO loss weight 0 (pure CE anchor + carousel)."}
    )
    rl_ramp_steps: int = field(
        default=50, metadata={"help": "Steps over which the GRPO weight ramps linearly from 0 to grpo_loss_weight."}
    )
    entropy_target_vocab_fraction: float | None = field(
        default=None,
        metadata={"help": "If set (seed: 0.15), TRL's entropy_target becomes this * ln(vocab size)."},
    )
    entropy_follows_grpo_weight: bool = field(
        default=False,
        metadata={
            "help": "TRL's entropy bonus sits inside the GRPO loss, so the warm-up weight w_grpo scales it (0 during "
            "the warm-up). False (default): the bonus is added back with weight 1 - w_grpo, so it applies at its "
            "coefficient throughout; true: the seed's behaviour (the bonus scaled with GRPO)."
        },
    )
    # TRL fields whose defaults change: the seed's entropy control and KL-free loss.
    use_adaptive_entropy: bool = field(
        default=True, metadata={"help": "TRL's adaptive entropy control (Skywork-OR1), on as in the seed."}
    )
    entropy_target: float = field(
        default=1.5, metadata={"help": "Target mean token entropy (nats) for TRL's controller; the seed's 1.5."}
    )
    beta: float = field(default=0.0, metadata={"help": "KL coefficient; 0.0 as in the seed (no reference model)."})

    def __post_init__(self):
        super().__post_init__()
        if self.advantage_estimator not in ESTIMATORS and self.advantage_estimator != TREE:
            raise ValueError(
                f"advantage_estimator must be one of {sorted([*ESTIMATORS, TREE])}, got {self.advantage_estimator!r}"
            )
        if self.advantage_estimator == TREE:
            if not self.use_token_adaptive:
                raise ValueError(
                    "advantage_estimator='tree' credits the token-adaptive prefix tree: set use_token_adaptive"
                )
            self.tree_advantages = True
        if self.carousel_loss not in CAROUSEL_LOSSES:
            raise ValueError(f"carousel_loss must be one of {CAROUSEL_LOSSES}, got {self.carousel_loss!r}")
        if self.carousel_ratio_cap < 1.0:
            raise ValueError(f"carousel_ratio_cap must be >= 1, got {self.carousel_ratio_cap!r}")
        if self.grouping_key not in GROUPING_KEYS:
            raise ValueError(f"grouping_key must be one of {sorted(GROUPING_KEYS)}, got {self.grouping_key!r}")
        if self.advantage_estimator != "grpo":
            if self.scale_rewards not in ("group", "none"):
                raise ValueError(
                    f"advantage_estimator={self.advantage_estimator!r} normalises per group; scale_rewards must be "
                    f"'group' or 'none', got {self.scale_rewards!r}"
                )
            if self.multi_objective_aggregation != "sum_then_normalize":
                raise ValueError(
                    f"advantage_estimator={self.advantage_estimator!r} needs multi_objective_aggregation="
                    f"'sum_then_normalize', got {self.multi_objective_aggregation!r}"
                )
        for name in ("micro_weight", "carousel_weight", "ce_loss_weight", "grpo_loss_weight"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value >= 0.0):
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if self.advantage_clamp_max is not None and self.advantage_clamp_max <= 0:
            raise ValueError(f"advantage_clamp_max must be > 0 or None, got {self.advantage_clamp_max!r}")
        if self.loss_term_probe_every < 0:
            raise ValueError(f"loss_term_probe_every must be >= 0, got {self.loss_term_probe_every!r}")
        for name in ("prefix_tokens", "hidden_num_clusters", "carousel_size", "carousel_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("rl_warmup_steps", "rl_ramp_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        frac = self.entropy_target_vocab_fraction
        if frac is not None and not 0.0 < frac <= 1.0:
            raise ValueError(f"entropy_target_vocab_fraction must be in (0, 1] or None, got {frac!r}")
