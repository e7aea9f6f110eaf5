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

- `PrincipalDirectionEncoder` (issue 17): the matrix's top singular pairs themselves, each read direction `v_i`
  and write direction `u_i` projected into the student's latent space by a fixed Gaussian map per dimension (so
  matrices that share a side, e.g. everything reading the teacher's hidden state, stay comparable), the write side
  weighted by `sigma_i`. This is what initialises the memory by default.

**Why the default changed.** Measured on main: the hybrid codes of different teacher matrices had mean cosine 0.972
(the tanh of a random fusion dominated by its bias), codes of a trained and of a randomly initialised teacher had
cosine 0.937 slot for slot, and the PCA encoder kept singular values only, so the keys it gave had effective rank 3.3
(random keys: 29.5). Principal directions keep what the matrix does, and two different matrices give orthogonal-ish
keys.

**How they reach the student** (`init_memory_from_teacher`, called once by the trainer on a freshly created
student, `memory_init: teacher_weights`). The teacher's 2-D weight matrices are listed in name order, excluding
embeddings and the LM head. Slot `s` takes singular pair `s // n` of matrix `s % n` (n matrices; every matrix before
any second pair): its key is the projected read direction, its value the projected, sigma-weighted write direction.
Keys and values are standardised over all slots to the random init's unit scale. `memory_init: teacher_hybrid`
keeps the seed's scheme (slot s takes matrix `s * n // slots`, hybrid code split into key and value). The config
records `memory_initialized_from` so that a reloaded or resumed student is never re-initialised.

**Telling matrices apart** (`matrix_descriptor`, `matrix_type_accuracy`). Principal directions say what a matrix
reads and writes, which is specific to its layer, not its type; whether codes carry the teacher's structure is
measured on a sign- and permutation-invariant descriptor (spectrum shares, row/column-norm quantiles, std, kurtosis)
by leave-one-out nearest-neighbour accuracy of the matrix type, against a randomly initialised teacher.
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


class PrincipalDirectionEncoder(nn.Module):
    """A matrix's top singular pairs as (key, value) rows in the student's latent space, `(rank, 2 * out_dim)`.

    For `W = sum_i sigma_i u_i v_i^T` the key of pair i is `P_C v_i` (the direction the matrix reads) and its value
    `(sigma_i / rms(sigma)) * P_R u_i` (the direction it writes, weighted by its share of the spectrum), where `P_n`
    is a fixed `(n, out_dim)` Gaussian map with `1/sqrt(out_dim)` entries, drawn from `seed` and the dimension `n`:
    all matrices that read or write the teacher's hidden space use the same `P_H`, so their directions keep their
    angles (Johnson-Lindenstrauss) and stay comparable. A pair's sign is fixed by making the key's largest entry
    positive (u and v flip together). The encoder has no trained parameters."""

    def __init__(self, out_dim: int, rank: int = 4, seed: int = 0):
        super().__init__()
        if out_dim < 1 or rank < 1:
            raise ValueError(f"out_dim and rank must be >= 1, got out_dim={out_dim!r}, rank={rank!r}")
        self.out_dim, self.rank, self.seed = out_dim, rank, seed
        self._maps: dict[int, torch.Tensor] = {}

    def projection(self, n: int) -> torch.Tensor:
        """The fixed `(n, out_dim)` map for an `n`-dimensional side."""
        if n not in self._maps:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + n)
            self._maps[n] = torch.randn(n, self.out_dim, generator=g) / self.out_dim**0.5
        return self._maps[n]

    @torch.no_grad()
    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        w = weight.detach().float().cpu()
        if w.dim() != 2:
            raise ValueError(f"expected a 2-D weight matrix, got shape {tuple(w.shape)}")
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        r = min(self.rank, s.numel())
        keys = vh[:r] @ self.projection(w.size(1))  # (r, out_dim)
        values = u[:, :r].t() @ self.projection(w.size(0))
        sign = keys.gather(1, keys.abs().argmax(1, keepdim=True)).sign()
        scale = (s[:r] / s.pow(2).mean().sqrt().clamp(min=1e-12)).unsqueeze(1)
        codes = torch.cat([keys * sign, values * sign * scale], dim=1)
        if r < self.rank:  # a matrix of rank < `rank`: repeat its pairs
            codes = codes[torch.arange(self.rank) % r]
        return codes


def matrix_descriptor(weight: torch.Tensor, quantiles: int = 8, spectrum: int = 8) -> torch.Tensor:
    """A sign- and permutation-invariant description of a matrix, `(2 + spectrum + 2 * quantiles,)`: log std, log1p
    of the excess kurtosis (clamped at -0.99), the square roots of the top `spectrum` shares of `sum sigma^2`, and
    `quantiles` quantiles of its row norms and of its column norms, each over their mean (how unevenly it reads and
    writes). What `matrix_type_accuracy` compares; the shape enters only through these distributions."""
    w = weight.detach().float().cpu()
    s = torch.linalg.svdvals(w)
    share = (s**2 / (s**2).sum().clamp(min=1e-24))[:spectrum]
    share = torch.cat([share, share.new_zeros(spectrum - share.numel())])
    var = w.var(unbiased=False).clamp(min=1e-24)
    kurtosis = ((w - w.mean()) ** 4).mean() / var**2 - 3.0
    probs = torch.linspace(0, 1, quantiles)
    rows, cols = w.norm(dim=1), w.norm(dim=0)
    return torch.cat(
        [
            var.log().reshape(1) / 2,
            kurtosis.clamp(min=-0.99).log1p().reshape(1),
            share.sqrt(),
            torch.quantile(rows / rows.mean().clamp(min=1e-12), probs),
            torch.quantile(cols / cols.mean().clamp(min=1e-12), probs),
        ]
    )


def matrix_type_accuracy(codes: torch.Tensor, labels: list[str]) -> float:
    """Leave-one-out nearest-neighbour accuracy `(N, D)` codes -> labels: features standardised over the N codes,
    Euclidean distance; the share of codes whose nearest other code has the same label."""
    if codes.size(0) < 2 or len(labels) != codes.size(0):
        raise ValueError(f"need >= 2 codes and one label each, got {codes.size(0)} codes and {len(labels)} labels")
    z = codes.float()
    z = (z - z.mean(0)) / z.std(0).clamp(min=1e-8)
    dist = torch.cdist(z, z)
    dist.fill_diagonal_(float("inf"))
    nearest = dist.argmin(1).tolist()
    return sum(labels[i] == labels[j] for i, j in enumerate(nearest)) / len(labels)


ENCODERS = {
    "sparse": SparseWeightEncoder,
    "pca": PCAWeightEncoder,
    "hybrid": HybridWeightEncoder,
    "principal": PrincipalDirectionEncoder,
}


def teacher_matrices(teacher: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The teacher's 2-D weights in name order, without embeddings and LM head (those encode the vocabulary)."""
    out_emb = teacher.get_output_embeddings() if hasattr(teacher, "get_output_embeddings") else None
    in_emb = teacher.get_input_embeddings() if hasattr(teacher, "get_input_embeddings") else None
    skip = {id(m.weight) for m in (out_emb, in_emb) if m is not None and hasattr(m, "weight")}
    return sorted((name, p) for name, p in teacher.named_parameters() if p.dim() == 2 and id(p) not in skip)


@torch.no_grad()
def encode_teacher(
    teacher: nn.Module, memory_slots: int, latent_dim: int, seed: int = 0, encoder: str = "principal", **encoder_kwargs
) -> torch.Tensor:
    """Codes `(memory_slots, 2 * latent_dim)` of the teacher's matrices, key then value (see the module docstring).

    `principal`: the slots are spread over the matrices (`ceil(memory_slots / n)` singular pairs per matrix, slot s
    taking pair `s // n` of matrix `s % n`, so every matrix is used before any second pair). `hybrid` (the seed's):
    slot s takes matrix `s * n // memory_slots`, encoded with PCA blocks re-drawn from `seed + s`."""
    mats = teacher_matrices(teacher)
    if not mats:
        raise ValueError(f"{type(teacher).__name__} has no 2-D weight matrices to encode")
    n = len(mats)
    if encoder == "principal":
        enc = PrincipalDirectionEncoder(latent_dim, rank=-(-memory_slots // n), seed=seed, **encoder_kwargs)
        per_matrix = [enc(weight) for _, weight in mats]
        return torch.stack([per_matrix[s % n][s // n] for s in range(memory_slots)])
    if encoder == "hybrid":
        hybrid = HybridWeightEncoder(2 * latent_dim, seed=seed, **encoder_kwargs)
        return torch.stack([hybrid(mats[s * n // memory_slots][1], pca_seed=seed + s) for s in range(memory_slots)])
    raise ValueError(f"encoder must be `principal` or `hybrid`, got {encoder!r}")


def _standardise(x: torch.Tensor, std: float) -> torch.Tensor:
    return (x - x.mean()) / x.std().clamp(min=1e-12) * std


@torch.no_grad()
def init_memory_from_teacher(student, teacher: nn.Module, name: str, seed: int = 0, encoder: str = "principal"):
    """Overwrite the student's memory keys/values with encoded teacher weights; returns the codes `(S, 2L)`.

    Keys and values are rescaled to the random init's scale (unit std; the read normalises keys anyway)."""
    memory = student.memory
    slots, latent = memory.memory_keys.shape
    codes = encode_teacher(teacher, slots, latent, seed=seed, encoder=encoder).float()
    memory.memory_keys.copy_(_standardise(codes[:, :latent], 1.0).to(memory.memory_keys))
    memory.memory_values.copy_(_standardise(codes[:, latent:], 1.0).to(memory.memory_values))
    student.config.memory_initialized_from = name
    return codes


def effective_rank(x: torch.Tensor) -> float:
    """exp(entropy of the normalised squared singular values) of `(N, D)` rows: how many directions they span."""
    s = torch.linalg.svdvals(x.detach().float().cpu())
    p = s**2 / (s**2).sum().clamp(min=1e-24)
    return float(torch.exp(-(p * p.clamp(min=1e-24).log()).sum()))
