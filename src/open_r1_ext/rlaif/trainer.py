"""Teacher-scored RLAIF: GRPO whose reward is a Claude teacher grading the student's code against a rubric.

Seed: `../shared/seeds/003_0dfbdc15c190dcdc.txt`; the idea is RLAIF (Lee et al. 2023, arXiv:2309.00267). What
`RLAIFGRPOTrainer` changes w.r.t. TRL's `GRPOTrainer`:

1. **Reward.** It builds an `AnthropicTeacher` from the `teacher_*` settings that `RLAIFConfig` inherits from
   `TeacherConfig` and puts it among the reward functions (in place of the `teacher_reward` placeholder when a
   recipe lists it, else appended; `open_r1_ext.core.rewards.splice_reward`). TRL runs it as an async reward
   function; its per-batch `teacher/*` metrics reach `self._metrics` through TRL's `log_metric`. A sample the
   teacher cannot score after its retries gets `None`, which TRL leaves out of the group baseline (advantage 0), so
   no score is ever invented. The teacher's preflight runs at start-up, before any generation: a wrong key, base URL,
   model or request raises here, naming the setting; later, more than `teacher_max_failure_share` failures over the
   last `teacher_failure_window` samples raise `TeacherFailureError` from the reward step, which stops training.
2. **Reference for KL.** By default nothing changes: with LoRA and `beta > 0`, TRL's reference is the base model
   with the adapters disabled. `use_frozen_reference_for_kl` loads a separate frozen copy of the base model
   instead (the seed's option; it doubles model memory), falling back with a warning when it cannot be loaded.
   Both give the same numbers for a freshly initialised adapter; the copy matters when the policy's base weights
   are not the reference you want (for example a pretrained adapter that TRL would otherwise copy as "ref").
3. **Adaptive KL** (optional, `adaptive_kl`): after each optimizer step `beta` moves toward `kl_target` by the
   proportional rule of Ziegler et al. 2019 (arXiv:1909.08593): `beta *= 1 + rate * clip(kl / target - 1, ±0.2)`,
   `kl` being the mean of the step's micro-batch KLs. Like TRL's adaptive entropy it acts at the optimizer-step
   boundary (`accelerator.sync_gradients`), so every micro-batch of an accumulation window uses the same `beta`.
   The only loss-side hook is `training_step`; `_compute_loss` is untouched.
4. **Checkpoints** carry the teacher's counters and the KL coefficient, one file per process (each process has its
   own teacher counters), through `open_r1_ext.core.checkpoint` from `_save_checkpoint` and
   `_load_optimizer_and_scheduler`, the two hooks TRL itself uses for its adaptive-entropy state. The API key is
   never part of any of it.

LoRA comes from the launch script's `ModelConfig` (`use_peft: true`, `lora_r`, `lora_alpha`,
`lora_target_modules`) as for every trainer here.
"""

from __future__ import annotations

import copy
import logging
import statistics
import textwrap

from accelerate.utils import is_peft_model
from trl import GRPOTrainer

from open_r1_ext.core.checkpoint import load_extra_state, save_extra_state
from open_r1_ext.core.configs import UserError
from open_r1_ext.core.kl import AdaptiveKLController
from open_r1_ext.core.rewards import splice_reward

from .client import MissingAPIKeyError, TeacherConfigError
from .config import RLAIFConfig
from .teacher import AnthropicTeacher


__all__ = ["AdaptiveKLController", "RLAIFConfig", "RLAIFGRPOTrainer", "teacher_reward"]

logger = logging.getLogger(__name__)

STATE_NAME = "rlaif"  # checkpoint-N/open_r1_ext_rlaif_rank{r}.pt


def teacher_reward(completions, **kwargs):
    """Placeholder for recipes: `reward_funcs: [open_r1_ext.rlaif.trainer:teacher_reward]`.

    `RLAIFGRPOTrainer` replaces it with its `AnthropicTeacher`, so the teacher can be the only reward (a second
    reward function would turn a teacher failure's `None` into a partial reward). Called anywhere else it fails.
    """
    raise RuntimeError("teacher_reward is a placeholder that only RLAIFGRPOTrainer (trainer_type: rlaif) replaces")


class RLAIFGRPOTrainer(GRPOTrainer):
    """GRPO with an `AnthropicTeacher` reward, an optional frozen KL reference and adaptive KL (see module doc).

    Overridden hooks: `__init__` (adds the teacher; installs the frozen reference after TRL's set-up),
    `training_step` (adaptive KL at each optimizer-step boundary, after the base step), `_save_checkpoint` and
    `_load_optimizer_and_scheduler` (teacher counters and KL coefficient). Pass `teacher=` to reuse a teacher object
    (tests, benchmarks). `args=None` gives `RLAIFConfig("<model>-RLAIF")`, as TRL's `GRPOConfig("<model>-GRPO")`.
    """

    # The launch script accepts `reward_funcs: []` for this trainer: the teacher is then the only reward.
    provides_reward_funcs = True
    _tag_names = ["trl", "grpo", "rlaif", "open-r1-ext"]
    _name = "RLAIF"
    _paper = {
        "title": "RLAIF: Scaling Reinforcement Learning from Human Feedback with AI Feedback",
        "id": "2309.00267",
        # docstyle-ignore
        "citation": textwrap.dedent("""\
            @article{lee2023rlaif,
                title        = {{RLAIF: Scaling Reinforcement Learning from Human Feedback with AI Feedback}},
                author       = {Harrison Lee and Samrat Phatale and Hassan Mansoor and Thomas Mesnard and Johan Ferret and Kellie Lu and Colton Bishop and Ethan Hall and Victor Carbune and Abhinav Rastogi and Sushant Prakash},
                year         = 2023,
                eprint       = {arXiv:2309.00267},
            }"""),
    }

    @classmethod
    def preflight(cls, script_args, training_args: RLAIFConfig) -> None:
        """The launch script's check before any model is loaded or warm-started (`trainers.LaunchProtocol`): the key
        is set, and key, base URL, model and request shape are accepted by the API (`AnthropicTeacher.preflight`).
        A failure is a `UserError` naming the setting to fix."""
        try:
            teacher = AnthropicTeacher(training_args)
            try:
                teacher.preflight_sync()
            finally:
                teacher.close()
        except (MissingAPIKeyError, TeacherConfigError) as exc:
            raise UserError(f"RLAIF teacher: {exc}") from exc

    def __init__(self, model, reward_funcs=None, args: RLAIFConfig | None = None, *pos, teacher=None, **kwargs):
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = RLAIFConfig(f"{str(name).split('/')[-1] or 'model'}-RLAIF")
        if not isinstance(args, RLAIFConfig):
            raise TypeError(f"RLAIFGRPOTrainer needs an RLAIFConfig, got {type(args).__name__}")
        self.teacher = teacher if teacher is not None else AnthropicTeacher(args)
        self.teacher.preflight_sync()  # fail on misconfiguration now, not after the first generation
        funcs, args.reward_weights = splice_reward(reward_funcs, teacher_reward, self.teacher, args.reward_weights)
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
        self._kl_window: list[float] = []  # micro-batch KLs of the optimizer step in progress

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
                self._kl_window.append(float(kls[-1]))  # this micro-batch's KL, logged by `_compute_loss`
            if self.accelerator.sync_gradients:  # the last micro-batch of this optimizer step
                if self._kl_window:
                    self.beta = self.kl_controller.update(statistics.fmean(self._kl_window))
                self._kl_window = []
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
        # Per process: each process has its own teacher and so its own counters.
        save_extra_state(self, trial, STATE_NAME, self.rlaif_state(), per_process=True)

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        state = load_extra_state(self, checkpoint, STATE_NAME, per_process=True)
        if state is not None:
            self.load_rlaif_state(state)
