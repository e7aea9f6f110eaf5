"""The keep/mask policy, the two reconstructors, and how a masked sequence is shown to them.

Representation of a masked sequence (the one contract everything else relies on):

* a mask is a bool tensor `(batch, seq_len)`, `True` = the token is **removed**;
* the reconstructor sees the sequence with every removed token replaced by a `<mask>` gap marker in place, so it
  reads the context on **both sides** of each gap, and predicts the removed tokens. Two kinds (`reconstructor:` in
  the recipe):
  - `gpt2_infill` (the default): a GPT-2 (`GPT2LMHeadModel`, 4 × 128, 0.93M parameters; or any local causal-LM
    folder) reading the gap-marked sequence as a prefix, then `<sep>`, then the removed tokens in order (the infill),
    decoded greedily left to right (`compression/infill.py`);
  - `mlm`, the alternative: a masked LM (`ModernBertForMaskedLM` built from a config, or any local
    `AutoModelForMaskedLM` folder) predicting every gap at once, in one parallel pass or in rounds where the most
    confident gaps are filled first;
* `removed_logits` (training: teacher-forced for the infill LM) and `fill_gaps` (reconstruction: greedy decoding for
  the infill LM) hide which kind is in use from the trainer, the baselines and the evaluation;
* the *compressed* sequence, what a downstream model would read and what the speed-up times, is the kept tokens only,
  in order (`kept_tokens`), without placeholders.

Why a gap-marked prefix rather than the seed's plain left-to-right GPT-2: a token removed from the middle of a phrase
is mostly predictable from what follows it ("to be, or ___ to be"); a left-to-right model reading the compressed
text sees only what precedes the gap. With the whole gap-marked sequence as prefix, the causal model has read both
sides before it writes the first infill token (`tests/compression`: a task only the right context solves).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class PolicySettings:
    """Sizes of the keep/mask policy; the defaults give ≈1M parameters with a 1024-token vocabulary."""

    vocab_size: int = 1024
    hidden_size: int = 192
    num_layers: int = 4
    kernel_size: int = 5  # receptive field = 1 + num_layers * (kernel_size - 1) tokens (17 by default)
    dropout: float = 0.0
    init_ratio: float = 0.5  # removal probability every token starts with (the head's bias); 0.5 = unbiased


class KeepMaskPolicy(nn.Module):
    """Token embedding + a stack of residual 1-D convolutions (a local context window) -> one mask logit per token.

    `forward(input_ids (B, n)) -> scores (B, n)`: a larger score means "more worth removing". Under the learned rate
    (Bernoulli policy) `sigmoid(score)` is the probability of removing the token; under the fixed count the scores
    are Plackett-Luce logits over which tokens to remove.
    """

    def __init__(self, settings: PolicySettings):
        super().__init__()
        self.settings = settings
        d = settings.hidden_size
        self.embed = nn.Embedding(settings.vocab_size, d)
        self.convs = nn.ModuleList(
            nn.Conv1d(d, d, settings.kernel_size, padding=settings.kernel_size // 2)
            for _ in range(settings.num_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(settings.num_layers))
        self.dropout = nn.Dropout(settings.dropout)
        self.head = nn.Linear(d, 1)
        nn.init.zeros_(self.head.weight)  # start uniform: every token removed with probability init_ratio
        nn.init.constant_(self.head.bias, math.log(settings.init_ratio / (1 - settings.init_ratio)))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(input_ids)  # (B, n, d)
        for conv, norm in zip(self.convs, self.norms):
            h = h + self.dropout(F.gelu(conv(norm(h).transpose(1, 2)).transpose(1, 2)))
        return self.head(h).squeeze(-1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


RECONSTRUCTORS = ("gpt2_infill", "mlm")


@dataclass
class ReconstructorSettings:
    """Configuration of a reconstructor built from scratch (ignored when a pretrained model is loaded)."""

    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    dropout: float = 0.0


def reconstructor_config(vocab_size: int, seq_len: int, settings: ReconstructorSettings):
    """A ModernBERT configuration (pre-norm, rotary positions, every layer global attention).

    Why ModernBERT and not BERT: at these sizes a post-norm BERT with learned absolute positions sat on the unigram
    plateau (5.80 nats/token = the corpus's unigram entropy) for the first 200+ warm-start steps at learning rates
    5e-4 and 2e-3, as did a pre-norm RoBERTa; ModernBERT's rotary positions make "look at my neighbour" easy to
    learn and it left the plateau within 100 steps (measured on these plays, batch 32).
    """
    from transformers import ModernBertConfig

    return ModernBertConfig(
        vocab_size=vocab_size,
        hidden_size=settings.n_embd,
        intermediate_size=3 * settings.n_embd,
        num_hidden_layers=settings.n_layer,
        num_attention_heads=settings.n_head,
        max_position_embeddings=seq_len,
        global_attn_every_n_layers=1,
        attention_dropout=settings.dropout,
        mlp_dropout=settings.dropout,
        embedding_dropout=settings.dropout,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=2,
        cls_token_id=2,
        sep_token_id=2,
    )


def build_reconstructor(
    vocab_size: int,
    seq_len: int,
    settings: ReconstructorSettings,
    pretrained: str | None = None,
    *,
    kind: str = "mlm",
    sep_id: int | None = None,
    pad_id: int = 0,
):
    """The reconstructor of `kind` (`RECONSTRUCTORS`), built from `settings` or loaded from a local folder.

    `gpt2_infill`: a `GPT2LMHeadModel` built from `settings`, or `AutoModelForCausalLM.from_pretrained(pretrained)`
    (a warm start or any local causal-LM folder; refused if it is not causal); `sep_id` (the `<sep>` between prefix
    and infill) is written into its config. `mlm`: a `ModernBertForMaskedLM` built from `settings`, or
    `AutoModelForMaskedLM.from_pretrained(pretrained)` (a warm start or any local BERT-like folder). Embeddings are
    resized to `vocab_size`.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM

    from open_r1_ext.compression.infill import SEP_ATTR, check_causal, gpt2_config

    if kind not in RECONSTRUCTORS:
        raise ValueError(f"reconstructor must be one of {list(RECONSTRUCTORS)}, got {kind!r}")
    if kind == "gpt2_infill" and sep_id is None:
        raise ValueError("the infilling reconstructor needs the id of the <sep> token between prefix and infill")
    if not pretrained:
        if kind == "gpt2_infill":
            return AutoModelForCausalLM.from_config(
                gpt2_config(vocab_size, seq_len, settings, sep_id=sep_id, pad_id=pad_id)
            )
        return AutoModelForMaskedLM.from_config(reconstructor_config(vocab_size, seq_len, settings))
    config = AutoConfig.from_pretrained(pretrained)
    if kind == "gpt2_infill":
        if any("MaskedLM" in a for a in (getattr(config, "architectures", None) or [])):
            raise ValueError(
                f"{pretrained} (model_type {config.model_type!r}) is a masked language model, not a causal LM; load "
                "it with `reconstructor: mlm`, or give a causal-LM folder (GPT-2, Llama, ...) for `gpt2_infill`"
            )
        try:
            model = AutoModelForCausalLM.from_pretrained(pretrained)
        except ValueError as err:
            raise ValueError(
                f"{pretrained} (model_type {config.model_type!r}) is not a causal language model; the infilling "
                "reconstructor must load with AutoModelForCausalLM (GPT-2, Llama, ...)"
            ) from err
        setattr(model.config, SEP_ATTR, int(sep_id))
        if model.config.pad_token_id is None:
            model.config.pad_token_id = pad_id
    else:
        try:
            model = AutoModelForMaskedLM.from_pretrained(pretrained)
        except ValueError as err:
            raise ValueError(
                f"{pretrained} (model_type {config.model_type!r}) is not a masked language model; the `mlm` "
                "reconstructor must load with AutoModelForMaskedLM (BERT, RoBERTa, DistilBERT, ...); a causal LM "
                "goes with `reconstructor: gpt2_infill`"
            ) from err
    if model.get_input_embeddings().num_embeddings != vocab_size:
        model.resize_token_embeddings(vocab_size)
    max_pos = getattr(model.config, "max_position_embeddings", seq_len)
    if max_pos < seq_len:
        raise ValueError(f"{pretrained} has max_position_embeddings={max_pos} < seq_len={seq_len}")
    if kind == "gpt2_infill":
        check_causal(model, vocab_size, seq_len)
    return model


def apply_mask(input_ids: torch.Tensor, mask: torch.Tensor, mask_id: int) -> torch.Tensor:
    """`(B, n)` ids with removed positions replaced by `mask_id` (positions kept: the gap markers)."""
    return torch.where(mask, torch.full_like(input_ids, mask_id), input_ids)


def reconstruction_logits(reconstructor, input_ids: torch.Tensor, mask: torch.Tensor, mask_id: int) -> torch.Tensor:
    """Masked LM only: logits `(B, n, V)` for every position of `input_ids (B, n)` with `mask`'s tokens hidden (one
    forward pass). The infill LM has logits for removed tokens only: `removed_logits`."""
    from open_r1_ext.compression.infill import is_infill

    if is_infill(reconstructor):
        raise ValueError("reconstruction_logits is for a masked LM; use removed_logits for the infilling LM")
    return reconstructor(input_ids=apply_mask(input_ids, mask, mask_id)).logits


def kept_tokens(input_ids: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    """The compressed sequences: kept tokens only, in order, one 1-D tensor per row."""
    return [row[~m] for row, m in zip(input_ids, mask)]


class CompressionModel(nn.Module):
    """Holds the policy and the reconstructor so that one `Trainer` optimises, checkpoints and restores both.

    Buffers (saved and restored with the weights): `token_freq (V,)`, training-split token counts for the frequency
    and constant baselines, and `steps_seen ()`, the joint steps taken (the trainer's extra state: it drives the
    cycle of baseline rows). `objective` (the rate-control mode and λ) is written beside the weights so that the
    evaluation can group runs into a rate-distortion curve.
    """

    def __init__(self, policy: KeepMaskPolicy, reconstructor, *, mask_id: int, pad_id: int, seq_len: int):
        super().__init__()
        self.policy = policy
        self.reconstructor = reconstructor
        self.mask_id, self.pad_id, self.seq_len = mask_id, pad_id, seq_len
        self.objective: dict = {}
        self.warm_start: dict | None = None  # the warm start's folder and validation loss, when there was one
        self.register_buffer("token_freq", torch.zeros(policy.settings.vocab_size))
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.long))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Mask scores `(B, n)`; the joint loss is computed by `CompressionTrainer.compute_loss`."""
        return self.policy(input_ids)

    # -- saving outside of Trainer checkpoints --------------------------------------------------------------------
    def architecture(self) -> dict:
        return {
            "policy": asdict(self.policy.settings),
            "reconstructor": self.reconstructor.config.to_dict(),
            "mask_id": self.mask_id,
            "pad_id": self.pad_id,
            "seq_len": self.seq_len,
            "objective": self.objective,
            "warm_start": self.warm_start,
        }

    def write_architecture(self, folder: str | Path) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "compression_model.json").write_text(json.dumps(self.architecture(), indent=2))

    @classmethod
    def from_folder(cls, folder: str | Path) -> CompressionModel:
        """Rebuild from `compression_model.json` and load `model.safetensors` (a run's output_dir or a checkpoint)."""
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM, AutoModelForMaskedLM
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING

        from open_r1_ext.compression.infill import SEP_ATTR

        folder = Path(folder)
        arch_file = folder / "compression_model.json"
        if not arch_file.exists():
            arch_file = folder.parent / "compression_model.json"
        if not arch_file.exists() or not (folder / "model.safetensors").exists():
            raise FileNotFoundError(f"{folder} holds no trained compression model (compression_model.json + weights)")
        arch = json.loads(arch_file.read_text())
        policy = KeepMaskPolicy(PolicySettings(**arch["policy"]))
        rec_cfg = arch["reconstructor"]
        config = CONFIG_MAPPING[rec_cfg["model_type"]].from_dict(rec_cfg)
        auto = AutoModelForCausalLM if rec_cfg.get(SEP_ATTR) is not None else AutoModelForMaskedLM
        reconstructor = auto.from_config(config)
        model = cls(policy, reconstructor, mask_id=arch["mask_id"], pad_id=arch["pad_id"], seq_len=arch["seq_len"])
        model.objective = arch.get("objective", {})
        model.warm_start = arch.get("warm_start")
        state = load_file(str(folder / "model.safetensors"))
        missing, unexpected = model.load_state_dict(state, strict=False)
        tied = set(getattr(reconstructor, "_tied_weights_keys", None) or {})
        missing = [k for k in missing if k.removeprefix("reconstructor.") not in tied]
        if missing or unexpected:
            raise RuntimeError(f"Checkpoint {folder} does not match: missing={missing} unexpected={unexpected}")
        return model.eval()


# -- mask distributions ----------------------------------------------------------------------------------------------


def num_to_mask(seq_len: int, ratio: float) -> int:
    """Tokens removed per sequence at `ratio` (rounded): the fixed-count mode's count."""
    return int(round(ratio * seq_len))


def topk_mask(scores: torch.Tensor, k: int | torch.Tensor) -> torch.Tensor:
    """Remove the `k` highest-scoring tokens of each row: bool `(B, n)`; `k` an int or a LongTensor `(B,)` per row."""
    if not torch.is_tensor(k):
        k = torch.full(scores.shape[:1], int(k), device=scores.device)
    rank = scores.argsort(dim=1, descending=True).argsort(dim=1)  # 0 = highest score
    return rank < k.to(scores.device)[:, None]


def sample_topk(scores: torch.Tensor, k: int, generator: torch.Generator | None = None):
    """Sample `k` tokens to remove without replacement (Plackett-Luce / Gumbel-top-k) and return `(mask, logp)`.

    `scores (B, n)`; `mask (B, n)` bool; `logp (B,)` is the log-probability of the sampled *ordered* selection,
    `Σ_j [s_{i_j} - logsumexp(s over tokens not yet chosen)]`, the usual tractable surrogate for the set.
    """
    u = torch.rand(scores.shape, generator=generator, device=scores.device).clamp_(1e-9, 1 - 1e-9)
    gumbel = -torch.log(-torch.log(u))
    order = (scores.detach() + gumbel).argsort(dim=1, descending=True)
    s_sorted = scores.gather(1, order)
    # logsumexp over the not-yet-chosen suffix: reverse logcumsumexp
    suffix_lse = s_sorted.flip(1).logcumsumexp(1).flip(1)
    logp = (s_sorted - suffix_lse)[:, :k].sum(1)
    mask = torch.zeros_like(scores, dtype=torch.bool)
    mask.scatter_(1, order[:, :k], True)
    return mask, logp


def sample_bernoulli(scores: torch.Tensor, generator: torch.Generator | None = None, floor: float = 0.0):
    """Remove each token independently: `(mask (B, n), logp per token (B, n))`.

    The probability of removing token `i` is `floor + (1 - 2 floor) sigmoid(score_i)`: with `floor > 0` every token
    keeps a chance of being removed (and of being kept), so a policy that has learned to keep everything still
    samples removals to learn from. `score > 0` still means "more likely removed than kept".
    """
    p = floor + (1 - 2 * floor) * torch.sigmoid(scores.float())
    mask = torch.rand(scores.shape, generator=generator, device=scores.device) < p.detach()
    logp = torch.where(mask, p.clamp_min(1e-12).log(), (1 - p).clamp_min(1e-12).log())
    return mask, logp


def greedy_mask(scores: torch.Tensor, ratio_control: str, target_ratio: float) -> torch.Tensor:
    """The policy's deterministic decision `(B, n)`: `score > 0` (removal more likely than not) under the learned
    rate, the `round(target_ratio * n)` highest scores under the fixed count."""
    if ratio_control == "learned":
        return scores > 0
    return topk_mask(scores, num_to_mask(scores.shape[1], target_ratio))


def removed_logits(reconstructor, input_ids: torch.Tensor, mask: torch.Tensor, mask_id: int) -> torch.Tensor:
    """Logits `(M, V)` at the `M = mask.sum()` removed positions only (row-major order, as `input_ids[mask]`).

    Infilling LM: teacher-forced (each removed token predicted from the gap-marked prefix and the *true* earlier
    removed tokens; `infill.infill_removed_logits`). Masked LM: one parallel pass; for a ModernBERT or BERT the output
    head (a large share of the cost at a 1024-token vocabulary) runs on the removed positions alone, other masked LMs
    compute every position's logits and index them.
    """
    from open_r1_ext.compression.infill import infill_removed_logits, is_infill

    if is_infill(reconstructor):
        return infill_removed_logits(reconstructor, input_ids, mask, mask_id)
    masked = apply_mask(input_ids, mask, mask_id)
    if all(hasattr(reconstructor, a) for a in ("model", "head", "decoder")):  # ModernBertForMaskedLM
        hidden = reconstructor.model(input_ids=masked).last_hidden_state[mask]
        return reconstructor.decoder(reconstructor.head(hidden))
    if hasattr(reconstructor, "bert") and hasattr(reconstructor, "cls"):  # BertForMaskedLM
        return reconstructor.cls(reconstructor.bert(input_ids=masked).last_hidden_state[mask])
    return reconstructor(input_ids=masked).logits[mask]


@torch.no_grad()
def fill_gaps(reconstructor, input_ids, mask, mask_id: int, suppress: list[int] | None = None, steps: int = 1):
    """Reconstruction `(B, n)`: kept positions copied, removed ones filled; `suppress` ids are never predicted.

    Infilling LM: greedy left-to-right decoding of the infill from the gap-marked prefix (`infill.greedy_infill`;
    `steps` does not apply). Masked LM: `steps` parallel rounds, each predicting every open gap with the tokens
    filled so far in context and filling the most confident `1 / (rounds left)` of them (the last round the rest).
    """
    from open_r1_ext.compression.infill import greedy_infill, is_infill

    if is_infill(reconstructor):
        return greedy_infill(reconstructor, input_ids, mask, mask_id, suppress)
    current, open_ = input_ids.clone(), mask.clone()
    for step in range(steps):
        if not open_.any():
            break
        logits = reconstructor(input_ids=apply_mask(current, open_, mask_id)).logits.float()
        if suppress:
            logits[..., suppress] = float("-inf")
        conf, pred = logits.softmax(-1).max(-1)
        left = steps - step
        if left == 1:
            fill = open_
        else:
            quota = (open_.sum(1).float() / left).ceil().long()  # (B,)
            rank = conf.masked_fill(~open_, -1.0).argsort(1, descending=True).argsort(1)
            fill = open_ & (rank < quota[:, None])
        current = torch.where(fill, pred, current)
        open_ = open_ & ~fill
    return current
