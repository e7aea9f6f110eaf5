"""RL token compression: a keep/mask policy and a GPT-2 reconstructor trained jointly by rate-distortion.

Seed: `../shared/seeds/001_78816de68502cff8.txt` (issue #7). How this departs from plain GRPO:

1. **Actions are masks, not text.** For each training sequence `x (n tokens)` the policy samples `num_generations`
   masks (which tokens to remove). By default (`ratio_control: ratio`) each mask removes exactly
   `round(target_ratio * n)` tokens, sampled without replacement from the policy's scores (Plackett-Luce, Gumbel-top-k),
   so the compression ratio is fixed by construction and cannot drift to 0 or 1. With `ratio_control: lambda` each
   token is removed independently (Bernoulli) and the ratio is whatever the trade-off `distortion_lambda` produces.
2. **Reward = rate saved - λ · distortion**, with rate the fraction removed and distortion the reconstructor's
   teacher-forced NLL (`distortion: nll`) or error count (`distortion: error`) summed over the removed tokens,
   divided by `n`. Advantages are normalised within the group of masks of the same sequence, as in GRPO; at a fixed
   ratio the rate term is constant within a group, so only the distortion ranks the masks.
3. **One sample, one update, so no clipping and no reference model.** Masks are sampled and used once by the current
   policy, so GRPO's importance ratio is 1 and its clipping and KL terms would be inert; the loss is the plain
   policy gradient `-A · log π(mask)` (divided by `n`).
4. **Joint training without target networks.** In the same step and the same forward pass, the reconstructor learns
   cross-entropy on the tokens the policy's *current* masks removed. To make the baselines a fair comparison, each
   step also adds one row per sequence masked by a baseline at the same ratio (random, frequency, surprisal, cycling)
   or fully masked (which trains the reconstructor as a plain LM, the LM the surprisal baseline ranks tokens with).

Why `transformers.Trainer` and not `GRPOTrainer`: `GRPOTrainer.__init__` and `_generate_and_score_completions` are
built around generating text with a causal LM from prompts and scoring it with reward functions; none of that
applies when the action is a mask over a given sequence, and overriding `_compute_loss` alone would still leave
generation, reward functions and the reference model in the way. `Trainer` gives what is needed (optimizer,
scheduler, logging, checkpoints with optimizer/RNG state, resume, `accelerate launch` / `torchrun`) and the only
hooks overridden are `compute_loss` (the joint step; also what `evaluate()` scores), `training_step` (gradients
averaged by hand under several processes), `create_optimizer` (separate learning rates for the policy and the
reconstructor), `log` (NaN-safe averaged metrics, `eval_`-prefixed in evaluation, as `GRPOTrainer.log`, through
`core.metrics`) and `_save` (tied GPT-2 embeddings and the architecture file). `CompressionConfig`
(`compression/config.py`) subclasses `GRPOConfig` to reuse `num_generations`, learning rate, logging, output and
checkpoint settings, and the recipe format of every other trainer here.

Extra state (the frequency table and the number of joint steps) lives in buffers of `CompressionModel`, so it is
saved and restored with the weights; no extra checkpoint file is needed (`core.checkpoint` is not used).

Training goes through the launch script (`python src/open_r1_ext/grpo.py --config recipes/compression_cpu.yaml`);
data preparation, evaluation and the hyper-parameter search are `launch/compression_{prepare,evaluate,search}.py`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import Trainer, default_data_collator

from open_r1_ext.compression.baselines import baseline_mask
from open_r1_ext.compression.config import CompressionConfig
from open_r1_ext.compression.data import is_prepared, load_tokenizer, prepare_data, to_dataset_dict
from open_r1_ext.compression.models import (
    CompressionModel,
    KeepMaskPolicy,
    PolicySettings,
    ReconstructorSettings,
    build_reconstructor,
    num_to_mask,
    reconstruction_logits,
    sample_bernoulli,
    sample_topk,
)
from open_r1_ext.core.metrics import average_metrics, new_metrics


SCRATCH = ("", "scratch", "none")
BASELINE_ROW_KINDS = ("random", "frequency", "surprisal", "all")


def policy_settings(args: CompressionConfig, vocab_size: int) -> PolicySettings:
    return PolicySettings(
        vocab_size=vocab_size,
        hidden_size=args.policy_hidden_size,
        num_layers=args.policy_num_layers,
        kernel_size=args.policy_kernel_size,
    )


def ensure_data(args: CompressionConfig, pretrained: str | None = None) -> Path:
    """Prepare `args.data_dir` when it is missing (on the main process first under distributed launch)."""
    from accelerate import PartialState

    with PartialState().main_process_first():
        if not is_prepared(args.data_dir):
            prepare_data(
                args.data_dir,
                vocab_size=args.vocab_size,
                seq_len=args.seq_len,
                max_sequences=args.max_sequences,
                tokenizer_path=pretrained,
                texts_folder=args.texts_folder,
            )
    return Path(args.data_dir)


def build_compression_model(args: CompressionConfig, tokenizer, pretrained: str | None = None, token_freq=None):
    """Policy + reconstructor for `tokenizer`'s vocabulary; `pretrained` = GPT-2 path/hub id or None (scratch)."""
    vocab = len(tokenizer)
    policy = KeepMaskPolicy(policy_settings(args, vocab))
    reconstructor = build_reconstructor(
        vocab,
        args.seq_len,
        ReconstructorSettings(n_layer=args.recon_n_layer, n_embd=args.recon_n_embd, n_head=args.recon_n_head),
        pretrained=pretrained,
    )
    model = CompressionModel(
        policy,
        reconstructor,
        mask_id=tokenizer.mask_token_id,
        sep_id=tokenizer.sep_token_id,
        pad_id=tokenizer.pad_token_id,
        seq_len=args.seq_len,
    )
    if token_freq is not None:
        model.token_freq.copy_(token_freq)
    return model


def sample_masks(scores: torch.Tensor, args: CompressionConfig) -> tuple[torch.Tensor, torch.Tensor, int]:
    """`(mask (R, n), logp (R,), k)` sampled from `scores (R, n)`: exactly `k` tokens at `target_ratio`, or each token
    independently under `ratio_control: lambda` (then `k` is the achieved ratio's count, for the baseline rows)."""
    n = scores.shape[1]
    if args.ratio_control == "ratio":
        k = num_to_mask(n, args.target_ratio)
        mask, logp = sample_topk(scores.float(), k)
    else:
        mask, logp = sample_bernoulli(scores.float())
        k = num_to_mask(n, mask.float().mean().item())
    return mask, logp, k


def baseline_row_kinds(step: int, batch_size: int) -> list[str]:
    """Which baseline masks each sequence's extra row at joint step `step`, cycling through `BASELINE_ROW_KINDS`."""
    return [BASELINE_ROW_KINDS[(step * batch_size + i) % len(BASELINE_ROW_KINDS)] for i in range(batch_size)]


def baseline_row_masks(core: CompressionModel, x: torch.Tensor, k: int, kinds: list[str]) -> torch.Tensor:
    """Bool mask `(B, n)`: row `i` masked by baseline `kinds[i]` at `k` tokens, or entirely when it is `all`."""
    bmask = torch.zeros_like(x, dtype=torch.bool)
    for kind in set(kinds):
        idx = torch.tensor([i for i, kd in enumerate(kinds) if kd == kind], device=x.device)
        if kind == "all":
            bmask[idx] = True
        else:
            bmask[idx] = baseline_mask(
                kind,
                x[idx],
                k,
                token_freq=core.token_freq,
                reconstructor=core.reconstructor,
                mask_id=core.mask_id,
                sep_id=core.sep_id,
            )
    return bmask


def rate_distortion_reward(
    nll: torch.Tensor, mask: torch.Tensor, correct: torch.Tensor, distortion: str, distortion_lambda: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(rate, distortion, reward)`, each `(R,)`, of masks `(R, n)`; `nll (R, n)` and `correct (R, n)` (removed
    tokens the reconstructor got right under teacher forcing) are per token. Both terms are divided by `n`."""
    n = mask.shape[1]
    if distortion == "nll":
        dist = (nll * mask).sum(1) / n
    else:
        dist = (mask & ~correct).sum(1).float() / n
    rate = mask.float().mean(1)
    return rate, dist, rate - distortion_lambda * dist


def group_advantages(reward: torch.Tensor, group_size: int) -> torch.Tensor:
    """Rewards `(R,)` of consecutive groups of `group_size` masks -> GRPO advantages `(R,)` (mean 0, std 1 a group)."""
    grouped = reward.view(-1, group_size)
    return ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)).view(-1)


def baseline_recovery(
    x: torch.Tensor, bmask: torch.Tensor, blogits: torch.Tensor, kinds: list[str]
) -> dict[str, torch.Tensor]:
    """Teacher-forced recovery of the removed tokens per baseline kind: `x`, `bmask (B, n)`, `blogits (B, n, V)`."""
    hit = (blogits.argmax(-1) == x) & bmask
    out = {}
    for kind in set(kinds):
        sel = torch.tensor([kd == kind for kd in kinds], device=x.device)
        out[kind] = hit[sel].sum() / bmask[sel].sum().clamp(min=1)
    return out


def pretrained_path(model_args) -> str | None:
    name = getattr(model_args, "model_name_or_path", None) if model_args is not None else None
    return None if name is None or str(name).lower() in SCRATCH else name


class CompressionTrainer(Trainer):
    """Joint keep/mask policy + GPT-2 reconstructor training (see the module docstring for the algorithm).

    Accepts the launch script's keyword arguments; `reward_funcs` must be empty (the reward is rate-distortion,
    computed here) and `peft_config` None. `args=None` uses `CompressionConfig`'s defaults.
    """

    provides_reward_funcs = True
    # TRL's names for its model cards (`_BaseTrainer.create_model_card`); plain `Trainer` reads neither. No paper:
    # the idea is seed 001 (issue #7).
    _name = "Compression"
    _paper = {}

    @classmethod
    def build_model_and_data(cls, script_args, training_args: CompressionConfig, model_args) -> dict:
        """The launch script's hook: prepare data if needed, build the model and tokenizer, return the splits."""
        pretrained = pretrained_path(model_args)
        data_dir = ensure_data(training_args, pretrained)
        tokenizer = load_tokenizer(data_dir)
        freq = torch.load(data_dir / "freq.pt")
        model = build_compression_model(training_args, tokenizer, pretrained, token_freq=freq)
        return {"model": model, "processing_class": tokenizer, "dataset": to_dataset_dict(data_dir)}

    def __init__(
        self,
        model: CompressionModel,
        reward_funcs=None,
        args: CompressionConfig | None = None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        peft_config=None,
        callbacks=None,
        **kwargs,
    ):
        args = args if args is not None else CompressionConfig(output_dir="runs/compression")
        if not isinstance(args, CompressionConfig):
            raise TypeError(f"CompressionTrainer needs a CompressionConfig, got {type(args).__name__}")
        if reward_funcs:
            raise ValueError(
                f"The compression trainer computes its own rate-distortion reward; got reward_funcs={reward_funcs!r}. "
                "Set `reward_funcs: []` in the recipe."
            )
        if peft_config is not None:
            raise ValueError("LoRA/peft is not supported by the compression trainer (the models are small)")
        if not isinstance(model, CompressionModel):
            raise TypeError(f"CompressionTrainer needs a CompressionModel, got {type(model).__name__}")
        super().__init__(
            model=model,
            args=args,
            data_collator=kwargs.pop("data_collator", default_data_collator),
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            callbacks=callbacks,
            **kwargs,
        )
        # The model's forward returns mask scores and takes no labels, so `Trainer.prediction_step` would only run
        # it; this makes `evaluate()` score the joint objective through `compute_loss` (eval_loss, eval_* metrics).
        self.can_return_loss = True
        self._metrics = new_metrics()

    # -- the joint step ---------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Sample `num_generations` masks per sequence, reconstruct them (and one baseline row per sequence) in one
        teacher-forced pass, reward rate - λ·distortion, and add the reconstruction loss and the policy gradient."""
        args: CompressionConfig = self.args
        core: CompressionModel = self.accelerator.unwrap_model(model)
        x = inputs["input_ids"]  # (B, n)
        B, n = x.shape
        G = args.num_generations
        P = B * G  # policy rows come first, baseline rows after them

        scores = model(x).repeat_interleave(G, 0)  # (B*G, n), through the wrapped module for DDP
        xg = x.repeat_interleave(G, 0)
        mask, logp, k = sample_masks(scores, args)
        kinds = baseline_row_kinds(int(core.steps_seen.item()), B) if args.baseline_rows else []
        all_x, all_mask = xg, mask
        if kinds:
            all_x, all_mask = torch.cat([xg, x]), torch.cat([mask, baseline_row_masks(core, x, k, kinds)])

        logits = reconstruction_logits(core.reconstructor, all_x, all_mask, core.mask_id, core.sep_id)  # (R, n, V)
        nll = F.cross_entropy(logits.float().transpose(1, 2), all_x, reduction="none")  # (R, n)
        # only removed tokens carry information to learn: kept ones are copied at reconstruction time
        recon_loss = (nll * all_mask).sum() / all_mask.sum().clamp(min=1)

        with torch.no_grad():
            correct = (logits[:P].argmax(-1) == xg) & mask
            rate, distortion, reward = rate_distortion_reward(
                nll[:P], mask, correct, args.distortion, args.distortion_lambda
            )
            advantages = group_advantages(reward, G)
        policy_loss = -(advantages * logp).mean() / n
        loss = recon_loss + policy_loss

        with torch.no_grad():
            if model.training:  # evaluation is not a joint step: the baseline-row cycle moves only when training
                core.steps_seen += 1
            stats = {
                "reward": reward.mean(),
                "reward_std": reward.view(B, G).std(1).mean(),
                "compression/ratio": rate.mean(),
                "compression/distortion": distortion.mean(),
                "compression/policy_recovery_tf": correct.sum() / mask.sum().clamp(min=1),
                "losses/reconstruction": recon_loss,
                "losses/policy": policy_loss,
                "policy/score_std": scores.detach().float().std(1).mean(),
            }
            if kinds:
                for kind, value in baseline_recovery(x, all_mask[P:], logits[P:], kinds).items():
                    stats[f"compression/{kind}_recovery_tf"] = value
            metrics = self._metrics["train" if model.training else "eval"]
            for key, value in stats.items():
                metrics[key].append(value.item())
        return (loss, {"scores": scores}) if return_outputs else loss

    # -- narrow overrides -------------------------------------------------------------------------------------------
    def training_step(self, model, inputs, num_items_in_batch=None):
        """Under several processes, average gradients by hand instead of through DDP's hooks.

        One step runs the policy, samples masks from its scores, then runs the reconstructor on them: a graph that
        DDP's per-parameter hooks (armed by the wrapped forward) cannot follow ("marked as ready twice"). The
        backward therefore runs under `no_sync`, and the gradients are all-reduced afterwards: the same average.
        """
        if self.accelerator.num_processes == 1:
            return super().training_step(model, inputs, num_items_in_batch)
        with self.accelerator.no_sync(model):
            loss = super().training_step(model, inputs, num_items_in_batch)
        world = self.accelerator.num_processes
        for p in model.parameters():
            if not p.requires_grad:
                continue
            if p.grad is None:  # keep the collective calls identical on every process
                p.grad = torch.zeros_like(p)
            torch.distributed.all_reduce(p.grad, op=torch.distributed.ReduceOp.SUM)
            p.grad.div_(world)
        return loss

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            core = self.accelerator.unwrap_model(model if model is not None else self.model)
            groups = [
                {
                    "params": [p for p in core.policy.parameters() if p.requires_grad],
                    "lr": self.args.policy_learning_rate,
                },
                {
                    "params": [p for p in core.reconstructor.parameters() if p.requires_grad],
                    "lr": self.args.learning_rate,
                },
            ]
            self.optimizer = torch.optim.AdamW(
                groups,
                betas=(self.args.adam_beta1, self.args.adam_beta2),
                eps=self.args.adam_epsilon,
                weight_decay=self.args.weight_decay,
            )
        return self.optimizer

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        logs.update(average_metrics(self._metrics[mode], mode))  # NaN-safe means; `eval_` keys in evaluation
        super().log(logs, start_time)
        self._metrics[mode].clear()

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        # GPT-2 ties its input and output embeddings; safetensors refuses shared storage in a plain state dict
        core = self.accelerator.unwrap_model(self.model)
        if state_dict is None:
            state_dict = core.state_dict()
        state_dict = {k: v.detach().clone().contiguous() for k, v in state_dict.items()}
        super()._save(output_dir, state_dict=state_dict)
        core.write_architecture(output_dir if output_dir is not None else self.args.output_dir)
