"""`TokenAdaptiveConfig`: `GRPOConfig` plus the token-adaptive sampler (see `trainer.py` for what it does)."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig


BRANCH_RULES = ("relative", "absolute")


@dataclass
class TokenAdaptiveConfig(GRPOConfig):
    """`GRPOConfig` plus the token-adaptive sampler.

    Where a rollout branches: `branch_rule: relative` (default) takes its highest-entropy position between
    `branch_min_fraction` and `branch_max_fraction` of its length (as FR3E and TreePO branch at the uncertain tokens
    of a rollout, not at a fixed threshold); `absolute` takes the first position at or after `min_prefix_length`
    whose max-probability is below `uncertainty_threshold` or whose entropy is above `entropy_threshold` (the seed's
    rule). Uncertainty is measured on `softmax(logits / temperature)`: exactly from the logits on the transformers
    path, from the top `vllm_logprobs_top_k` logprobs with vLLM.

    Continuations are sampled at the training temperature unless `adaptive_temperature_scale != 1`; such samples
    are then importance-weighted per token with `min(pi_T / mu, importance_ratio_cap)` (on the transformers path from
    the logits `generate` sees; on vLLM through TRL's correction in `token_truncate` mode). With
    `tree_advantages`, tokens of a shared prefix get the prefix node's advantage credited once over its siblings and
    continuation tokens their leaf's advantage against the node (`core.advantages.tree_token_advantages`).
    """

    use_token_adaptive: bool = field(
        default=True,
        metadata={"help": "Assemble groups from first rollouts and prefix resamples; false is plain GRPOTrainer."},
    )
    branch_rule: str = field(
        default="relative",
        metadata={
            "help": "Where a first rollout branches: `relative` (its entropy peak between branch_min_fraction and "
            "branch_max_fraction of its length; the rollout is generated to its end and kept) or `absolute` (the "
            "first position >= min_prefix_length past uncertainty_threshold / entropy_threshold)."
        },
    )
    branch_min_fraction: float = field(
        default=0.2,
        metadata={"help": "`relative`: earliest branch point, as a fraction of the rollout's length (at least 1)."},
    )
    branch_max_fraction: float = field(
        default=0.8,
        metadata={"help": "`relative`: latest branch point, as a fraction of the rollout's length."},
    )
    uncertainty_threshold: float = field(
        default=0.7,
        metadata={
            "help": "`absolute`: a generated position whose next-token max-probability is below this is a failure."
        },
    )
    entropy_threshold: float = field(
        default=2.0,
        metadata={
            "help": "`absolute`: a generated position whose next-token entropy (nats) is above this is a failure."
        },
    )
    min_prefix_length: int = field(
        default=15,
        metadata={"help": "`absolute`: positions before this never count as failures (the shortest prefix kept)."},
    )
    max_resamples_per_prefix: int = field(
        default=3, metadata={"help": "At most this many continuations are resampled from one prefix per step."}
    )
    adaptive_temperature_scale: float = field(
        default=1.0,
        metadata={
            "help": "The k-th resample of a prefix is sampled at `temperature * adaptive_temperature_scale**k`. 1.0 "
            "(default) keeps continuations on-policy; otherwise they are importance-weighted (importance_ratio_cap)."
        },
    )
    importance_ratio_cap: float = field(
        default=2.0,
        metadata={
            "help": "Truncation of the per-token importance weight pi_T / mu of continuations sampled at another "
            "temperature than the training one (transformers path; with vLLM, TRL's vllm_importance_sampling_clip_max applies)."
        },
    )
    tree_advantages: bool = field(
        default=True,
        metadata={
            "help": "Token-level tree credit: a prefix shared by k siblings carries its node's advantage once in total, "
            "continuation tokens their leaf's advantage against the node. False: every token gets its sequence's "
            "GRPO advantage (shared prefixes are credited once per sibling)."
        },
    )
    first_rollout_fraction: float = field(
        default=0.25,
        metadata={
            "help": "Share of each group sampled as first rollouts (rounded, at least 1); resamples and, when no "
            "prefix has resamples left, plain rollouts fill the rest."
        },
    )
    keep_failed_rollouts: bool | None = field(
        default=None,
        metadata={
            "help": "Keep a branched first rollout in its group as a leaf (its base trajectory). None (default): keep it "
            "whenever the backend generated it to its end anyway (relative branching, or vLLM); true with `absolute` "
            "on the transformers path generates it to its end instead of stopping at the failure point."
        },
    )
    vllm_logprobs_top_k: int = field(
        default=20,
        metadata={"help": "Top logprobs per position requested from vLLM for first rollouts (approximate entropy)."},
    )

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.uncertainty_threshold <= 1.0:
            raise ValueError(f"uncertainty_threshold must be in [0, 1], got {self.uncertainty_threshold!r}")
        if not (isinstance(self.entropy_threshold, (int, float)) and self.entropy_threshold >= 0.0):
            raise ValueError(f"entropy_threshold must be >= 0 nats, got {self.entropy_threshold!r}")
        if self.min_prefix_length < 1:
            raise ValueError(f"min_prefix_length must be >= 1, got {self.min_prefix_length!r}")
        if self.max_resamples_per_prefix < 1:
            raise ValueError(f"max_resamples_per_prefix must be >= 1, got {self.max_resamples_per_prefix!r}")
        if self.adaptive_temperature_scale <= 0.0:
            raise ValueError(f"adaptive_temperature_scale must be > 0, got {self.adaptive_temperature_scale!r}")
        if not 0.0 < self.first_rollout_fraction <= 1.0:
            raise ValueError(f"first_rollout_fraction must be in (0, 1], got {self.first_rollout_fraction!r}")
        if self.vllm_logprobs_top_k < 1:
            raise ValueError(f"vllm_logprobs_top_k must be >= 1, got {self.vllm_logprobs_top_k!r}")
        if self.branch_rule not in BRANCH_RULES:
            raise ValueError(f"branch_rule must be one of {BRANCH_RULES}, got {self.branch_rule!r}")
        if not 0.0 <= self.branch_min_fraction < self.branch_max_fraction <= 1.0:
            raise ValueError(
                "branch_min_fraction and branch_max_fraction must satisfy 0 <= min < max <= 1, got "
                f"{self.branch_min_fraction!r} and {self.branch_max_fraction!r}"
            )
        if self.importance_ratio_cap < 1.0:
            raise ValueError(f"importance_ratio_cap must be >= 1, got {self.importance_ratio_cap!r}")
        if self.use_token_adaptive and self.tree_advantages and self.scale_rewards == "batch":
            raise ValueError(
                "tree_advantages scales by the prompt group's reward std (scale_rewards: group) or not at all "
                "(none); scale_rewards='batch' is not supported with it"
            )
        if self.use_token_adaptive and self.use_vllm and self.adaptive_temperature_scale != 1.0:
            # sequence-level masking drops most hot continuations (their ratio is far from 1); correct per token
            self.vllm_importance_sampling_mode = "token_truncate"
        if (
            self.use_token_adaptive
            and self.branch_rule == "absolute"
            and self.min_prefix_length >= self.max_completion_length
        ):
            raise ValueError(
                f"min_prefix_length ({self.min_prefix_length!r}) must be below max_completion_length "
                f"({self.max_completion_length!r}), or no rollout can ever be cut"
            )
        if self.use_token_adaptive and self.use_transformers_continuous_batching:
            raise ValueError(
                "use_token_adaptive needs per-token logits while sampling, which "
                "use_transformers_continuous_batching=True does not expose; use the default generate path or vLLM"
            )

    def keeps_base(self, use_vllm: bool) -> bool:
        """Whether a branched first rollout stays in its group (see `keep_failed_rollouts`)."""
        if self.keep_failed_rollouts is not None:
            return self.keep_failed_rollouts
        return use_vllm or self.branch_rule == "relative"
