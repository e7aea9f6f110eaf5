"""Teacher-scored RLAIF: GRPO whose reward is a Claude teacher grading the student's code against a rubric.

Seed: `../shared/seeds/003_0dfbdc15c190dcdc.txt`. What `RLAIFGRPOTrainer` changes w.r.t. TRL's `GRPOTrainer`:

1. **Reward.** It builds an `AnthropicTeacher` from the `teacher_*` settings of `RLAIFConfig` and adds it to the
   reward functions it is given (in place of the `teacher_reward` placeholder when a recipe lists it, else
   appended). TRL runs it as an async reward function; its per-batch `teacher/*` metrics reach `self._metrics`
   through TRL's `log_metric`. A sample the teacher cannot score after its retries gets `None`, which TRL leaves
   out of the group baseline (advantage 0), so no score is ever invented.
2. **Reference for KL.** By default nothing changes: with LoRA and `beta > 0`, TRL's reference is the base model
   with the adapters disabled. `use_frozen_reference_for_kl` loads a separate frozen copy of the base model
   instead (the seed's option; it doubles model memory), falling back with a warning when it cannot be loaded.
   Both give the same numbers for a freshly initialised adapter; the copy matters when the policy's base weights
   are not the reference you want (for example a pretrained adapter that TRL would otherwise copy as "ref").
3. **Adaptive KL** (optional, `adaptive_kl`): after each training step `beta` moves toward `kl_target` by the
   proportional rule of Ziegler et al. 2019 (arXiv:1909.08593): `beta *= 1 + rate * clip(kl / target - 1, ±0.2)`.
   The only loss-side hook is `training_step`; `_compute_loss` is untouched.
4. **Checkpoints** carry the teacher's counters and the KL coefficient (`rlaif_state_rank{i}.json`), written in
   `_save_checkpoint` and read back in `_load_optimizer_and_scheduler`, the two hooks TRL itself uses for its
   adaptive-entropy state. The API key is never part of any of it.

LoRA comes from the launch script's `ModelConfig` (`use_peft: true`, `lora_r`, `lora_alpha`,
`lora_target_modules`) as for every trainer here.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from accelerate.utils import is_peft_model
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOConfig, GRPOTrainer

from open_r1_ext.core.kl import AdaptiveKLController

from .rubric import DEFAULT_RUBRIC
from .teacher import AnthropicTeacher, TeacherConfig, default_cache_path


logger = logging.getLogger(__name__)

STATE_FILE = "rlaif_state_rank{rank}.json"


def teacher_reward(completions, **kwargs):
    """Placeholder for recipes: `reward_funcs: [open_r1_ext.rlaif.trainer:teacher_reward]`.

    `RLAIFGRPOTrainer` replaces it with its `AnthropicTeacher`, so the teacher can be the only reward (a second
    reward function would turn a teacher failure's `None` into a partial reward). Called anywhere else it fails.
    """
    raise RuntimeError("teacher_reward is a placeholder that only RLAIFGRPOTrainer (trainer_type: rlaif) replaces")


@dataclass
class RLAIFConfig(GRPOConfig):
    """`GRPOConfig` plus the teacher, its token savings and reliability settings, and the KL reference options.

    Defaults follow the seed: `temperature` 0.85, `num_generations` 4, `reward_threshold` 0.0, every token saving
    on. Each saving can be switched off on its own (the benchmark `launch/bench_rlaif_tokens.py` does so).
    """

    # -- generation defaults from the seed -------------------------------------------------------------------
    temperature: float = field(
        default=0.85, metadata={"help": "Sampling temperature (the seed's 0.85: less noise than 0.9 or 1.0)."}
    )
    num_generations: int | None = field(
        default=4, metadata={"help": "Completions per prompt; the teacher scores each group in one call."}
    )

    # -- teacher ---------------------------------------------------------------------------------------------
    teacher_model: str = field(default="claude-sonnet-4-5", metadata={"help": "Anthropic model that grades."})
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
            "help": "Name of the environment variable holding the API key (the key itself is never a "
            "setting, so it never reaches a recipe, training_args.bin or a checkpoint)."
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
    teacher_max_output_tokens: int = field(default=256, metadata={"help": "max_tokens of each teacher reply."})

    # -- token savings (each switchable) ---------------------------------------------------------------------
    use_teacher_cache: bool = field(
        default=True,
        metadata={
            "help": "Persistent SQLite score cache keyed STUDENT:{prompt_hash}:{code_hash}:{language}; "
            "also scores in-batch duplicates once."
        },
    )
    teacher_cache_path: str | None = field(
        default=None,
        metadata={
            "help": "SQLite file of the score cache (None: $OPEN_R1_EXT_CACHE/rlaif/teacher_scores.sqlite, "
            "shared across runs; entries are namespaced by model and rubric)."
        },
    )
    teacher_cache_ttl_s: float = field(default=7 * 24 * 3600.0, metadata={"help": "Cache entry lifetime (s)."})
    truncate_prompt_for_scoring: bool = field(
        default=True, metadata={"help": "Send only the first `prompt_context_chars` characters of the prompt."}
    )
    prompt_context_chars: int = field(default=200, metadata={"help": "Prompt characters kept when truncating."})
    move_rubric_to_system_prompt: bool = field(
        default=True,
        metadata={
            "help": "Put the rubric in the system prompt. Alone this saves nothing (the API is stateless); "
            "it is what `use_prompt_caching` marks."
        },
    )
    use_prompt_caching: bool = field(
        default=True,
        metadata={
            "help": "Mark the rubric block with cache_control {type: ephemeral}. Applies only when the "
            "rubric reaches the model's minimum cacheable length (1024 tokens for Sonnet 4.x, 2048 for "
            "Haiku 3.x, 4096 for Haiku 4.5 and Opus 4.5/4.6); shorter rubrics are billed in full."
        },
    )
    use_tiered_scoring: bool = field(
        default=True,
        metadata={
            "help": "Heuristic pre-filter: completions scoring below `heuristic_score_threshold` keep "
            "their heuristic score and never reach the API."
        },
    )
    heuristic_score_threshold: float = field(
        default=0.3, metadata={"help": "Pre-filter threshold in [0, 1] (0 sends everything to the teacher)."}
    )
    batch_group_scoring: bool = field(
        default=True, metadata={"help": "Score all completions of one prompt in one call (a JSON list reply)."}
    )
    teacher_max_candidates_per_call: int = field(
        default=16, metadata={"help": "Largest number of completions scored in one call (larger groups split)."}
    )

    # -- reliability -----------------------------------------------------------------------------------------
    teacher_max_concurrency: int = field(default=8, metadata={"help": "Teacher calls in flight at once."})
    teacher_timeout_s: float = field(default=60.0, metadata={"help": "Timeout of one teacher call (s)."})
    teacher_max_retries: int = field(
        default=4, metadata={"help": "Retries after a failed call (429, 5xx, 529, timeout, connection, malformed)."}
    )
    teacher_backoff_base_s: float = field(
        default=1.0, metadata={"help": "First backoff (s); doubles per retry, with jitter in [50 %, 100 %]."}
    )
    teacher_backoff_max_s: float = field(default=30.0, metadata={"help": "Largest backoff (s)."})
    teacher_max_retry_after_s: float = field(
        default=120.0, metadata={"help": "Largest wait (s), also when the server's retry-after asks for more."}
    )

    # -- accounting --------------------------------------------------------------------------------------------
    teacher_price_input_per_mtok: float = field(default=3.0, metadata={"help": "USD per million input tokens."})
    teacher_price_output_per_mtok: float = field(default=15.0, metadata={"help": "USD per million output tokens."})
    teacher_cache_write_multiplier: float = field(
        default=1.25, metadata={"help": "Price of a cache-write token relative to an input token (5-minute TTL)."}
    )
    teacher_cache_read_multiplier: float = field(
        default=0.1, metadata={"help": "Price of a cache-read token relative to an input token."}
    )

    # -- reward and reference ----------------------------------------------------------------------------------
    reward_threshold: float = field(
        default=0.0,
        metadata={
            "help": "Teacher scores below this become None (left out of the group baseline, advantage 0). "
            "The seed's 0.0 keeps every sample; higher values caused its zero-update epochs."
        },
    )
    use_frozen_reference_for_kl: bool = field(
        default=False,
        metadata={
            "help": "With LoRA and beta > 0, compute the KL against a separately loaded frozen copy of the "
            "base model instead of the policy with adapters disabled (doubles model memory); falls back "
            "with a warning when the copy cannot be loaded."
        },
    )
    adaptive_kl: bool = field(
        default=False, metadata={"help": "Adapt beta after each step toward `kl_target` (needs beta > 0)."}
    )
    kl_target: float = field(default=0.05, metadata={"help": "Target mean per-token KL for `adaptive_kl`."})
    kl_adaptation_rate: float = field(
        default=0.1, metadata={"help": "Proportional gain K of the adaptive KL rule (at most ±0.2·K per step)."}
    )

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.reward_threshold <= 1.0:
            raise ValueError(f"reward_threshold must be in [0, 1], got {self.reward_threshold!r}")
        if self.adaptive_kl and self.beta <= 0.0:
            raise ValueError(f"adaptive_kl needs beta > 0 to start from, got beta={self.beta!r}")
        if not self.kl_target > 0.0:
            raise ValueError(f"kl_target must be > 0, got {self.kl_target!r}")
        if not 0.0 < self.kl_adaptation_rate <= 1.0:
            raise ValueError(f"kl_adaptation_rate must be in (0, 1], got {self.kl_adaptation_rate!r}")
        if self.teacher_rubric_file is not None and not Path(self.teacher_rubric_file).is_file():
            raise ValueError(f"teacher_rubric_file {self.teacher_rubric_file!r} is not a file")
        if self.use_frozen_reference_for_kl and self.beta == 0.0:
            logger.warning("use_frozen_reference_for_kl=True has no effect with beta=0.0 (no KL term, no reference)")
        try:
            self.teacher_config()
        except ValueError as exc:  # re-label TeacherConfig's field names with the recipe's
            raise ValueError(
                f"Invalid teacher setting: {exc}".replace("TeacherConfig.", "RLAIFConfig (teacher) ")
            ) from None

    def teacher_config(self) -> TeacherConfig:
        rubric = self.teacher_rubric or DEFAULT_RUBRIC
        if self.teacher_rubric_file is not None:
            rubric = Path(self.teacher_rubric_file).read_text()
        return TeacherConfig(
            model=self.teacher_model,
            base_url=self.teacher_base_url,
            api_key_env=self.teacher_api_key_env,
            rubric=rubric,
            max_output_tokens=self.teacher_max_output_tokens,
            use_local_cache=self.use_teacher_cache,
            cache_path=self.teacher_cache_path or default_cache_path(),
            cache_ttl_s=self.teacher_cache_ttl_s,
            truncate_prompt_for_scoring=self.truncate_prompt_for_scoring,
            prompt_context_chars=self.prompt_context_chars,
            move_rubric_to_system_prompt=self.move_rubric_to_system_prompt,
            use_prompt_caching=self.use_prompt_caching,
            use_tiered_scoring=self.use_tiered_scoring,
            heuristic_score_threshold=self.heuristic_score_threshold,
            batch_group_scoring=self.batch_group_scoring,
            max_candidates_per_call=self.teacher_max_candidates_per_call,
            max_concurrency=self.teacher_max_concurrency,
            timeout_s=self.teacher_timeout_s,
            max_retries=self.teacher_max_retries,
            backoff_base_s=self.teacher_backoff_base_s,
            backoff_max_s=self.teacher_backoff_max_s,
            max_retry_after_s=self.teacher_max_retry_after_s,
            seed=self.seed,
            price_input_per_mtok=self.teacher_price_input_per_mtok,
            price_output_per_mtok=self.teacher_price_output_per_mtok,
            cache_write_multiplier=self.teacher_cache_write_multiplier,
            cache_read_multiplier=self.teacher_cache_read_multiplier,
            reward_threshold=self.reward_threshold if self.reward_threshold > 0.0 else None,
            default_language=self.teacher_language,
        )


class RLAIFGRPOTrainer(GRPOTrainer):
    """GRPO with an `AnthropicTeacher` reward, an optional frozen KL reference and adaptive KL (see module doc).

    Overridden hooks: `__init__` (adds the teacher; installs the frozen reference after TRL's set-up),
    `training_step` (adaptive KL, after the base step), `_save_checkpoint` and `_load_optimizer_and_scheduler`
    (teacher counters and KL coefficient). Pass `teacher=` to reuse a teacher object (tests, benchmarks).
    """

    # The launch script accepts `reward_funcs: []` for this trainer: the teacher is then the only reward.
    provides_reward_funcs = True
    _tag_names = ["trl", "grpo", "rlaif", "open-r1-ext"]
    _name = "RLAIF"

    def __init__(self, model, reward_funcs=None, args: RLAIFConfig | None = None, *pos, teacher=None, **kwargs):
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = RLAIFConfig(f"{str(name).split('/')[-1] or 'model'}-RLAIF")
        if not isinstance(args, RLAIFConfig):
            raise TypeError(f"RLAIFGRPOTrainer needs an RLAIFConfig, got {type(args).__name__}")
        self.teacher = teacher if teacher is not None else AnthropicTeacher(args.teacher_config())
        funcs = (
            [] if reward_funcs is None else list(reward_funcs) if isinstance(reward_funcs, list) else [reward_funcs]
        )
        if teacher_reward in funcs:
            funcs = [self.teacher if f is teacher_reward else f for f in funcs]
        else:
            funcs.append(self.teacher)
        if len(funcs) > 1:
            logger.info(
                "RLAIF: the teacher is one of %d reward functions; a teacher failure (None) then counts as "
                "0 in the weighted sum instead of leaving the sample out",
                len(funcs),
            )

        peft_config = kwargs.get("peft_config")
        frozen_ref = None
        if args.use_frozen_reference_for_kl and args.beta != 0.0:
            if peft_config is not None or is_peft_model(model):
                frozen_ref = self._load_frozen_reference(model, args)
            else:
                logger.info(
                    "use_frozen_reference_for_kl: without PEFT, GRPOTrainer already keeps a separate frozen "
                    "reference model; nothing to change"
                )

        super().__init__(model, funcs, args, *pos, **kwargs)
        if frozen_ref is not None:
            self._install_frozen_reference(frozen_ref)
        self.kl_controller = (
            AdaptiveKLController(args.beta, args.kl_target, args.kl_adaptation_rate) if args.adaptive_kl else None
        )

    # -- frozen reference -------------------------------------------------------------------------------------

    @staticmethod
    def _load_frozen_reference(model, args: RLAIFConfig):
        """A frozen copy of the base model, or None (with a warning) when it cannot be made."""
        try:
            if isinstance(model, str):
                from transformers import AutoModelForCausalLM

                init_kwargs = dict(args.model_init_kwargs or {})
                init_kwargs.setdefault("trust_remote_code", args.trust_remote_code)
                ref = AutoModelForCausalLM.from_pretrained(model, **init_kwargs)
            elif is_peft_model(model):
                raise ValueError(
                    "the model already carries adapters, so its base weights are not a clean reference; "
                    "pass the base model and a peft_config instead"
                )
            else:
                ref = copy.deepcopy(model)  # before TRL wraps the policy with adapters
        except Exception as exc:
            logger.warning(
                "use_frozen_reference_for_kl: could not load a frozen reference (%s); falling back to the "
                "policy with adapters disabled",
                exc,
            )
            return None
        ref.eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        return ref

    def _install_frozen_reference(self, ref) -> None:
        """Give `ref` the same set-up TRL gives its own reference model, and use it for the KL term."""
        from trl.trainer.grpo_trainer import (
            add_fused_lm_head,
            disable_dropout_in_model,
            prepare_deepspeed,
            prepare_fsdp,
        )

        if self.args.cast_lm_head_to_fp32:
            logger.warning("use_frozen_reference_for_kl with cast_lm_head_to_fp32: the frozen copy keeps its dtype")
        if self.args.disable_dropout:
            disable_dropout_in_model(ref)
        add_fused_lm_head(ref, temperature=self.temperature, cast_lm_head_to_fp32=False)
        if self.is_deepspeed_enabled:
            ref = prepare_deepspeed(ref, self.accelerator)
        elif self.is_fsdp_enabled:
            ref = prepare_fsdp(ref, self.accelerator)
        else:
            ref = self.accelerator.prepare_model(ref, evaluation_mode=True)
        self.ref_model = ref
        logger.info("RLAIF: KL reference is a separately loaded frozen copy of the base model")

    # -- adaptive KL --------------------------------------------------------------------------------------------

    def training_step(self, model, inputs, num_items_in_batch):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.kl_controller is not None:
            kls = self._metrics["train"].get("kl")
            if kls:
                self.beta = self.kl_controller.update(float(kls[-1]))
            self._metrics["train"]["kl_coef"].append(self.beta)
        return loss

    # -- checkpoint state ---------------------------------------------------------------------------------------

    def rlaif_state(self) -> dict:
        return {
            "teacher": self.teacher.state_dict(),
            "beta": self.beta,
            "kl_controller": self.kl_controller.state_dict() if self.kl_controller is not None else None,
        }

    def load_rlaif_state(self, state: dict) -> None:
        self.teacher.load_state_dict(state.get("teacher", {}))
        if state.get("kl_controller") is not None and self.kl_controller is not None:
            self.kl_controller.load_state_dict(state["kl_controller"])
        if self.kl_controller is not None:
            self.beta = self.kl_controller.beta

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, STATE_FILE.format(rank=self.accelerator.process_index))
        with open(path, "w") as f:  # every rank: each has its own teacher counters
            json.dump(self.rlaif_state(), f, indent=2)

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None:
            return
        path = os.path.join(checkpoint, STATE_FILE.format(rank=self.accelerator.process_index))
        if os.path.exists(path):
            with open(path) as f:
                self.load_rlaif_state(json.load(f))
        else:
            logger.warning("RLAIF: %s not found; teacher counters and KL coefficient start fresh", path)
