"""Token-adaptive GRPO: cut rollouts where the policy turns uncertain and resample from the prefix, hotter.

Seed: `../shared/seeds/004_f3a6d25cb4a4dcc2.txt`, whose public version logged its adaptive rollouts and then trained
plain GRPO on the original batch. Here the adaptive completions are the batch. What `TokenAdaptiveGRPOTrainer`
changes w.r.t. TRL's `GRPOTrainer`:

1. **Sampling** (`_generate_single_turn`, the only generation hook overridden). In training, each group of
   `num_generations` rows is assembled by `sampling.assemble_groups`: first rollouts with per-token uncertainty,
   cut at their failure point (first position >= `min_prefix_length` with max-probability below
   `uncertainty_threshold` or entropy above `entropy_threshold`), continuations resampled from prompt + prefix at
   `temperature * adaptive_temperature_scale ** k`, at most `max_resamples_per_prefix` per prefix, then plain
   rollouts for any slot left. TRL then decodes, rewards, computes old log-probs, advantages and the loss on
   exactly these completions (a resampled completion is prefix + continuation, scored and trained as a whole).
   Uncertainty is exact on the transformers path (the logits `generate` computes, no extra forward pass; rows stop
   at their failure point, so the cut tokens are never sampled) and approximate on vLLM (top-k logprobs; vLLM
   rows run to their end). Evaluation generates as GRPO does.
2. **Batch fields** (`_generate_and_score_completions`, a wrapper around the base method): `prefix_ids` `(B,)` (the
   global row of the first rollout a completion grew from; equal ids share a prefix) and `prefix_lengths` `(B,)`
   join the batch, so they are shuffled and split with it and a grouping trainer can read them in `_compute_loss`.
3. **Metrics** `adaptive/*` in `self._metrics`, and `adaptive/generated_tokens` once per optimizer step
   (`training_step`).
4. **Checkpoints** carry the cumulative counters (`core.checkpoint`, name `token_adaptive`), written in
   `_save_checkpoint` and read in `_load_optimizer_and_scheduler`, the hooks TRL uses for its adaptive-entropy state.

With `use_token_adaptive: false` every override hands straight to `GRPOTrainer` (the batch only gains
`prefix_ids = own row`, `prefix_lengths = 0`), so the loss is GRPO's for the same seed.

On the temperature: continuations are sampled hotter than `temperature` but trained, like every completion, under
TRL's policy `softmax(logits / temperature)`. With vLLM and `vllm_importance_sampling_correction`, the sampled
logprobs returned for them are those of the hotter distribution, so TRL's truncated importance ratio corrects for
the shift; on the transformers path (no sampling logprobs) they are used as on-policy samples, as the seed does.
"""

from __future__ import annotations

import logging
import math

import torch
from transformers import ProcessorMixin
from trl import GRPOTrainer
from trl.extras.profiling import profiling_context

from open_r1_ext.core.checkpoint import load_extra_state, save_extra_state
from open_r1_ext.core.configs import default_config

from .backends import TransformersBackend, VLLMBackend
from .config import TokenAdaptiveConfig
from .sampling import assemble_groups


logger = logging.getLogger(__name__)

STATE_NAME = "token_adaptive"  # checkpoint-N/open_r1_ext_token_adaptive.pt (core.checkpoint)
COUNTERS = ("total_rollouts", "total_generated_tokens", "total_first_rollouts", "total_truncated", "total_resamples")


class TokenAdaptiveGRPOTrainer(GRPOTrainer):
    """GRPO trained on token-adaptive groups: see the module docstring for what changes and where.

    Overridden hooks: `_generate_single_turn` (sampling), `_generate_and_score_completions` (a wrapper adding
    `prefix_ids`/`prefix_lengths`), `training_step` (per-step token count), `_save_checkpoint` and
    `_load_optimizer_and_scheduler` (counters). `_compute_loss` is untouched.
    """

    _tag_names = ["trl", "grpo", "token-adaptive", "open-r1-ext"]
    _name = "Token-adaptive GRPO"
    _paper = {
        "title": "First Return, Entropy-Eliciting Explore",
        "id": "2507.07017",
        "citation": "Branching rollouts at high-uncertainty tokens (FR3E, arXiv:2507.07017; TreePO, arXiv:2508.17445); "
        "seed 004 of open-r1-ext.",
    }
    config_class = TokenAdaptiveConfig

    def __init__(self, model, reward_funcs, args: TokenAdaptiveConfig | None = None, *pos, **kwargs):
        args = default_config(type(self).config_class, model, args)
        super().__init__(model, reward_funcs, args, *pos, **kwargs)
        if not isinstance(self.args, TokenAdaptiveConfig):
            raise TypeError(f"TokenAdaptiveGRPOTrainer needs a TokenAdaptiveConfig, got {type(self.args).__name__}")
        if self.args.use_token_adaptive:
            unsupported = {
                "tools": bool(self.tools),
                "rollout_func": self.rollout_func is not None,
                "environment_factory": self.environment_factories is not None,
                "a multimodal processor": isinstance(self.processing_class, ProcessorMixin),
            }
            used = [name for name, on in unsupported.items() if on]
            if used:
                raise ValueError(
                    f"use_token_adaptive does not support {', '.join(used)}; set use_token_adaptive=False"
                )
        self._adaptive_backend = (
            (VLLMBackend(self) if self.use_vllm else TransformersBackend(self))
            if (self.args.use_token_adaptive)
            else None
        )
        self.adaptive_counters = dict.fromkeys(COUNTERS, 0)
        self._adaptive_pending_tokens = 0
        self._adaptive_batch: dict | None = None  # the last assembly's per-row fields, read by the wrapper below
        self.last_assembly = None  # (completions, stats) of the last adaptive step, for inspection and tests

    # ---- sampling -------------------------------------------------------------------------------------------------

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        if self._adaptive_backend is None or not self.model.training:
            return super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        if images is not None or multimodal_fields:
            raise ValueError("use_token_adaptive does not support image inputs")

        if self.use_vllm and self.state.global_step != self._last_loaded_step:
            with profiling_context(self, "sync_weights"):
                self.vllm_generation.sync_weights()
            self._last_loaded_step = self.state.global_step

        row_offset = self.accelerator.process_index * len(prompt_ids)
        args = self.args
        with profiling_context(self, "token_adaptive.assemble"):
            completions, stats = assemble_groups(
                prompt_ids,
                num_generations,
                self._adaptive_backend,
                temperature=self.temperature,
                max_completion_length=self.max_completion_length,
                first_rollout_fraction=args.first_rollout_fraction,
                max_resamples_per_prefix=args.max_resamples_per_prefix,
                adaptive_temperature_scale=args.adaptive_temperature_scale,
                keep_failed_rollouts=args.keep_failed_rollouts,
                row_offset=row_offset,
                pad_equal=self._adaptive_backend.pad_equal,
            )
        self.last_assembly = (completions, stats)
        self._adaptive_batch = {
            "prefix_ids": torch.tensor([c.prefix_id for c in completions], dtype=torch.long),
            "prefix_lengths": torch.tensor([c.prefix_length for c in completions], dtype=torch.long),
        }
        self._log_assembly(completions, stats)
        logprobs = [c.logprobs for c in completions] if completions and completions[0].logprobs is not None else None
        return [c.token_ids for c in completions], logprobs

    def _log_assembly(self, completions, stats):
        """Gather this step's counts over processes into `adaptive/*` metrics and the cumulative counters."""
        local = [
            stats.first_rollouts,
            stats.truncated,
            float(sum(stats.failure_points)),
            stats.resamples,
            len(completions),
            stats.sampled_tokens,
            float(sum(c.temperature for c in completions)),
            stats.first_rollouts + stats.resamples + stats.fill_rollouts,
        ]
        device = self.accelerator.device
        totals = self.accelerator.gather(torch.tensor([local], dtype=torch.float64, device=device)).sum(0).tolist()
        first, truncated, fp_sum, resamples, rows, tokens, temp_sum, rollouts = totals
        m = self._metrics["train"]
        m["adaptive/truncation_rate"].append(truncated / first if first else 0.0)
        m["adaptive/resample_rate"].append(resamples / rows if rows else 0.0)
        m["adaptive/avg_failure_point"].append(fp_sum / truncated if truncated else math.nan)
        m["adaptive/mean_temperature"].append(temp_sum / rows if rows else math.nan)
        c = self.adaptive_counters
        c["total_rollouts"] += int(rollouts)
        c["total_generated_tokens"] += int(tokens)
        c["total_first_rollouts"] += int(first)
        c["total_truncated"] += int(truncated)
        c["total_resamples"] += int(resamples)
        m["adaptive/total_rollouts"] = [float(c["total_rollouts"])]  # cumulative, like TRL's num_tokens
        self._adaptive_pending_tokens += int(tokens)

    def _generate_and_score_completions(self, inputs):
        self._adaptive_batch = None
        output = super()._generate_and_score_completions(inputs)
        batch, self._adaptive_batch = self._adaptive_batch, None
        device = output["completion_ids"].device
        if batch is None:  # plain generation (adaptation off, or evaluation): every row is its own prefix
            B = output["completion_ids"].size(0)
            rows = torch.arange(B, dtype=torch.long) + self.accelerator.process_index * B
            batch = {"prefix_ids": rows, "prefix_lengths": torch.zeros(B, dtype=torch.long)}
        output.update({k: v.to(device) for k, v in batch.items()})
        return output

    # ---- per-step token count ---------------------------------------------------------------------------------------

    def training_step(self, model, inputs, num_items_in_batch):
        loss = super().training_step(model, inputs, num_items_in_batch)
        # `self._step` was advanced by the base method; an optimizer step ends every `gradient_accumulation_steps`
        if self._adaptive_backend is not None and self._step % self.current_gradient_accumulation_steps == 0:
            self._metrics["train"]["adaptive/generated_tokens"].append(float(self._adaptive_pending_tokens))
            self._adaptive_pending_tokens = 0
        return loss

    # ---- checkpoints ------------------------------------------------------------------------------------------------

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        save_extra_state(self, trial, STATE_NAME, dict(self.adaptive_counters))  # gathered counts: one file

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        saved = load_extra_state(self, checkpoint, STATE_NAME)
        if saved is not None:
            self.adaptive_counters.update({k: int(saved[k]) for k in COUNTERS if k in saved})
