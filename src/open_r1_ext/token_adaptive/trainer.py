"""Token-adaptive GRPO: branch rollouts where the policy is most uncertain, resample from the prefix, credit the tree.

Seed: `../shared/seeds/004_f3a6d25cb4a4dcc2.txt`, whose public version logged its adaptive rollouts and then trained
plain GRPO on the original batch. Here the adaptive completions are the batch. What `TokenAdaptiveGRPOTrainer`
changes w.r.t. TRL's `GRPOTrainer`:

1. **Sampling** (`_generate_single_turn`, the only generation hook overridden). In training, each group of
   `num_generations` rows is assembled by `sampling.assemble_groups`: first rollouts with per-token entropy, each
   branched at its branch point (`branch_rule: relative`, the default: its entropy peak between
   `branch_min_fraction` and `branch_max_fraction` of its length, as FR3E / TreePO branch; `absolute`: the seed's
   first position past fixed thresholds), continuations resampled from prompt + prefix (at the training
   temperature unless `adaptive_temperature_scale != 1`), at most `max_resamples_per_prefix` per prefix, then
   plain rollouts for any slot left. A first rollout generated to its end stays in the group as its branch's base
   trajectory. TRL then decodes, rewards, computes old log-probs, advantages and the loss on exactly these
   completions. Uncertainty is exact on the transformers path (the logits `generate` computes, no extra forward)
   and approximate on vLLM (top-k logprobs). Evaluation generates as GRPO does.
2. **Advantages and batch fields** (`_generate_and_score_completions`, a wrapper around the base method, and its
   hook `shape_batch`). With
   `tree_advantages` the advantages become per token, `(B, T)`, from the rewards gathered over all processes
   (`core.advantages.tree_token_advantages`): a prefix shared by k siblings carries its node's advantage once in
   total, continuation tokens their leaf's advantage against the node; a row without a branch keeps GRPO's. Tokens
   sampled at another temperature than the policy's carry `min(pi_T / mu, importance_ratio_cap)` as a factor (the
   same product TRL's token-level truncated importance sampling forms, folded into the advantage since the weight
   is detached and non-negative). `prefix_ids` `(B,)` (the global row of the first rollout a completion grew
   from) and `prefix_lengths` `(B,)` (the tokens it shares) join the batch for grouping trainers.
3. **Metrics** `adaptive/*` in `self._metrics` (branch positions, prefix-copy share of the loss tokens, importance
   weights), and `adaptive/generated_tokens` once per optimizer step (`training_step`).
4. **Checkpoints** carry the cumulative counters and the branch-position histogram (`core.checkpoint`, name
   `token_adaptive`), written in `_save_checkpoint` and read in `_load_optimizer_and_scheduler`.

With `use_token_adaptive: false` every override hands straight to `GRPOTrainer` (the batch only gains
`prefix_ids = own row`, `prefix_lengths = 0`), so the loss is GRPO's for the same seed.
"""

from __future__ import annotations

import logging
import math

import torch
from accelerate.utils import gather_object
from transformers import ProcessorMixin
from trl import GRPOTrainer
from trl.extras.profiling import profiling_context

from open_r1_ext.core.advantages import expand_token_advantages, tree_token_advantages
from open_r1_ext.core.checkpoint import load_extra_state, save_extra_state
from open_r1_ext.core.configs import default_config

from .backends import TransformersBackend, VLLMBackend
from .config import TokenAdaptiveConfig
from .sampling import assemble_groups


logger = logging.getLogger(__name__)

STATE_NAME = "token_adaptive"  # checkpoint-N/open_r1_ext_token_adaptive.pt (core.checkpoint)
COUNTERS = ("total_rollouts", "total_generated_tokens", "total_first_rollouts", "total_truncated", "total_resamples")
HIST_BINS = 10  # branch position / rollout length, in tenths


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
        self.branch_histogram = [0] * HIST_BINS  # cumulative counts of branch positions by tenth of the rollout
        self._adaptive_pending_tokens = 0
        self._gathered_rewards = None  # (rewards_per_func (N, F) over all processes, local completions, local ids)
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
                keep_base=args.keeps_base(self.use_vllm),
                row_offset=row_offset,
                pad_equal=self._adaptive_backend.pad_equal,
            )
        self.last_assembly = (completions, stats)
        self._adaptive_batch = {
            "prefix_ids": torch.tensor([c.prefix_id for c in completions], dtype=torch.long),
            "prefix_lengths": torch.tensor([c.prefix_length for c in completions], dtype=torch.long),
            "log_ratio": [c.log_ratio for c in completions],
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
        fractions = gather_object(list(stats.branch_fractions)) if self.accelerator.num_processes > 1 else None
        fractions = fractions if fractions is not None else list(stats.branch_fractions)
        for f in fractions:
            self.branch_histogram[min(int(f * HIST_BINS), HIST_BINS - 1)] += 1
        m = self._metrics["train"]
        m["adaptive/branch_position"].append(sum(fractions) / len(fractions) if fractions else math.nan)
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

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._gathered_rewards = (rewards_per_func, completions, completion_ids_list)  # read in the wrapper below
        return rewards_per_func

    def gathered_rewards(self, rewards_per_func: torch.Tensor) -> torch.Tensor:
        """The scalar reward TRL normalises (`sum_then_normalize`) per rollout of the gathered batch, `(N,)`;
        NaN where every reward function returned None."""
        device = rewards_per_func.device
        rewards = (rewards_per_func * self.reward_weights.to(device).unsqueeze(0)).nansum(dim=1)
        rewards[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
        return rewards

    def _generate_and_score_completions(self, inputs):
        self._adaptive_batch, self._gathered_rewards = None, None
        output = super()._generate_and_score_completions(inputs)
        batch, self._adaptive_batch = self._adaptive_batch, None
        gathered, self._gathered_rewards = self._gathered_rewards, None
        device = output["completion_ids"].device
        B = output["completion_ids"].size(0)
        adaptive = batch is not None
        if not adaptive:  # plain generation (adaptation off, or evaluation): every row is its own prefix
            rows = torch.arange(B, dtype=torch.long) + self.accelerator.process_index * B
            batch = {"prefix_ids": rows, "prefix_lengths": torch.zeros(B, dtype=torch.long)}
        output.update({k: batch[k].to(device) for k in ("prefix_ids", "prefix_lengths")})
        self.shape_batch(output, gathered, batch.get("log_ratio"), adaptive)
        return output

    def shape_batch(self, output: dict, gathered, log_ratios: list | None, adaptive: bool) -> None:
        """Set `output["advantages"]` after the base method computed GRPO's, and any per-row field derived from the
        gathered rewards: the hook a subclass overrides (TokenScavenger's estimators and carousel admission).

        `gathered` is `(rewards_per_func (N, F) over all processes, local completions, local completion ids)`;
        `log_ratios` the local rows' per-token `log pi_T - log mu` (None entries: on-policy rows); `adaptive`
        whether this step's batch was assembled by the sampler. Here, on adaptive steps: tree credit
        (`tree_advantages`) over the gathered batch, then the importance weights, and the `adaptive/*` metrics.
        """
        if not adaptive:
            return
        device = output["completion_ids"].device
        B, T = output["completion_ids"].shape
        mask = output["completion_mask"].float()
        all_ids = self.accelerator.gather(output["prefix_ids"])
        all_lengths = self.accelerator.gather(output["prefix_lengths"])
        m = self._metrics["train"]
        # prefix copies: the tokens a node's shared prefix occupies beyond its first copy
        _, node, k = torch.unique(all_ids, return_inverse=True, return_counts=True)
        copies = ((k[node] - 1).float() / k[node].float() * all_lengths.float()).sum()
        total = self.accelerator.gather(mask.sum()).sum()
        m["adaptive/prefix_copy_share"].append((copies / total.clamp(min=1.0)).item())
        advantages = output["advantages"]
        if self.args.tree_advantages and gathered is not None:
            rewards = self.gathered_rewards(gathered[0].to(device))
            group_ids = torch.arange(rewards.numel(), device=device) // self.num_generations
            parts = tree_token_advantages(
                rewards, group_ids, all_ids, all_lengths, scale=self.scale_rewards != "none", eps=1e-4
            )
            local = slice(self.accelerator.process_index * B, (self.accelerator.process_index + 1) * B)
            advantages = expand_token_advantages(type(parts)(*(x[local] for x in parts)), T)
            # how often a branch pays: a node whose leaves all score alike gives its continuations no credit
            branched = (parts.siblings > 1) & (all_lengths.to(device) > 0)
            node_key = group_ids * (int(all_ids.max().item()) + 1) + all_ids.to(device)
            mixed = [
                bool(r[torch.isfinite(r)].unique().numel() > 1)
                for r in (rewards[node_key == n] for n in node_key[branched].unique())
            ]
            m["adaptive/mixed_node_frac"].append(sum(mixed) / len(mixed) if mixed else math.nan)
        output["advantages"] = self.apply_importance_weights(output, advantages, log_ratios)
        # the share of loss tokens that carry any credit (GRPO: every token of a group whose rewards differ)
        adv = output["advantages"]
        adv = adv if adv.dim() == 2 else adv.unsqueeze(1).expand(B, T)
        credited = self.accelerator.gather(((adv != 0).float() * mask).sum()).sum()
        m["adaptive/credited_token_frac"].append((credited / total.clamp(min=1.0)).item())

    def apply_importance_weights(self, output: dict, advantages: torch.Tensor, log_ratios: list | None):
        """`advantages` (`(B,)` or `(B, T)`) times the per-token importance weights of off-policy tokens, `(B, T)`;
        unchanged when every row of the step was on-policy. Logs the weights' mean and capped share."""
        B, T = output["completion_ids"].shape
        weights = self._importance_weights(log_ratios or [None] * B, B, T, output["completion_ids"].device)
        if weights is None:
            return advantages.to(output["advantages"].dtype)
        mask = output["completion_mask"].bool()
        advantages = (advantages if advantages.dim() == 2 else advantages.unsqueeze(1).expand(B, T)) * weights
        w = weights[mask]
        m = self._metrics["train"]
        m["adaptive/importance_weight_mean"].append(self.accelerator.gather(w.mean()).mean().item())
        capped = (w >= self.args.importance_ratio_cap).float().mean()
        m["adaptive/importance_weight_capped"].append(self.accelerator.gather(capped).mean().item())
        return advantages.to(output["advantages"].dtype)

    def _importance_weights(self, log_ratios, B: int, T: int, device) -> torch.Tensor | None:
        """`(B, T)` per-token `min(exp(log pi_T - log mu), cap)` (1 where a token was sampled on-policy), or None
        when every row of this step was on-policy (on every process)."""
        any_here = torch.tensor(float(any(r is not None for r in log_ratios)), device=device)
        if self.accelerator.gather(any_here).sum().item() == 0:
            return None
        weights = torch.ones(B, T, device=device)
        for i, r in enumerate(log_ratios):
            if r is not None:
                n = min(len(r), T)
                lr = torch.tensor(r[:n], dtype=torch.float32, device=device)
                weights[i, :n] = torch.exp(lr).clamp(max=self.args.importance_ratio_cap)
        return weights

    def summary_results(self) -> dict:
        """The branch-position histogram (counts by tenth of the rollout's length), for `results.json`."""
        if self._adaptive_backend is None:
            return {}
        return {"branch_position_histogram": list(self.branch_histogram), **self.adaptive_counters}

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
        state = {**self.adaptive_counters, "branch_histogram": list(self.branch_histogram)}
        save_extra_state(self, trial, STATE_NAME, state)  # gathered counts: one file

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        saved = load_extra_state(self, checkpoint, STATE_NAME)
        if saved is not None:
            self.adaptive_counters.update({k: int(saved[k]) for k in COUNTERS if k in saved})
            self.branch_histogram = [int(x) for x in saved.get("branch_histogram", self.branch_histogram)]
