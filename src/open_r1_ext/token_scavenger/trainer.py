"""TokenScavenger: two-level latent-group advantages, carousel memory alignment, CE-anchored RL warm-up.

Seed: `../shared/seeds/000_2452fced7af1b1cb.txt` (its GRPO part). Its public version built "latent groups" from
contiguous slices of the batch, so the micro-advantage was always zero; here latent groups are rollouts of one
prompt that really share something (an answer, a prefix, a hidden-state cluster; see `grouping.py`). How
`TokenScavengerGRPOTrainer` departs from TRL's `GRPOTrainer`:

1. **Advantages** (`shape_batch`, the token-adaptive trainer's hook after the base method). The base method runs
   unchanged; then the advantages are recomputed by the configured estimator (`core/advantages.py`: `two_level`,
   `rloo`, `dr_grpo`, or `grpo`, which keeps TRL's own) on the rewards *gathered over all processes* (kept by the
   token-adaptive trainer's `_calculate_rewards` wrapper), and this process's slice replaces `advantages`.
2. **Loss** (`_compute_loss`, a wrapper): `w_grpo(step) * GRPO loss + sum of extra_loss_terms`, where
   `extra_loss_terms(model, inputs, reference)` returns `{metric name: (weight, value)}`: here
   `ce_loss_weight * CE(reference completions)` and `carousel_weight * MSE(logp_now, logp_stored)` on a replay
   batch. `reference` is one forward of the policy on prompt + reference completion (`ReferenceForward`), shared by
   every term that needs it; a subclass adds terms by overriding `extra_loss_terms` and `uses_reference` (DeepMime
   does). `w_grpo` is 0 for `rl_warmup_steps` optimizer steps, then ramps linearly to `grpo_loss_weight` over
   `rl_ramp_steps`.
3. **Carousel admission** reads the log-probs GRPO's loss forward already computed (`_get_per_token_logps_and_
   entropies` is wrapped to keep them), so storing costs no extra forward pass; replaying costs one forward and
   backward on `carousel_batch_size` rows.
4. **Entropy control** is TRL's (`use_adaptive_entropy`, `entropy_target`; logged by TRL as `entropy_coef`),
   defaulted to the seed's 1.5-nat target; `entropy_target_vocab_fraction: 0.15` sets `0.15 * ln|V|` instead.
5. **Checkpoints** carry the carousel (`core.checkpoint`, name `token_scavenger`, one file per process: resuming
   under another world size is refused), written in `_save_checkpoint` and read in `_load_optimizer_and_scheduler`.

The trainer subclasses `TokenAdaptiveGRPOTrainer`, whose hooks (`_generate_single_turn`, the `prefix_ids`
wrapper) are disjoint from these; `use_token_adaptive` (default false here) switches its sampling on, and the
`prefix` grouping key then groups rollouts by the prefix they were resampled from.
"""

from __future__ import annotations

import logging
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from accelerate.utils import gather_object

from open_r1_ext.core.advantages import USES_LATENT_GROUPS, get_estimator
from open_r1_ext.core.checkpoint import load_extra_state, save_extra_state
from open_r1_ext.core.configs import default_config
from open_r1_ext.core.rewards import completion_text
from open_r1_ext.token_adaptive.trainer import TokenAdaptiveGRPOTrainer

from .carousel import CarouselBuffer, pad_replay_batch
from .config import TREE, TokenScavengerConfig, grpo_weight_schedule
from .grouping import KEY_NEEDS, LatentBatch, get_grouping_key


logger = logging.getLogger(__name__)

STATE_NAME = "token_scavenger"  # checkpoint-N/open_r1_ext_token_scavenger_rank{i}.pt (core.checkpoint)

__all__ = ["ReferenceForward", "TokenScavengerConfig", "TokenScavengerGRPOTrainer", "grpo_weight_schedule"]


class ReferenceForward(NamedTuple):
    """The policy's forward on prompt + reference completion for the rows that carry a CE target.

    `output`: the model output (logits over the last `W + 1` positions); `input_ids`, `attention_mask`: `(R, P + W)`;
    `targets`, `mask`: the reference completion tokens and their mask, `(R, W)`.
    """

    output: object
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor


class TokenScavengerGRPOTrainer(TokenAdaptiveGRPOTrainer):
    """TokenScavenger on top of the token-adaptive trainer (plain GRPO sampling unless `use_token_adaptive`).

    See the module docstring for what changes w.r.t. `GRPOTrainer` and in which hook. Hooks: `shape_batch`
    (advantages and carousel candidates from the gathered rewards), `_generate_and_score_completions` (CE targets),
    `_get_per_token_logps_and_entropies` (keeps the loss forward's log-probs for the carousel), `_compute_loss`
    (weights and `extra_loss_terms`), `_save_checkpoint` / `_load_optimizer_and_scheduler` (carousel state).
    """

    _tag_names = ["trl", "grpo", "token-scavenger", "open-r1-ext"]
    _name = "TokenScavenger GRPO"
    _paper = {}  # seed 000 of open-r1-ext; no paper
    config_class = TokenScavengerConfig

    def __init__(self, model, reward_funcs, args: TokenScavengerConfig | None = None, *pos, **kwargs):
        super().__init__(model, reward_funcs, default_config(type(self).config_class, model, args), *pos, **kwargs)
        if not isinstance(self.args, TokenScavengerConfig):
            raise TypeError(f"{type(self).__name__} needs a TokenScavengerConfig, got {type(self.args).__name__}")
        args = self.args
        self.estimator = None if args.advantage_estimator == TREE else get_estimator(args.advantage_estimator)
        self.grouping_key = get_grouping_key(args.grouping_key)
        self.carousel = CarouselBuffer(args.carousel_size, seed=args.seed + self.accelerator.process_index)
        if args.entropy_target_vocab_fraction is not None:
            config = self.accelerator.unwrap_model(self.model).config
            vocab = config.get_text_config().vocab_size if hasattr(config, "get_text_config") else config.vocab_size
            # TRL's controller reads `args.entropy_target` at every step
            args.entropy_target = args.entropy_target_vocab_fraction * math.log(vocab)
        self._keep_logps = False  # set around the GRPO loss forward: its log-probs (carousel) and entropies
        self._kept_logps = None
        self._warned_constant_groups = False
        self._probed_step = -1  # the optimizer step whose loss terms were last probed (`loss_term_probe_every`)
        self._warned_no_reference = False

    # ---- advantages ---------------------------------------------------------------------------------------------

    def shape_batch(self, output, gathered, log_ratios, adaptive):
        """The configured estimator's advantages on the rewards gathered over all processes (then the token-adaptive
        importance weights on adaptive steps), and the carousel's admission fields."""
        rewards_per_func, completions, completion_ids_list = gathered
        mode = "train" if self.model.training else "eval"
        device = output["completion_ids"].device
        local_n = output["completion_ids"].size(0)
        process_slice = slice(self.accelerator.process_index * local_n, (self.accelerator.process_index + 1) * local_n)
        rewards = self.gathered_rewards(rewards_per_func.to(device))  # (N,)

        if self.args.advantage_estimator not in ("grpo", TREE):
            num_generations = self.num_generations if mode == "train" else self.num_generations_eval
            group_ids = torch.arange(rewards.numel(), device=device) // num_generations
            if self.args.advantage_estimator in USES_LATENT_GROUPS:
                latent_ids = self._latent_labels(output, completions, completion_ids_list, group_ids)
            else:
                latent_ids = torch.arange(rewards.numel(), device=device)
            estimate = self.estimator(
                rewards,
                group_ids,
                latent_ids,
                scale=self.scale_rewards != "none",
                omega=self.args.micro_weight,
                eps=1e-4,
                clamp_max=self.args.advantage_clamp_max,
            )
            advantages = estimate.advantages[process_slice]
            output["advantages"] = (
                self.apply_importance_weights(output, advantages, log_ratios) if adaptive else advantages
            ).to(output["advantages"].dtype)
            self._log_advantages(mode, estimate, group_ids, latent_ids)
        else:
            # GRPO's, or on token-adaptive steps the tree credit (`tree`, or tree_advantages with `grpo`)
            super().shape_batch(output, gathered, log_ratios, adaptive)
            if self.args.advantage_clamp_max is not None:
                clamp = self.args.advantage_clamp_max
                output["advantages"] = output["advantages"].clamp(-clamp, clamp)

        if mode == "train" and self.args.carousel_weight > 0:
            local = rewards[process_slice]
            output["scavenger_admit"] = (local >= self.args.carousel_reward_threshold) & torch.isfinite(local)
            output["scavenger_reward"] = torch.nan_to_num(local, nan=0.0, posinf=0.0, neginf=0.0)

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if self.uses_reference():
            output.update(self._reference_targets(inputs, output["completion_ids"].device))
        return output

    def _latent_labels(self, output, completions, completion_ids_list, group_ids) -> torch.Tensor:
        """Latent labels `(N,)` over the gathered batch, from only the fields the grouping key needs."""
        needs = KEY_NEEDS[self.args.grouping_key]
        device = group_ids.device
        batch = LatentBatch(
            group_ids=group_ids,
            prefix_tokens=self.args.prefix_tokens,
            num_clusters=self.args.hidden_num_clusters,
        )
        if "completions" in needs:
            batch.completions = [completion_text(c) for c in gather_object(list(completions))]
        adaptive_prefixes = self.args.use_token_adaptive and self.model.training and "prefix_ids" in output
        if "prefix_ids" in needs and adaptive_prefixes:
            batch.prefix_ids = self.accelerator.gather(output["prefix_ids"].to(device))
        elif "completion_ids" in needs:
            k = self.args.prefix_tokens
            first = torch.full((len(completion_ids_list), k), -1, dtype=torch.long)
            for i, ids in enumerate(completion_ids_list):
                ids = list(ids)[:k]
                first[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            batch.completion_ids = self.accelerator.gather(first.to(device))
        if "hidden" in needs:
            batch.hidden = self.accelerator.gather(self._pooled_hidden(output))
        return self.grouping_key(batch).to(device)

    @torch.no_grad()
    def _pooled_hidden(self, output) -> torch.Tensor:
        """Last-layer hidden states mean-pooled over completion tokens, `(B, H)` (one extra no-grad forward, without
        the full-vocabulary logits)."""
        input_ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
        mask = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
        # logits_to_keep=1: the hidden states are what is wanted, not full-vocabulary logits at every position
        out = self.model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True, logits_to_keep=1)
        hidden = out.hidden_states[-1]
        c_mask = output["completion_mask"].unsqueeze(-1).to(hidden.dtype)
        c_hidden = hidden[:, -output["completion_ids"].size(1) :]
        return ((c_hidden * c_mask).sum(1) / c_mask.sum(1).clamp(min=1.0)).float()

    def _log_advantages(self, mode, estimate, group_ids, latent_ids):
        m = self._metrics[mode]
        m["scavenger/micro_adv_std"].append(estimate.micro.std().item() if estimate.micro.numel() > 1 else 0.0)
        m["scavenger/macro_adv_std"].append(estimate.macro.std().item() if estimate.macro.numel() > 1 else 0.0)
        if self.args.advantage_estimator in USES_LATENT_GROUPS:
            pairs = torch.stack([group_ids, latent_ids.to(group_ids.device)], dim=1)
            _, inverse, counts = torch.unique(pairs, dim=0, return_inverse=True, return_counts=True)
            num_prompts = int(group_ids.max().item()) + 1
            m["scavenger/latent_groups_per_prompt"].append(counts.numel() / num_prompts)
            m["scavenger/singleton_frac"].append((counts[inverse] == 1).float().mean().item())
            # a latent group whose rollouts all have one reward adds no micro signal; when every group is like that
            # (e.g. the `answer` key with a reward that depends on the answer only) the estimate is GRPO's
            multi = counts[inverse] > 1
            constant = multi & (estimate.micro == 0)
            share = constant.float().sum() / multi.float().sum().clamp(min=1.0)
            m["scavenger/latent_reward_constant_frac"].append(share.item())
            if (
                mode == "train"
                and bool(multi.any())
                and bool((constant == multi).all())
                and not self._warned_constant_groups
            ):
                self._warned_constant_groups = True
                logger.warning(
                    "TokenScavenger: every latent group of this batch (%s key) is reward-constant, so the two-level "
                    "estimate equals GRPO's advantages; use a reward that differs inside a latent group (e.g. "
                    "`scratchpad_steps`) or another grouping key",
                    self.args.grouping_key,
                )

    # ---- CE anchor ----------------------------------------------------------------------------------------------

    def _reference_targets(self, inputs, device) -> dict[str, torch.Tensor]:
        """Tokenised reference completions `(B, C_ref)` + eos, their mask, and `ce_rows` `(B,)`: the first row of
        each prompt in this batch (a prompt is repeated `num_generations` times; its CE is counted once)."""
        if "completion" not in inputs[0] or not hasattr(self.processing_class, "convert_tokens_to_ids"):
            if not self._warned_no_reference:
                logger.warning("ce_loss_weight > 0 but the dataset has no `completion` column: no CE anchor")
                self._warned_no_reference = True
            return {}
        tok = self.processing_class
        texts = [completion_text(x["completion"]) for x in inputs]
        ids = tok(text=texts, add_special_tokens=False)["input_ids"]
        ids = [row[: self.max_completion_length - 1] + [tok.eos_token_id] for row in ids]
        width = max(len(r) for r in ids)
        ce_ids = torch.full((len(ids), width), tok.pad_token_id, dtype=torch.long)
        ce_mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, row in enumerate(ids):
            ce_ids[i, : len(row)] = torch.tensor(row)
            ce_mask[i, : len(row)] = 1
        seen, first = set(), []
        for x in inputs:
            key = str(x["prompt"])
            first.append(key not in seen)
            seen.add(key)
        return {
            "ce_completion_ids": ce_ids.to(device),
            "ce_completion_mask": ce_mask.to(device),
            "ce_rows": torch.tensor(first, dtype=torch.bool, device=device),
        }

    def uses_reference(self) -> bool:
        """Whether the loss needs the policy's forward on the reference completions (`ReferenceForward`)."""
        return self.args.ce_loss_weight > 0

    def reference_forward(self, model, inputs) -> ReferenceForward | None:
        """The policy's forward on prompt + reference completion of this micro-batch's `ce_rows` (None without)."""
        rows = inputs.get("ce_rows")
        if rows is None or not bool(rows.any()):
            return None
        comp, comp_mask = inputs["ce_completion_ids"][rows], inputs["ce_completion_mask"][rows]
        width = int(comp_mask.sum(1).max().item())
        comp, comp_mask = comp[:, :width], comp_mask[:, :width]
        input_ids = torch.cat([inputs["prompt_ids"][rows], comp], dim=1)
        attention = torch.cat([inputs["prompt_mask"][rows], comp_mask], dim=1)
        output = model(input_ids=input_ids, attention_mask=attention, logits_to_keep=width + 1)
        return ReferenceForward(output, input_ids, attention, comp, comp_mask)

    @staticmethod
    def reference_ce(reference: ReferenceForward) -> torch.Tensor:
        """Mean token CE of the reference completions under the policy."""
        logits = reference.output.logits[:, :-1]
        ce = F.cross_entropy(
            logits.float().reshape(-1, logits.size(-1)), reference.targets.reshape(-1), reduction="none"
        )
        mask = reference.mask.reshape(-1).float()
        return (ce * mask).sum() / mask.sum().clamp(min=1.0)

    # ---- carousel -----------------------------------------------------------------------------------------------

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        out = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        if self._keep_logps and self._kept_logps is None:  # the GRPO loss forward: its log-probs and entropies
            self._kept_logps = (out[0].detach(), out[1])
        return out

    def _carousel_term(self, model, inputs=None) -> torch.Tensor | None:
        """The carousel replay term (`carousel_loss`) on a sampled replay batch `(R, C)`; None when it is empty."""
        entries = self.carousel.sample(self.args.carousel_batch_size)
        if not entries:
            return None
        batch = pad_replay_batch(entries, self._tokenizer.pad_token_id, self.accelerator.device)
        logps, _, _ = self._get_per_token_logps_and_entropies(
            model, batch["input_ids"], batch["attention_mask"], batch["logits_to_keep"]
        )
        mask = batch["completion_mask"].float()
        stored = batch["old_logps"]
        below = ((logps.detach() < stored).float() * mask).sum() / mask.sum().clamp(min=1.0)
        self._metrics["train"]["scavenger/carousel_below_frac"].append(below.item())
        kind = self.args.carousel_loss
        if kind == "mse":  # the seed's: also pushes down a success the policy now prefers
            per_token = (logps - stored) ** 2
        elif kind == "one_sided":  # replay of successes: pull up only what fell below its stored log-prob
            per_token = torch.relu(stored - logps) ** 2
        else:  # "pg": truncated importance-weighted policy gradient on stored successes
            ratio = torch.exp(logps.detach() - stored).clamp(max=self.args.carousel_ratio_cap)
            baseline = inputs["scavenger_reward"].float().mean() if inputs is not None else 0.0
            rewards = torch.tensor([e["reward"] for e in entries], device=logps.device)
            advantage = (rewards - baseline).clamp(min=0.0).unsqueeze(1)
            per_token = -ratio * advantage * logps
        return (per_token * mask).sum() / mask.sum().clamp(min=1.0)

    def _entropy_correction(self, inputs, entropies, weight: float) -> torch.Tensor | None:
        """`-(1 - w) * c * H`: with it, TRL's entropy bonus (which sits inside the GRPO loss that `w` scales) acts
        at its own coefficient `c` whatever the GRPO weight (`entropy_follows_grpo_weight: false`). `H` and `c` as
        TRL forms them: the mean entropy over completion tokens, the coefficient of the previous optimizer step
        (0 while the adaptive controller's last entropy is above target)."""
        if self.args.entropy_follows_grpo_weight or weight == 1.0 or entropies is None:
            return None
        if not self._entropy_bonus_enabled:
            return None
        if self.use_adaptive_entropy:
            coef = self.entropy_coef if self._last_world_entropy <= self.args.entropy_target else 0.0
        else:
            coef = self.entropy_coef
        if coef == 0.0:
            return None
        mask = inputs["completion_mask"].float()
        if inputs.get("tool_mask") is not None:
            mask = mask * inputs["tool_mask"]
        h = (entropies * mask).sum() / mask.sum().clamp(min=1.0) / self.current_gradient_accumulation_steps
        return -(1.0 - weight) * coef * h

    def _admit(self, inputs, logps):
        """Store this micro-batch's admitted rollouts with the log-probs they have now (before the update)."""
        old = inputs.get("old_per_token_logps")
        logps = old if old is not None else logps
        admit = inputs["scavenger_admit"].nonzero(as_tuple=True)[0].tolist()
        for i in admit:
            p = inputs["prompt_ids"][i][inputs["prompt_mask"][i].bool()]
            c_mask = inputs["completion_mask"][i].bool()
            self.carousel.add(p, inputs["completion_ids"][i][c_mask], logps[i][c_mask], inputs["scavenger_reward"][i])

    # ---- loss ---------------------------------------------------------------------------------------------------

    def extra_loss_terms(
        self, model, inputs, reference: ReferenceForward | None
    ) -> dict[str, tuple[float, torch.Tensor]]:
        """Loss terms added to the weighted GRPO loss, `{metric name: (weight, value)}`; values are per micro-batch
        means (the caller divides by gradient accumulation). `model` is the unwrapped policy; `reference` its
        forward on the reference completions when `uses_reference()`. Override (calling super) to add terms."""
        args = self.args
        zero = torch.zeros((), device=self.accelerator.device)
        terms: dict[str, tuple[float, torch.Tensor]] = {}
        if args.ce_loss_weight > 0 and "ce_rows" in inputs:
            terms["scavenger/ce_loss"] = (args.ce_loss_weight, self.reference_ce(reference) if reference else zero)
        if self.model.training and args.carousel_weight > 0 and "scavenger_admit" in inputs:
            term = self._carousel_term(model, inputs)  # replayed before this batch is admitted
            terms["scavenger/carousel_loss"] = (args.carousel_weight, term if term is not None else zero)
        return terms

    def _compute_loss(self, model, inputs):
        mode = "train" if self.model.training else "eval"
        args = self.args
        carousel_on = mode == "train" and args.carousel_weight > 0 and "scavenger_admit" in inputs
        self._keep_logps, self._kept_logps = True, None
        try:
            grpo_loss = super()._compute_loss(model, inputs)
        finally:
            self._keep_logps = False
        (kept, entropies), self._kept_logps = self._kept_logps or (None, None), None

        if mode == "train":
            weight = grpo_weight_schedule(
                self.state.global_step, args.rl_warmup_steps, args.rl_ramp_steps, args.grpo_loss_weight
            )
        else:
            weight = args.grpo_loss_weight
        loss = weight * grpo_loss
        correction = self._entropy_correction(inputs, entropies, weight) if mode == "train" else None
        if correction is not None:
            loss = loss + correction
        metrics = self._metrics[mode]
        metrics["scavenger/grpo_weight"].append(weight)
        metrics["scavenger/grpo_loss"].append(self.accelerator.gather(grpo_loss.detach()).mean().item())

        # The extra forwards run on the unwrapped module: under DDP each wrapped forward is a collective (buffer
        # broadcast), and whether a process has CE rows or replay entries differs between processes. Their
        # gradients still reach DDP's reduction, which fires once per parameter for the whole backward.
        module = self.accelerator.unwrap_model(model)
        reference = self.reference_forward(module, inputs) if self.uses_reference() else None
        accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1.0
        terms = self.extra_loss_terms(module, inputs, reference)
        for name, (term_weight, value) in terms.items():
            loss = loss + term_weight * value / accumulation
            metrics[name].append(self.accelerator.gather(value.detach()).mean().item())
        if mode == "train" and self._probe_due():
            self._probe_loss_terms(model, weight * grpo_loss, terms)
        if carousel_on:
            if kept is not None:
                self._admit(inputs, kept)
            size = torch.tensor(float(len(self.carousel)), device=self.accelerator.device)
            metrics["scavenger/carousel_size"].append(self.accelerator.gather(size).mean().item())
        return loss

    def _probe_due(self) -> bool:
        every = self.args.loss_term_probe_every
        step = self.state.global_step
        if not every or step % every or self._probed_step == step or self.accelerator.num_processes > 1:
            return False  # under DDP a second backward would interfere with the gradient reduction: not probed
        self._probed_step = step
        return True

    def _probe_loss_terms(self, model, weighted_grpo: torch.Tensor, terms: dict) -> None:
        """Each extra term's gradient against the weighted GRPO term's, on this micro-batch: whether a term acts
        (its norm ratio) and whether it only repeats GRPO (its cosine). `autograd.grad` leaves `.grad` untouched."""
        params = [p for p in model.parameters() if p.requires_grad]

        def flat(value):
            if not value.requires_grad:
                return None
            grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
            return torch.cat(
                [(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)]
            )

        g_rl = flat(weighted_grpo)
        for name, (term_weight, value) in terms.items():
            g = flat(term_weight * value)
            if g is None or g_rl is None:
                continue
            n_rl, n = g_rl.norm(), g.norm()
            if n_rl <= 1e-8 * max(1.0, n.item()):
                # every group of this micro-batch was reward-constant: GRPO has no gradient to compare with, and a
                # ratio over ~0 (it reached 6e10 on the carousel benchmark) would swamp the logged mean
                ratio = cos = math.nan
            else:
                ratio, cos = (n / n_rl).item(), (g @ g_rl / (n * n_rl).clamp(min=1e-12)).item()
            self._metrics["train"][f"{name}_grad_ratio"].append(ratio)
            self._metrics["train"][f"{name}_grad_cos"].append(cos)

    # ---- checkpoints --------------------------------------------------------------------------------------------

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.args.carousel_weight > 0:
            save_extra_state(self, trial, STATE_NAME, {"carousel": self.carousel.state_dict()}, per_process=True)

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if self.args.carousel_weight > 0:
            saved = load_extra_state(self, checkpoint, STATE_NAME, per_process=True)
            if saved is not None:
                self.carousel.load_state_dict(saved["carousel"])
