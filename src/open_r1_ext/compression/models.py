"""The keep/mask policy, the GPT-2 reconstructor, and how a masked sequence is shown to the reconstructor.

Representation of a masked sequence (the one contract everything else relies on):

* a mask is a bool tensor `(batch, seq_len)`, `True` = the token is **removed**;
* the reconstructor (a causal `GPT2LMHeadModel`) reads `[m_0 … m_{n-1}, <sep>, x_0 … x_{n-2}]` where `m_i` is `x_i`
  when kept and `<mask>` when removed: the masked sequence keeps every position, so the reconstructor knows *where*
  tokens are missing. Its logits at positions `n … 2n-1` predict `x_0 … x_{n-1}`; each prediction sees the whole
  masked sequence (both sides of a gap) and the tokens reconstructed so far. That is how a decoder-only GPT-2 can
  fill gaps from context on both sides without changing its architecture, so a pretrained GPT-2 can be loaded.
* the *compressed* sequence, what a downstream model would read and what the speed-up measures, is the kept tokens
  only, in order (`kept_tokens`), without placeholders.
"""

from __future__ import annotations

import json
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


class KeepMaskPolicy(nn.Module):
    """Token embedding + a stack of residual 1-D convolutions (a local context window) -> one mask logit per token.

    `forward(input_ids (B, n)) -> scores (B, n)`: a larger score means "more worth removing". Under the top-k policy
    the scores are Plackett-Luce logits over which tokens to remove; under the Bernoulli policy they are the logits
    of removing each token independently.
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
        nn.init.zeros_(self.head.weight)  # start uniform: every token equally likely to be removed
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(input_ids)  # (B, n, d)
        for conv, norm in zip(self.convs, self.norms):
            h = h + self.dropout(F.gelu(conv(norm(h).transpose(1, 2)).transpose(1, 2)))
        return self.head(h).squeeze(-1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@dataclass
class ReconstructorSettings:
    """GPT-2 configuration of a reconstructor trained from scratch (ignored when a pretrained GPT-2 is loaded)."""

    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    dropout: float = 0.0


def build_reconstructor(vocab_size: int, seq_len: int, settings: ReconstructorSettings, pretrained: str | None = None):
    """A `GPT2LMHeadModel`: `from_pretrained(pretrained)` (embeddings resized to `vocab_size`) or built from config.

    Needs `n_positions >= 2 * seq_len` for the `[masked, <sep>, original]` layout.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    if pretrained:
        model = GPT2LMHeadModel.from_pretrained(pretrained)
        if model.config.vocab_size != vocab_size:
            model.resize_token_embeddings(vocab_size)
        if model.config.n_positions < 2 * seq_len:
            raise ValueError(f"{pretrained} has n_positions={model.config.n_positions} < 2 * seq_len={2 * seq_len}")
        return model
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=2 * seq_len,
        n_embd=settings.n_embd,
        n_layer=settings.n_layer,
        n_head=settings.n_head,
        resid_pdrop=settings.dropout,
        embd_pdrop=settings.dropout,
        attn_pdrop=settings.dropout,
        bos_token_id=None,
        eos_token_id=None,
    )
    return GPT2LMHeadModel(config)


def apply_mask(input_ids: torch.Tensor, mask: torch.Tensor, mask_id: int) -> torch.Tensor:
    """`(B, n)` ids with removed positions replaced by `mask_id` (positions kept)."""
    return torch.where(mask, torch.full_like(input_ids, mask_id), input_ids)


def reconstructor_inputs(input_ids: torch.Tensor, mask: torch.Tensor, mask_id: int, sep_id: int) -> torch.Tensor:
    """Teacher-forcing input `(B, 2n)`: `[masked x, <sep>, x_0 … x_{n-2}]`."""
    sep = torch.full_like(input_ids[:, :1], sep_id)
    return torch.cat([apply_mask(input_ids, mask, mask_id), sep, input_ids[:, :-1]], dim=1)


def reconstruction_logits(reconstructor, input_ids, mask, mask_id: int, sep_id: int) -> torch.Tensor:
    """Logits `(B, n, V)` for `x_0 … x_{n-1}` under teacher forcing (one forward pass)."""
    n = input_ids.shape[1]
    out = reconstructor(input_ids=reconstructor_inputs(input_ids, mask, mask_id, sep_id))
    return out.logits[:, n:]


def kept_tokens(input_ids: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    """The compressed sequences: kept tokens only, in order, one 1-D tensor per row."""
    return [row[~m] for row, m in zip(input_ids, mask)]


class CompressionModel(nn.Module):
    """Holds the policy and the reconstructor so that one `Trainer` optimises, checkpoints and restores both.

    Buffers (saved and restored with the weights): `token_freq (V,)`, training-split token counts for the frequency
    baseline, and `steps_seen ()`, the joint steps taken (the trainer's extra state).
    """

    def __init__(self, policy: KeepMaskPolicy, reconstructor, *, mask_id: int, sep_id: int, pad_id: int, seq_len: int):
        super().__init__()
        self.policy = policy
        self.reconstructor = reconstructor
        self.mask_id, self.sep_id, self.pad_id, self.seq_len = mask_id, sep_id, pad_id, seq_len
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
            "sep_id": self.sep_id,
            "pad_id": self.pad_id,
            "seq_len": self.seq_len,
        }

    def write_architecture(self, folder: str | Path) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "compression_model.json").write_text(json.dumps(self.architecture(), indent=2))

    @classmethod
    def from_folder(cls, folder: str | Path) -> CompressionModel:
        """Rebuild from `compression_model.json` and load `model.safetensors` (a run's output_dir or a checkpoint)."""
        from safetensors.torch import load_file
        from transformers import GPT2Config, GPT2LMHeadModel

        folder = Path(folder)
        arch_file = folder / "compression_model.json"
        if not arch_file.exists():
            arch_file = folder.parent / "compression_model.json"
        arch = json.loads(arch_file.read_text())
        policy = KeepMaskPolicy(PolicySettings(**arch["policy"]))
        reconstructor = GPT2LMHeadModel(GPT2Config.from_dict(arch["reconstructor"]))
        model = cls(
            policy,
            reconstructor,
            mask_id=arch["mask_id"],
            sep_id=arch["sep_id"],
            pad_id=arch["pad_id"],
            seq_len=arch["seq_len"],
        )
        state = load_file(str(folder / "model.safetensors"))
        missing, unexpected = model.load_state_dict(state, strict=False)
        # the tied output embedding may be stored once under either name
        missing = [k for k in missing if not k.endswith("lm_head.weight")]
        if missing or unexpected:
            raise RuntimeError(f"Checkpoint {folder} does not match: missing={missing} unexpected={unexpected}")
        return model.eval()


# -- mask distributions ----------------------------------------------------------------------------------------------


def num_to_mask(seq_len: int, ratio: float) -> int:
    """Tokens removed per sequence at `ratio` (rounded), so every method at that ratio removes exactly as many."""
    return int(round(ratio * seq_len))


def topk_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Remove the `k` highest-scoring tokens of each row: bool `(B, n)`."""
    mask = torch.zeros_like(scores, dtype=torch.bool)
    if k > 0:
        mask.scatter_(1, scores.topk(k, dim=1).indices, True)
    return mask


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


def sample_bernoulli(scores: torch.Tensor, generator: torch.Generator | None = None):
    """Remove each token independently with probability `sigmoid(score)`: `(mask (B, n), logp (B,))`."""
    p = torch.sigmoid(scores.detach())
    mask = torch.rand(scores.shape, generator=generator, device=scores.device) < p
    logp = -F.binary_cross_entropy_with_logits(scores, mask.float(), reduction="none").sum(1)
    return mask, logp
