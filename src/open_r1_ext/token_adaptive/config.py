"""`TokenAdaptiveConfig`: `GRPOConfig` plus the token-adaptive sampler (see `trainer.py` for what it does)."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig


@dataclass
class TokenAdaptiveConfig(GRPOConfig):
    """`GRPOConfig` plus the token-adaptive sampler. Defaults are the seed's; the rest make the method well defined.

    Uncertainty is measured on `softmax(logits / temperature)`: exactly from the logits on the transformers path,
    from the top `vllm_logprobs_top_k` logprobs with vLLM.
    """

    use_token_adaptive: bool = field(
        default=True,
        metadata={"help": "Assemble groups from first rollouts and prefix resamples; false is plain GRPOTrainer."},
    )
    uncertainty_threshold: float = field(
        default=0.7,
        metadata={"help": "A generated position whose next-token max-probability is below this is a failure."},
    )
    entropy_threshold: float = field(
        default=2.0,
        metadata={"help": "A generated position whose next-token entropy (nats) is above this is a failure."},
    )
    min_prefix_length: int = field(
        default=15,
        metadata={"help": "Positions before this never count as failures: the shortest prefix kept for resampling."},
    )
    max_resamples_per_prefix: int = field(
        default=3, metadata={"help": "At most this many continuations are resampled from one prefix per step."}
    )
    adaptive_temperature_scale: float = field(
        default=1.2,
        metadata={
            "help": "The k-th resample of a prefix is sampled at `temperature * adaptive_temperature_scale**k`."
        },
    )
    first_rollout_fraction: float = field(
        default=0.5,
        metadata={
            "help": "Share of each group sampled as first rollouts (rounded, at least 1); resamples and, when no "
            "prefix has resamples left, plain rollouts fill the rest."
        },
    )
    keep_failed_rollouts: bool = field(
        default=False,
        metadata={
            "help": "Generate first rollouts with a failure point to the end and train on them too (with their full "
            "reward), besides their resamples. Default false: they are cut at the failure point (saving the tokens "
            "after it) and only their prefix enters training, through its continuations."
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
        if self.use_token_adaptive and self.min_prefix_length >= self.max_completion_length:
            raise ValueError(
                f"min_prefix_length ({self.min_prefix_length!r}) must be below max_completion_length "
                f"({self.max_completion_length!r}), or no rollout can ever be cut"
            )
        if self.use_token_adaptive and self.use_transformers_continuous_batching:
            raise ValueError(
                "use_token_adaptive needs per-token logits while sampling, which "
                "use_transformers_continuous_batching=True does not expose; use the default generate path or vLLM"
            )
