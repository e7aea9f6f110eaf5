"""Weight encoders: a teacher's weight matrix `(R, C)` -> a vector `(out_dim,)`, and the memory initialisation that
uses them.

Seed: `../shared/seeds/000_2452fced7af1b1cb.txt` (Weight Encoders). Three encoders, each an `nn.Module` whose own
parameters are drawn from a seeded generator (so two encoders built with the same seed are the same map):

- `SparseWeightEncoder`: the `top_k` entries of largest magnitude, each described by `(w / max|w|, |w| / max|w|,
  row / R, col / C)`, passed through a gated MLP (`(A x) * sigmoid(G x)`), mean-pooled, projected to `out_dim`.
- `PCAWeightEncoder`: `num_blocks` random sub-blocks of `block_size x block_size` (rows and columns drawn from a
  seeded generator, so the same blocks every call); the top `rank` singular values of each block (truncated SVD),
  divided by the block's Frobenius norm, plus the log of that norm; concatenated and projected to `out_dim`.
- `HybridWeightEncoder`: both, plus the 5 global statistics of `weight_statistics` (mean, std, max |w|, mean |w|,
  excess kurtosis), fused by a linear layer and a tanh.

**How they reach the student** (`init_memory_from_teacher`, called once by the trainer on a freshly created
student). The teacher's 2-D weight matrices are listed in name order, excluding embeddings and the LM head; slot
`s` of the memory takes matrix `s * n_matrices // memory_slots` (every matrix when there are more slots than
matrices, evenly spaced ones when fewer). A `HybridWeightEncoder` with `out_dim = 2 * memory_latent_dim` (its PCA
blocks re-drawn per slot from `seed + s`, so two slots that share a matrix still differ) encodes it; the first half
becomes the slot's key, the second its value. Keys and values are then standardised over all slots and rescaled to
the random init's scale (keys std `1/sqrt(L)`, values std `initializer_range`), so the memory starts at the same
magnitude as a random one but with a structure taken from the teacher: slots whose matrices are alike have alike
keys. The encoders are untrained random maps (a random-feature projection); training moves the memory from there.
The config records `memory_initialized_from` so that a reloaded or resumed student is never re-initialised.
"""

from __future__ import annotations

import torch
from torch import nn


NUM_STATISTICS = 5


def _seeded_linear(generator: torch.Generator, n_in: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    with torch.no_grad():
        bound = 1.0 / n_in**0.5
        layer.weight.copy_((torch.rand(n_out, n_in, generator=generator) * 2 - 1) * bound)
        layer.bias.copy_((torch.rand(n_out, generator=generator) * 2 - 1) * bound)
    return layer


def weight_statistics(weight: torch.Tensor) -> torch.Tensor:
    """The 5 global statistics of a matrix, `(5,)`: mean, std, max |w|, mean |w|, excess kurtosis."""
    w = weight.detach().float().flatten()
    mean, std = w.mean(), w.std(unbiased=False)
    kurtosis = ((w - mean) ** 4).mean() / std.clamp(min=1e-12) ** 4 - 3.0
    return torch.stack([mean, std, w.abs().max(), w.abs().mean(), kurtosis])


class SparseWeightEncoder(nn.Module):
    """Top-`top_k` magnitude entries of a matrix -> gated MLP -> mean pool -> `(out_dim,)`."""

    def __init__(self, out_dim: int, top_k: int = 256, hidden_dim: int = 64, seed: int = 0):
        super().__init__()
        if top_k < 1 or out_dim < 1:
            raise ValueError(f"top_k and out_dim must be >= 1, got top_k={top_k!r}, out_dim={out_dim!r}")
        g = torch.Generator().manual_seed(seed)
        self.top_k = top_k
        self.value = _seeded_linear(g, 4, hidden_dim)
        self.gate = _seeded_linear(g, 4, hidden_dim)
        self.out = _seeded_linear(g, hidden_dim, out_dim)

    def features(self, weight: torch.Tensor) -> torch.Tensor:
        """`(k, 4)` per-entry features of the top-k magnitude entries, largest first."""
        w = weight.detach().float()
        if w.dim() != 2:
            raise ValueError(f"expected a 2-D weight matrix, got shape {tuple(w.shape)}")
        flat = w.flatten()
        k = min(self.top_k, flat.numel())
        top = flat.abs().topk(k)
        scale = top.values[0].clamp(min=1e-12)
        values = flat[top.indices] / scale
        rows = (top.indices // w.size(1)).float() / max(w.size(0) - 1, 1)
        cols = (top.indices % w.size(1)).float() / max(w.size(1) - 1, 1)
        return torch.stack([values, values.abs(), rows, cols], dim=1)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        x = self.features(weight).to(self.value.weight.device)
        h = self.value(x) * torch.sigmoid(self.gate(x))
        return self.out(h.mean(dim=0))


class PCAWeightEncoder(nn.Module):
    """Truncated SVD of `num_blocks` seeded random sub-blocks -> `(out_dim,)`."""

    def __init__(self, out_dim: int, num_blocks: int = 8, block_size: int = 64, rank: int = 8, seed: int = 0):
        super().__init__()
        if min(out_dim, num_blocks, block_size, rank) < 1:
            raise ValueError(
                f"out_dim, num_blocks, block_size, rank must be >= 1, got {(out_dim, num_blocks, block_size, rank)}"
            )
        self.num_blocks, self.block_size, self.rank, self.seed = num_blocks, block_size, rank, seed
        self.out = _seeded_linear(torch.Generator().manual_seed(seed + 1), num_blocks * (rank + 1), out_dim)

    def features(self, weight: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        """`(num_blocks * (rank + 1),)`: per block, its top singular values over its Frobenius norm (zero-padded
        to `rank`) and its log Frobenius norm. `seed` re-draws the blocks (default: the encoder's)."""
        w = weight.detach().float()
        if w.dim() != 2:
            raise ValueError(f"expected a 2-D weight matrix, got shape {tuple(w.shape)}")
        g = torch.Generator().manual_seed(self.seed if seed is None else seed)
        br, bc = min(self.block_size, w.size(0)), min(self.block_size, w.size(1))
        feats = []
        for _ in range(self.num_blocks):
            rows = torch.randperm(w.size(0), generator=g)[:br].to(w.device)
            cols = torch.randperm(w.size(1), generator=g)[:bc].to(w.device)
            block = w[rows][:, cols]
            norm = block.norm().clamp(min=1e-12)
            s = torch.linalg.svdvals(block)[: self.rank] / norm
            s = torch.cat([s, s.new_zeros(self.rank - s.numel())])
            feats.append(torch.cat([s, norm.log().reshape(1)]))
        return torch.cat(feats)

    def forward(self, weight: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        return self.out(self.features(weight, seed).to(self.out.weight.device))


class HybridWeightEncoder(nn.Module):
    """Sparse and PCA embeddings plus the 5 global statistics, fused: `tanh(W [sparse; pca; stats])` `(out_dim,)`."""

    def __init__(
        self,
        out_dim: int,
        embed_dim: int = 64,
        top_k: int = 256,
        num_blocks: int = 8,
        block_size: int = 64,
        rank: int = 8,
        seed: int = 0,
    ):
        super().__init__()
        self.sparse = SparseWeightEncoder(embed_dim, top_k=top_k, seed=seed)
        self.pca = PCAWeightEncoder(embed_dim, num_blocks=num_blocks, block_size=block_size, rank=rank, seed=seed)
        self.fuse = _seeded_linear(torch.Generator().manual_seed(seed + 2), 2 * embed_dim + NUM_STATISTICS, out_dim)

    def forward(self, weight: torch.Tensor, pca_seed: int | None = None) -> torch.Tensor:
        device = self.fuse.weight.device
        stats = weight_statistics(weight).to(device)
        # Statistics span orders of magnitude (kurtosis vs. a 1e-3 mean); a signed log keeps them comparable.
        stats = stats.sign() * stats.abs().log1p()
        x = torch.cat([self.sparse(weight), self.pca(weight, pca_seed), stats])
        return torch.tanh(self.fuse(x))


ENCODERS = {"sparse": SparseWeightEncoder, "pca": PCAWeightEncoder, "hybrid": HybridWeightEncoder}


def teacher_matrices(teacher: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The teacher's 2-D weights in name order, without embeddings and LM head (those encode the vocabulary)."""
    out_emb = teacher.get_output_embeddings() if hasattr(teacher, "get_output_embeddings") else None
    in_emb = teacher.get_input_embeddings() if hasattr(teacher, "get_input_embeddings") else None
    skip = {id(m.weight) for m in (out_emb, in_emb) if m is not None and hasattr(m, "weight")}
    return sorted((name, p) for name, p in teacher.named_parameters() if p.dim() == 2 and id(p) not in skip)


@torch.no_grad()
def encode_teacher(teacher: nn.Module, memory_slots: int, latent_dim: int, seed: int = 0, **encoder_kwargs):
    """Codes `(memory_slots, 2 * latent_dim)` of the teacher's matrices (see the module docstring)."""
    mats = teacher_matrices(teacher)
    if not mats:
        raise ValueError(f"{type(teacher).__name__} has no 2-D weight matrices to encode")
    encoder = HybridWeightEncoder(2 * latent_dim, seed=seed, **encoder_kwargs)
    codes = []
    for s in range(memory_slots):
        _, weight = mats[s * len(mats) // memory_slots]
        codes.append(encoder(weight, pca_seed=seed + s))
    return torch.stack(codes)


def _standardise(x: torch.Tensor, std: float) -> torch.Tensor:
    return (x - x.mean()) / x.std().clamp(min=1e-12) * std


@torch.no_grad()
def init_memory_from_teacher(student, teacher: nn.Module, name: str, seed: int = 0) -> torch.Tensor:
    """Overwrite the student's memory keys/values with encoded teacher weights; returns the codes `(S, 2L)`."""
    memory = student.memory
    slots, latent = memory.memory_keys.shape
    codes = encode_teacher(teacher, slots, latent, seed=seed).float()
    std_v = student.config.initializer_range
    memory.memory_keys.copy_(_standardise(codes[:, :latent], latent**-0.5).to(memory.memory_keys))
    memory.memory_values.copy_(_standardise(codes[:, latent:], std_v).to(memory.memory_values))
    student.config.memory_initialized_from = name
    return codes
