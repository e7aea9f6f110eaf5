"""`TeacherConfig` (the Claude teacher's settings, declared once) and `RLAIFConfig` (`GRPOConfig` plus those settings).

Every teacher setting carries the `teacher_` prefix, both on `TeacherConfig` and, through inheritance, in a recipe:
`teacher_model` is always the Claude model id that grades (DeepMime's `teacher_model_name_or_path`, a local causal
LM, is a different thing with a different name).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from trl import GRPOConfig

from .rubric import DEFAULT_RUBRIC


logger = logging.getLogger(__name__)


def default_cache_path() -> str:
    """`$OPEN_R1_EXT_CACHE/rlaif/teacher_scores.sqlite` (default `~/.cache/open_r1_ext/...`), shared across runs:
    entries are namespaced by model and rubric, so sharing never serves a score meant for another rubric."""
    root = Path(os.environ.get("OPEN_R1_EXT_CACHE", Path.home() / ".cache" / "open_r1_ext"))
    return str(root / "rlaif" / "teacher_scores.sqlite")


# (why, test, settings): the numeric ranges `TeacherConfig.validate_teacher_settings` checks (NaN fails every test).
_RANGE_RULES = (
    (
        "must be >= 1",
        lambda v: v >= 1,
        (
            "teacher_max_output_tokens",
            "teacher_max_concurrency",
            "teacher_prompt_context_chars",
            "teacher_max_candidates_per_call",
            "teacher_max_candidate_chars",
            "teacher_failure_window",
        ),
    ),
    ("must be > 0", lambda v: v > 0, ("teacher_timeout_s", "teacher_cache_ttl_s")),
    (
        "must be >= 0",
        lambda v: v >= 0,
        (
            "teacher_max_retries",
            "teacher_backoff_base_s",
            "teacher_backoff_max_s",
            "teacher_max_retry_after_s",
            "teacher_price_input_per_mtok",
            "teacher_price_output_per_mtok",
            "teacher_cache_write_multiplier",
            "teacher_cache_read_multiplier",
        ),
    ),
    (
        "must be in [0, 1]",
        lambda v: 0.0 <= v <= 1.0,
        (
            "teacher_heuristic_score_threshold",
            "teacher_reward_threshold",
            "teacher_max_failure_share",
        ),
    ),
)


@dataclass
class TeacherConfig:
    """Settings of `AnthropicTeacher`: the model and rubric, each token saving, reliability, prices, reward shaping.

    `RLAIFConfig` inherits these fields, so a recipe sets them under the same names. The API key is never a setting:
    it is read from the environment variable named by `teacher_api_key_env`, so it cannot end up in a recipe, a
    `training_args.bin` or a checkpoint.
    """

    # -- teacher -------------------------------------------------------------------------------------------------
    teacher_model: str = field(
        default="claude-sonnet-4-5",
        metadata={
            "help": "The Claude model id that grades (Messages API `model`). Its minimum cacheable prefix decides "
            "whether the rubric can be cached: 1024 tokens for Sonnet 4.x, 4096 for Haiku 4.5 and Opus 4.5/4.6."
        },
    )
    teacher_base_url: str | None = field(
        default=None,
        metadata={
            "help": "Messages API base URL (None: the SDK's default or $ANTHROPIC_BASE_URL). Point it at "
            "`open_r1_ext.rlaif.fake_server` to run offline."
        },
    )
    teacher_api_key_env: str = field(
        default="ANTHROPIC_API_KEY",
        metadata={
            "help": "Name of the environment variable holding the API key (the key itself is never a setting, so "
            "it never reaches a recipe, training_args.bin or a checkpoint)."
        },
    )
    teacher_rubric: str | None = field(
        default=None, metadata={"help": "Rubric text (None: the built-in multi-criterion code rubric)."}
    )
    teacher_rubric_file: str | None = field(
        default=None, metadata={"help": "File to read the rubric from (overrides `teacher_rubric`)."}
    )
    teacher_language: str | None = field(
        default=None,
        metadata={
            "help": "Language of every completion (python, cpp, rust, javascript) when the dataset has no "
            "`language` column; None: detect from a code fence or the code itself."
        },
    )
    teacher_max_output_tokens: int = field(
        default=512,
        metadata={
            "help": "`max_tokens` of each teacher reply (the record_scores call takes ~12 tokens per candidate). A "
            "reply cut off at this limit gives its candidates None, counted in teacher/max_tokens_stops, not retried."
        },
    )
    teacher_temperature: float | None = field(
        default=0.0,
        metadata={
            "help": "Sampling temperature of the teacher, in [0, 1]; 0 (greedy) makes a grade repeatable, which the "
            "score cache relies on (it keeps one draw for `teacher_cache_ttl_s`). The SDK's API version (2026-10-21) "
            "has no sampling parameters, so a set temperature is sent on requests pinned to anthropic-version "
            "2023-06-01; None sends none (needed for models that reject sampling parameters, e.g. Opus 4.7+)."
        },
    )
    teacher_max_candidate_chars: int = field(
        default=6000,
        metadata={
            "help": "Largest candidate sent, in characters (~1,500 tokens); a longer one is cut, marked as cut, and "
            "counted in teacher/candidate_truncations."
        },
    )

    # -- token savings (each switchable) -------------------------------------------------------------------------
    teacher_use_cache: bool = field(
        default=True,
        metadata={
            "help": "Persistent SQLite score cache keyed STUDENT:{prompt_hash}:{code_hash}:{language}; also scores "
            "in-batch duplicates once."
        },
    )
    teacher_cache_path: str | None = field(
        default=None,
        metadata={
            "help": "SQLite file of the score cache, or ':memory:' (None: $OPEN_R1_EXT_CACHE/rlaif/"
            "teacher_scores.sqlite, shared across runs; entries are namespaced by model and rubric)."
        },
    )
    teacher_cache_ttl_s: float = field(default=7 * 24 * 3600.0, metadata={"help": "Cache entry lifetime (s)."})
    teacher_truncate_prompt: bool = field(
        default=True,
        metadata={"help": "Send only the first `teacher_prompt_context_chars` characters of the prompt."},
    )
    teacher_prompt_context_chars: int = field(
        default=200, metadata={"help": "Prompt characters kept when truncating."}
    )
    teacher_rubric_in_system_prompt: bool = field(
        default=True,
        metadata={
            "help": "Put the rubric in the system prompt. Alone this saves nothing (the API is stateless); it is "
            "what `teacher_use_prompt_caching` marks."
        },
    )
    teacher_use_prompt_caching: bool = field(
        default=True,
        metadata={
            "help": "Mark the rubric block with cache_control {type: ephemeral}; the tool definition before it is "
            "cached with it. Applies only when that prefix reaches the model's minimum cacheable length (1024 "
            "tokens for Sonnet 4.x, 2048 for Haiku 3.x, 4096 for Haiku 4.5 and Opus 4.5/4.6), which the preflight "
            "measures; a shorter one is billed in full (with a warning)."
        },
    )
    teacher_use_tiered_scoring: bool = field(
        default=True,
        metadata={
            "help": "Heuristic pre-filter: completions scoring below `teacher_heuristic_score_threshold` keep their "
            "heuristic score and never reach the API."
        },
    )
    teacher_heuristic_score_threshold: float = field(
        default=0.3, metadata={"help": "Pre-filter threshold in [0, 1] (0 sends everything to the teacher)."}
    )
    teacher_batch_group_scoring: bool = field(
        default=True,
        metadata={"help": "Score all completions of one prompt in one call (off: one call per completion)."},
    )
    teacher_batch_across_prompts: bool = field(
        default=True,
        metadata={
            "help": "With group scoring, also put the groups of several prompts of a batch in one call (each "
            "candidate names its task), up to `teacher_max_candidates_per_call`: the rubric is read once per call."
        },
    )
    teacher_max_candidates_per_call: int = field(
        default=16, metadata={"help": "Largest number of completions scored in one call (larger groups split)."}
    )

    # -- reliability ---------------------------------------------------------------------------------------------
    teacher_max_concurrency: int = field(default=8, metadata={"help": "Teacher calls in flight at once."})
    teacher_timeout_s: float = field(
        default=60.0, metadata={"help": "Timeout of one HTTP attempt (s): the SDK's `timeout`."}
    )
    teacher_max_retries: int = field(
        default=4,
        metadata={
            "help": "The SDK's `max_retries` (it retries 408, 409, 429, 5xx including 529, timeouts and connection "
            "errors, and obeys x-should-retry), and, separately, how often a malformed reply is asked again."
        },
    )
    teacher_backoff_base_s: float = field(
        default=1.0,
        metadata={
            "help": "First wait between the SDK's retries (s); doubles per retry, with jitter in [50 %, 100 %]."
        },
    )
    teacher_backoff_max_s: float = field(default=30.0, metadata={"help": "Largest backoff (s)."})
    teacher_max_retry_after_s: float = field(
        default=120.0,
        metadata={"help": "Largest wait (s), also when the server's retry-after asks for more (the SDK has no cap)."},
    )
    teacher_preflight: bool = field(
        default=True,
        metadata={
            "help": "Before the first scoring call (at trainer start-up), check key, base URL, model and request "
            "with the free token-counting endpoint, and measure the cached prefix; a 400/401/403/404 or an "
            "unreachable endpoint stops the run with the setting to fix."
        },
    )
    teacher_max_failure_share: float = field(
        default=0.5,
        metadata={
            "help": "Stop the run when more than this share of the last `teacher_failure_window` samples sent to "
            "the teacher got no score (training would go on without a reward); 1.0 never stops."
        },
    )
    teacher_failure_window: int = field(
        default=32,
        metadata={"help": "Samples sent to the teacher over which `teacher_max_failure_share` is measured."},
    )
    teacher_seed: int | None = field(
        default=None,
        metadata={"help": "Seed of the backoff jitter (None: the training `seed` in RLAIFConfig, 0 on its own)."},
    )

    # -- accounting (USD per million tokens; cache multipliers relative to the input price) ----------------------
    teacher_price_input_per_mtok: float = field(default=3.0, metadata={"help": "USD per million input tokens."})
    teacher_price_output_per_mtok: float = field(default=15.0, metadata={"help": "USD per million output tokens."})
    teacher_cache_write_multiplier: float = field(
        default=1.25, metadata={"help": "Price of a cache-write token relative to an input token (5-minute TTL)."}
    )
    teacher_cache_read_multiplier: float = field(
        default=0.1, metadata={"help": "Price of a cache-read token relative to an input token."}
    )

    # -- reward shaping ------------------------------------------------------------------------------------------
    teacher_reward_threshold: float = field(
        default=0.0,
        metadata={
            "help": "Scores below this become None (left out of the group baseline, advantage 0). The seed's 0.0 "
            "keeps every sample; higher values caused its zero-update epochs."
        },
    )

    def __post_init__(self):
        self.validate_teacher_settings()

    def validate_teacher_settings(self) -> None:
        """Raise `ValueError` naming the first invalid teacher setting and quoting its value."""
        where = type(self).__name__
        if not self.teacher_api_key_env or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.teacher_api_key_env):
            # The value is not quoted: someone may have pasted the key itself here.
            raise ValueError(
                f"{where}.teacher_api_key_env must be the name of an environment variable such as "
                "ANTHROPIC_API_KEY, never the key itself"
            )
        for why, ok, names in _RANGE_RULES:
            for name in names:
                if not ok(getattr(self, name)):
                    raise ValueError(f"{where}.{name}={getattr(self, name)!r} is invalid: {why}")
        t = self.teacher_temperature
        if t is not None and not 0.0 <= t <= 1.0:
            raise ValueError(f"{where}.teacher_temperature={t!r} is invalid: must be in [0, 1] or None")
        problem = self._rubric_problem()
        if problem is not None:
            name, why = problem
            raise ValueError(f"{where}.{name}={getattr(self, name)!r} is invalid: {why}")

    def _rubric_problem(self) -> tuple[str, str] | None:
        """`(setting, why)` when the rubric or where it is placed is unusable, else None."""
        if self.teacher_rubric is not None and not self.teacher_rubric.strip():
            return "teacher_rubric", "must be non-empty text (or None for the built-in rubric)"
        if self.teacher_rubric_file is not None:
            if not Path(self.teacher_rubric_file).is_file():
                return "teacher_rubric_file", "is not a file"
            if not Path(self.teacher_rubric_file).read_text().strip():
                return "teacher_rubric_file", "is empty"
        if self.teacher_use_prompt_caching and not self.teacher_rubric_in_system_prompt:
            return (
                "teacher_use_prompt_caching",
                "caching marks the rubric's system block, so it needs teacher_rubric_in_system_prompt=True",
            )
        return None

    def rubric_text(self) -> str:
        """The rubric the teacher grades against: `teacher_rubric_file`, else `teacher_rubric`, else the default."""
        if self.teacher_rubric_file is not None:
            return Path(self.teacher_rubric_file).read_text()
        return self.teacher_rubric or DEFAULT_RUBRIC

    @staticmethod
    def of(config: TeacherConfig, **overrides) -> TeacherConfig:
        """The teacher settings of `config` (a `TeacherConfig` or a config that inherits it, such as `RLAIFConfig`)
        as a plain `TeacherConfig`, with `overrides` applied; the teacher keeps this, not the training arguments."""
        return TeacherConfig(**{**{f.name: getattr(config, f.name) for f in fields(TeacherConfig)}, **overrides})


@dataclass
class RLAIFConfig(TeacherConfig, GRPOConfig):
    """`GRPOConfig` plus the teacher settings of `TeacherConfig` (inherited, all `teacher_*`) and the KL options.

    Defaults follow the seed: `temperature` 0.85, `num_generations` 4, `teacher_reward_threshold` 0.0, every token
    saving on. Each saving can be switched off on its own (the benchmark `launch/bench_rlaif_tokens.py` does so).
    `TeacherConfig` comes first among the bases only so that `GRPOConfig`'s fields (`output_dir` first) keep their
    positions: `RLAIFConfig("out")` sets `output_dir`, as `GRPOConfig("out")` does.
    """

    # -- generation defaults from the seed -----------------------------------------------------------------------
    temperature: float = field(
        default=0.85, metadata={"help": "Sampling temperature (the seed's 0.85: less noise than 0.9 or 1.0)."}
    )
    num_generations: int | None = field(
        default=4, metadata={"help": "Completions per prompt; the teacher scores each group in one call."}
    )

    # -- KL reference and coefficient ----------------------------------------------------------------------------
    use_frozen_reference_for_kl: bool = field(
        default=False,
        metadata={
            "help": "With LoRA and beta > 0, compute the KL against a separately loaded frozen copy of the base "
            "model instead of the policy with adapters disabled (doubles model memory); falls back with a warning "
            "when the copy cannot be loaded."
        },
    )
    adaptive_kl: bool = field(
        default=False,
        metadata={"help": "Adapt beta after each optimizer step toward `kl_target` (needs beta > 0)."},
    )
    kl_target: float = field(default=0.05, metadata={"help": "Target mean per-token KL for `adaptive_kl`."})
    kl_adaptation_rate: float = field(
        default=0.1,
        metadata={"help": "Proportional gain K of the adaptive KL rule (at most ±0.2·K per optimizer step)."},
    )

    def __post_init__(self):
        # TeacherConfig.__post_init__ does not chain to GRPOConfig's, so each is called here, GRPOConfig's first.
        GRPOConfig.__post_init__(self)
        if self.teacher_seed is None:
            self.teacher_seed = self.seed
        self.validate_teacher_settings()
        if self.adaptive_kl and self.beta <= 0.0:
            raise ValueError(f"adaptive_kl needs beta > 0 to start from, got beta={self.beta!r}")
        if not self.kl_target > 0.0:
            raise ValueError(f"kl_target must be > 0, got {self.kl_target!r}")
        if not 0.0 < self.kl_adaptation_rate <= 1.0:
            raise ValueError(f"kl_adaptation_rate must be in (0, 1], got {self.kl_adaptation_rate!r}")
        if self.use_frozen_reference_for_kl and self.beta == 0.0:
            logger.warning("use_frozen_reference_for_kl=True has no effect with beta=0.0 (no KL term, no reference)")
