"""RL token compression: a keep/mask policy that chooses its own rate, and a GPT-2 infilling reconstructor, trained
jointly.

Seed: `../shared/seeds/001_78816de68502cff8.txt` (issues #7, #18). How this departs from plain GRPO:

1. **Actions are masks, not text, and the rate is the policy's.** For each training sequence `x (n tokens)` the
   policy samples `num_generations` masks. Under `ratio_control: learned` (the default) each token is removed
   independently with probability `sigmoid(score_i)` (Bernoulli), so how many tokens go is the policy's choice and
   is *measured* from its outputs (`compression/ratio` on the sampled masks, `compression/ratio_greedy` on the
   `score > 0` decisions evaluation uses). `ratio_control: fixed` keeps the old mode, labelled as such: exactly
   `round(target_ratio * n)` tokens per mask (Plackett-Luce, Gumbel-top-k), a ratio set by configuration.
2. **Reward = rate - λ · distortion.** Rate is the fraction removed; distortion the reconstructor's NLL of the
   removed tokens (`distortion: nll`) or how many of them it gets wrong (`distortion: error`), divided by `n`. The
   reward is a sum of per-token terms `c_i = m_i (1 - λ d_i) / n`, so removing a token pays when the reconstructor
   recovers it well enough (`d_i < 1/λ`): sweeping λ traces a rate-distortion curve.
3. **Per-token credit (learned rate).** The decision on token `i` is credited with the reward of the tokens within
   `credit_window` of it (its own term and its neighbours', whose recovery its removal affects), minus the mean of
   the same window over the other masks of its group (a leave-one-out baseline, as in RLOO), scaled by the batch
   std; `credit_window: -1` credits every decision with the whole sequence's reward (plain GRPO advantages). The
   fixed-count mode uses GRPO's group-normalised sequence advantages on the Plackett-Luce log-probability.
4. **One sample, one update, so no clipping and no reference model.** Masks are sampled and used once by the current
   policy, so GRPO's importance ratio is 1 and its clipping and KL terms would be inert; the loss is the plain
   policy gradient `-A · log π(mask)` (divided by `n`).
5. **A reconstructor that can make the trade.** By default (`reconstructor: gpt2_infill`) a 4 × 128 GPT-2 reading
   the sequence with a `<mask>` gap marker in place of each removed token as its prefix (so it has seen both sides of
   every gap), then `<sep>`, then the removed tokens in order (the infill; `compression/infill.py`); `mlm` is the
   alternative, a ModernBERT masked LM filling every gap in parallel. Warm-started on the corpus before joint
   training (`compression/warmstart.py`, cached on disk), then trained in the same step as the policy on the removed
   tokens of the policy's current masks (teacher-forced cross-entropy on the infill). To keep the baselines fair,
   each step also adds one row per sequence masked by a baseline (random, frequency, surprisal in turn) removing as
   many tokens as the policy removed from that sequence.
6. **The reward counts what the reconstructor really recovers.** With `distortion: error` and `reward_decoding:
   greedy` (the defaults), a removed token counts as recovered when the infill *decoded greedily* from the prefix
   (the model's own earlier guesses in context, as at evaluation) gets it right, not when the teacher-forced
   argmax does: the latter conditions each removed token on the true earlier removed tokens, so it is optimistic
   (logged beside it as `compression/recovery_teacher_forced`). The decoding costs one small cached forward per
   removed token of the longest row, in `no_grad`.

Why `transformers.Trainer` and not `GRPOTrainer`: `GRPOTrainer.__init__` and `_generate_and_score_completions` are
built around generating text with a causal LM from prompts and scoring it with reward functions; none of that
applies when the action is a mask over a given sequence, and overriding `_compute_loss` alone would still leave
generation, reward functions and the reference model in the way. `Trainer` gives what is needed (optimizer,
scheduler, logging, checkpoints with optimizer/RNG state, resume, `accelerate launch` / `torchrun`) and the only
hooks overridden are `compute_loss` (the joint step; also what `evaluate()` scores), `training_step` (gradients
averaged by hand under several processes), `create_optimizer` (separate learning rates for the policy and the
reconstructor), `log` (NaN-safe averaged metrics, `eval_`-prefixed in evaluation, as `GRPOTrainer.log`, through
`core.metrics`) and `_save` (tied embeddings and the architecture file). `CompressionConfig`
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
from open_r1_ext.compression.infill import is_infill
from open_r1_ext.compression.models import (
    CompressionModel,
    KeepMaskPolicy,
    PolicySettings,
    ReconstructorSettings,
    build_reconstructor,
    fill_gaps,
    num_to_mask,
    removed_logits,
    sample_bernoulli,
    sample_topk,
)
from open_r1_ext.compression.warmstart import WarmStartSettings, build_warm_start, data_hash, warm_start_info
from open_r1_ext.core.metrics import average_metrics, new_metrics


SCRATCH = ("", "scratch", "none")
BASELINE_ROW_KINDS = ("random", "frequency", "surprisal")


def policy_settings(args: CompressionConfig, vocab_size: int) -> PolicySettings:
    return PolicySettings(
        vocab_size=vocab_size,
        hidden_size=args.policy_hidden_size,
        num_layers=args.policy_num_layers,
        kernel_size=args.policy_kernel_size,
        init_ratio=args.policy_init_ratio if args.ratio_control == "learned" else 0.5,
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


def warm_start_settings(args: CompressionConfig, vocab_size: int, data_dir) -> WarmStartSettings:
    return WarmStartSettings(
        vocab_size=vocab_size,
        seq_len=args.seq_len,
        n_layer=args.recon_n_layer,
        n_embd=args.recon_n_embd,
        n_head=args.recon_n_head,
        steps=args.recon_warm_start_steps,
        batch_size=args.recon_warm_start_batch_size,
        lr=args.recon_warm_start_lr,
        seed=args.recon_warm_start_seed,
        data_hash=data_hash(data_dir),
        kind=args.reconstructor,
    )


def build_compression_model(
    args: CompressionConfig, tokenizer, pretrained: str | None = None, token_freq=None, data_dir=None
) -> CompressionModel:
    """Policy + reconstructor (`args.reconstructor`) for `tokenizer`'s vocabulary. `pretrained`: a local causal-LM
    (`gpt2_infill`) or masked-LM (`mlm`) folder, or None for a reconstructor built from the `recon_*` sizes,
    warm-started on `data_dir` (cached) when `recon_warm_start_steps`."""
    from accelerate import PartialState

    vocab = len(tokenizer)
    info = None
    if pretrained is None and args.recon_warm_start_steps > 0:
        if data_dir is None:
            raise ValueError("a warm-started reconstructor needs the prepared data folder (data_dir)")
        with PartialState().main_process_first():  # one process trains the warm start, the others load it
            pretrained = str(
                build_warm_start(
                    warm_start_settings(args, vocab, data_dir),
                    data_dir,
                    tokenizer.mask_token_id,
                    sep_id=tokenizer.sep_token_id,
                    pad_id=tokenizer.pad_token_id,
                )
            )
        info = {"path": pretrained, **warm_start_info(pretrained)}
    policy = KeepMaskPolicy(policy_settings(args, vocab))
    reconstructor = build_reconstructor(
        vocab,
        args.seq_len,
        ReconstructorSettings(n_layer=args.recon_n_layer, n_embd=args.recon_n_embd, n_head=args.recon_n_head),
        pretrained=pretrained,
        kind=args.reconstructor,
        sep_id=tokenizer.sep_token_id,
        pad_id=tokenizer.pad_token_id,
    )
    model = CompressionModel(
        policy, reconstructor, mask_id=tokenizer.mask_token_id, pad_id=tokenizer.pad_token_id, seq_len=args.seq_len
    )
    model.warm_start = info
    if token_freq is not None:
        model.token_freq.copy_(token_freq)
    return model


def sample_masks(scores: torch.Tensor, args: CompressionConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """`(mask (R, n), logp)` sampled from `scores (R, n)`: under the learned rate each token independently, `logp`
    per token `(R, n)`; under the fixed count exactly `round(target_ratio * n)` tokens, `logp` per mask `(R,)`."""
    if args.ratio_control == "learned":
        return sample_bernoulli(scores.float(), floor=args.explore_floor)
    return sample_topk(scores.float(), num_to_mask(scores.shape[1], args.target_ratio))


def baseline_row_kinds(step: int, batch_size: int) -> list[str]:
    """Which baseline masks each sequence's extra row at joint step `step`, cycling through `BASELINE_ROW_KINDS`."""
    return [BASELINE_ROW_KINDS[(step * batch_size + i) % len(BASELINE_ROW_KINDS)] for i in range(batch_size)]


def baseline_row_masks(core: CompressionModel, x: torch.Tensor, k: torch.Tensor, kinds: list[str]) -> torch.Tensor:
    """Bool mask `(B, n)`: row `i` masked by baseline `kinds[i]` removing `k[i]` tokens."""
    bmask = torch.zeros_like(x, dtype=torch.bool)
    for kind in set(kinds):
        idx = torch.tensor([i for i, kd in enumerate(kinds) if kd == kind], device=x.device)
        bmask[idx] = baseline_mask(
            kind, x[idx], k[idx], token_freq=core.token_freq, reconstructor=core.reconstructor, mask_id=core.mask_id
        )
    return bmask


def token_terms(mask: torch.Tensor, distortion: torch.Tensor, distortion_lambda: float) -> torch.Tensor:
    """Per-token reward terms `c (R, n) = m_i (1 - λ d_i) / n`; `mask (R, n)` bool, `distortion (R, n)` per token
    (NLL or 0/1 error, only read where removed). `c.sum(1)` is the mask's reward, rate - λ · distortion."""
    n = mask.shape[1]
    return mask.float() * (1.0 - distortion_lambda * distortion) / n


def rate_distortion_reward(
    mask: torch.Tensor, distortion: torch.Tensor, distortion_lambda: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(rate, distortion, reward)`, each `(R,)`, of masks `(R, n)` with per-token distortion `(R, n)`; both terms
    are divided by `n`, so rate is the fraction removed."""
    n = mask.shape[1]
    rate = mask.float().mean(1)
    dist = (distortion * mask).sum(1) / n
    return rate, dist, rate - distortion_lambda * dist


def group_advantages(reward: torch.Tensor, group_size: int) -> torch.Tensor:
    """Rewards `(R,)` of consecutive groups of `group_size` masks -> GRPO advantages `(R,)` (mean 0, std 1 a group)."""
    grouped = reward.view(-1, group_size)
    return ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)).view(-1)


def windowed_sum(terms: torch.Tensor, window: int) -> torch.Tensor:
    """`(R, n)` -> `(R, n)`: entry `i` is `Σ_{|j-i| <= window} terms_j` (the whole row when `window` is -1)."""
    if window < 0:
        return terms.sum(1, keepdim=True).expand_as(terms)
    c = F.pad(terms.cumsum(1), (1, 0))  # c[:, j] = sum of the first j terms
    n = terms.shape[1]
    idx = torch.arange(n, device=terms.device)
    hi = (idx + window + 1).clamp(max=n)
    lo = (idx - window).clamp(min=0)
    return c[:, hi] - c[:, lo]


def token_advantages(
    terms: torch.Tensor, group_size: int, window: int, sequence_terms: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-decision advantages `(R, n)` from per-token reward terms `(R, n)` of consecutive groups of masks.

    The credit of the decision on token `i` is the windowed reward around `i` (`windowed_sum`) minus the mean of the
    same window over the *other* masks of the group (leave-one-out, so a decision is never compared with itself),
    divided by the std over the batch (one scale for every position, so positions where the group agrees are not
    blown up). `sequence_terms (R,)`, a reward of the whole mask (the semantic term), is added to every window.
    """
    local = windowed_sum(terms, window)
    if sequence_terms is not None:
        local = local + sequence_terms[:, None]
    R, n = local.shape
    grouped = local.view(-1, group_size, n)
    others = (grouped.sum(1, keepdim=True) - grouped) / (group_size - 1)
    adv = (grouped - others).view(R, n)
    return adv / (adv.std() + 1e-6)


def pretrained_path(model_args) -> str | None:
    name = getattr(model_args, "model_name_or_path", None) if model_args is not None else None
    return None if name is None or str(name).lower() in SCRATCH else name


class CompressionTrainer(Trainer):
    """Joint keep/mask policy + reconstructor training (see the module docstring for the algorithm).

    Accepts the launch script's keyword arguments; `reward_funcs` must be empty (the reward is rate-distortion,
    computed here) and `peft_config` None. `args=None` uses `CompressionConfig`'s defaults.
    """

    provides_reward_funcs = True
    # TRL's names for its model cards (`_BaseTrainer.create_model_card`); plain `Trainer` reads neither. No paper:
    # the idea is seed 001 (issues #7, #18).
    _name = "Compression"
    _paper = {}

    @classmethod
    def build_model_and_data(cls, script_args, training_args: CompressionConfig, model_args) -> dict:
        """The launch script's hook: prepare data if needed, warm-start (or load) the reconstructor, build the model
        and tokenizer, return the splits."""
        pretrained = pretrained_path(model_args)
        data_dir = ensure_data(training_args, pretrained)
        tokenizer = load_tokenizer(data_dir)
        freq = torch.load(data_dir / "freq.pt")
        model = build_compression_model(training_args, tokenizer, pretrained, token_freq=freq, data_dir=data_dir)
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
        model.objective = {
            "ratio_control": args.ratio_control,
            "target_ratio": args.target_ratio if args.ratio_control == "fixed" else None,
            "distortion_lambda": args.distortion_lambda,
            "distortion": args.distortion,
            "credit_window": args.credit_window,
        }
        if args.semantic_weight > 0:  # a new objective: its runs form their own group in the evaluation
            model.objective["semantic_weight"] = args.semantic_weight
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
        self._last_train_ratio = None
        self._scorer = None  # the similarity model of the semantic reward term, loaded on first use

    # -- the joint step ---------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Sample `num_generations` masks per sequence, reconstruct them (and one baseline row per sequence) in one
        pass, reward rate - λ·distortion, and add the reconstruction loss and the policy gradient."""
        args: CompressionConfig = self.args
        core: CompressionModel = self.accelerator.unwrap_model(model)
        x = inputs["input_ids"]  # (B, n)
        G = args.num_generations
        P = x.shape[0] * G  # policy rows come first, baseline rows after them

        scores = model(x).repeat_interleave(G, 0)  # (B*G, n), through the wrapped module for DDP
        mask, logp = sample_masks(scores, args)
        kinds = baseline_row_kinds(int(core.steps_seen.item()), x.shape[0]) if args.baseline_rows else []
        all_x, all_mask = self._rows_to_reconstruct(core, x, mask, kinds)

        logits = removed_logits(core.reconstructor, all_x, all_mask, core.mask_id).float()  # (M, V)
        target = all_x[all_mask]
        nll_flat = F.cross_entropy(logits, target, reduction="none")
        # only removed tokens carry information to learn: kept ones are copied at reconstruction time
        recon_loss = nll_flat.mean() if nll_flat.numel() else logits.sum() * 0.0

        with torch.no_grad():
            nll = torch.zeros(all_mask.shape, device=x.device)
            nll[all_mask] = nll_flat.detach()
            wrong_tf = torch.zeros(all_mask.shape, device=x.device)
            wrong_tf[all_mask] = (logits.argmax(-1) != target).float()
            scored = self._score_rows(core, x, mask, all_x, all_mask, nll, wrong_tf)
        policy_loss = self._policy_loss(scores, logp, scored["advantages"], x.shape[1])
        loss = recon_loss + policy_loss

        with torch.no_grad():
            if model.training:  # evaluation is not a joint step: the baseline-row cycle moves only when training
                core.steps_seen += 1
            self._log_step(model.training, x, scores, mask, all_mask, kinds, scored, wrong_tf[:P], nll[:P])
            self._metrics["train" if model.training else "eval"]["losses/reconstruction"].append(recon_loss.item())
            self._metrics["train" if model.training else "eval"]["losses/policy"].append(policy_loss.item())
        return (loss, {"scores": scores}) if return_outputs else loss

    def _rows_to_reconstruct(self, core, x, mask, kinds):
        """The policy's `B*G` masked rows, then (when `kinds`) one baseline-masked row per sequence removing as many
        tokens as the policy removed from that sequence (mean over its group)."""
        G = self.args.num_generations
        B, n = x.shape
        xg = x.repeat_interleave(G, 0)
        if not kinds:
            return xg, mask
        k = mask.view(B, G, n).sum(2).float().mean(1).round().long()
        return torch.cat([xg, x]), torch.cat([mask, baseline_row_masks(core, x, k, kinds)])

    def _score_rows(self, core, x, mask, all_x, all_mask, nll, wrong_tf) -> dict:
        """Rate, distortion, reward and advantages of the policy's rows (no gradient). "Wrong" is the greedy-decoded
        infill's error when `reward_decoding: greedy` (what the reconstructor really recovers), else the
        teacher-forced argmax's; the MiniLM similarity term joins the reward when `semantic_weight > 0`."""
        args: CompressionConfig = self.args
        G, P = args.num_generations, mask.shape[0]
        suppress = [i for i in (core.mask_id, core.pad_id) if i is not None]
        decoded, wrong = None, wrong_tf
        if args.reward_decoding == "greedy" and is_infill(core.reconstructor) and all_mask.any():
            # what the reconstructor really recovers: the infill decoded from the prefix, its guesses in context
            decoded = fill_gaps(core.reconstructor, all_x, all_mask, core.mask_id, suppress)
            wrong = ((decoded != all_x) & all_mask).float()
        per_token = (nll if args.distortion == "nll" else wrong)[:P]
        rate, distortion, reward = rate_distortion_reward(mask, per_token, args.distortion_lambda)
        semantic = similarity = None
        if args.semantic_weight > 0:
            if decoded is None:
                decoded = fill_gaps(core.reconstructor, all_x, all_mask, core.mask_id, suppress)
            similarity = self._similarity(x, decoded[:P])
            semantic = args.semantic_weight * (similarity - 1.0)
            reward = reward + semantic
        if args.ratio_control == "learned":
            terms = token_terms(mask, per_token, args.distortion_lambda)
            advantages = token_advantages(terms, G, args.credit_window, semantic)  # (P, n)
        else:
            advantages = group_advantages(reward, G)  # (P,)
        return {
            "rate": rate, "distortion": distortion, "reward": reward, "wrong": wrong,
            "similarity": similarity, "advantages": advantages,
        }  # fmt: skip

    def _policy_loss(self, scores, logp, advantages, n: int):
        """REINFORCE on the masks: per-token advantages (learned rate, plus the optional score L2) or one per row."""
        args: CompressionConfig = self.args
        if args.ratio_control != "learned":
            return -(advantages * logp).mean() / n
        loss = -(advantages * logp).sum(1).mean() / n
        if args.score_l2:
            loss = loss + args.score_l2 * scores[:: args.num_generations].float().pow(2).mean()
        return loss

    def _log_step(self, training: bool, x, scores, mask, all_mask, kinds, scored, wrong_tf, nll):
        """The step's `compression/*` metrics, measured from the sampled masks (never from the configuration)."""
        args: CompressionConfig = self.args
        B, G, P = x.shape[0], args.num_generations, mask.shape[0]
        rate, reward, wrong = scored["rate"], scored["reward"], scored["wrong"]
        removed = mask.sum().clamp(min=1)
        stats = {
            "reward": reward.mean(),
            "reward_std": reward.view(B, G).std(1).mean(),
            "compression/ratio": rate.mean(),
            "compression/ratio_greedy": (scores[::G] > 0).float().mean(),
            "compression/remove_prob": torch.sigmoid(scores[::G].detach().float()).mean(),
            "compression/distortion": scored["distortion"].mean(),
            "compression/recovery": (1.0 - wrong[:P])[mask].sum() / removed,
            "compression/recovery_teacher_forced": (1.0 - wrong_tf)[mask].sum() / removed,
            "compression/removed_nll": nll[mask].sum() / removed,
            "policy/score_std": scores.detach().float().std(1).mean(),
        }
        if args.ratio_control == "fixed":
            del stats["compression/ratio_greedy"], stats["compression/remove_prob"]
        if scored["similarity"] is not None:
            stats["compression/semantic_similarity"] = scored["similarity"].mean()
        if kinds:
            bmask, bwrong = all_mask[P:], wrong[P:]
            for kind in set(kinds):
                sel = torch.tensor([kd == kind for kd in kinds], device=x.device)
                hits = ((1.0 - bwrong[sel]) * bmask[sel]).sum()
                stats[f"compression/{kind}_recovery"] = hits / bmask[sel].sum().clamp(min=1)
        metrics = self._metrics["train" if training else "eval"]
        for key, value in stats.items():
            metrics[key].append(value.item())
        if training:
            self._last_train_ratio = rate.mean().item()

    def _similarity(self, original: torch.Tensor, reconstructed: torch.Tensor) -> torch.Tensor:
        """Similarity `(R,)` (`args.similarity_model`) of each decoded reconstruction `(R, n)` to its original: row
        `r` of `reconstructed` belongs to row `r // (R / B)` of `original (B, n)` (each original embedded once)."""
        if self._scorer is None:
            from open_r1_ext.compression.evaluation import SimilarityScorer

            self._scorer = SimilarityScorer(self.args.similarity_model)
            if self._scorer.kind == "none":
                raise ValueError("semantic_weight > 0 needs a similarity_model (all-MiniLM-L6-v2 or bow), not 'none'")
        tok, group = self.processing_class, len(reconstructed) // len(original)
        emb_a = self._scorer.embed([tok.decode(row) for row in original.tolist()])
        emb_a = (
            emb_a.repeat_interleave(group, 0) if torch.is_tensor(emb_a) else [e for e in emb_a for _ in range(group)]
        )
        emb_b = self._scorer.embed([tok.decode(row) for row in reconstructed.tolist()])
        return torch.tensor(self._scorer.cosine(emb_a, emb_b), dtype=torch.float, device=original.device)

    def summary_results(self) -> dict:
        """Figures for the launch script's `results.json`: the objective, the last measured ratio, the warm start."""
        core = self.accelerator.unwrap_model(self.model)
        out = {"compression/objective": core.objective, "compression/last_train_ratio": self._last_train_ratio}
        info = getattr(core, "warm_start", None)
        if info:
            out["compression/warm_start_val_loss"] = info["val_loss"]
            out["compression/warm_start_val_loss_at_0.4"] = info["val_loss_at_0.4"]
            out["compression/warm_start_val_recovery_at_0.4"] = info.get("val_recovery_at_0.4")
            out["compression/warm_start_val_recovery_at_0.4_decoded"] = info.get("val_recovery_at_0.4_decoded")
            out["compression/warm_start_path"] = info["path"]
        return out

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
        # the reconstructor ties its input and output embeddings; safetensors refuses shared storage in a state dict
        core = self.accelerator.unwrap_model(self.model)
        if state_dict is None:
            state_dict = core.state_dict()
        state_dict = {k: v.detach().clone().contiguous() for k, v in state_dict.items()}
        super()._save(output_dir, state_dict=state_dict)
        core.write_architecture(output_dir if output_dir is not None else self.args.output_dir)
