"""Character n-gram tables up to 6-gram: counted with tensor ops, smoothed, looked up per position, cached.

Counting: each length-(k-1) context is packed into one integer `sum_j c_j V^(k-2-j)`; `torch.unique` gives the
seen contexts (sorted) and a `bincount` over `context_row * V + next_char` gives all counts at once (about a
second for 1 MB of text). Only seen contexts get a row, so a 4-gram table over V=65 is `(#seen 3-char contexts,
V)`, not `V^3 x V`.

Smoothing: each order is a Dirichlet prior centred on the order below (interpolated, as in MacKay & Peto 1995):

    p_k(a | h) = (c(h, a) + alpha * p_{k-1}(a | h')) / (c(h) + alpha),   h' = h without its oldest character,
    p_1(a)     = (c(a) + 1) / (N + V).

A context never seen in training backs off to the longest suffix that was. The same tables serve as the game's
teacher: partial-credit reward, control variate and KL reference (`lookup`, on the block being trained, with
`exclude=targets` to leave the scored position's own counts out: the deleted-estimation table, what the teacher
would say had it not seen this position), and as the unigram / bigram / 4-gram baselines of the evaluation
(`score`, on the whole validation split).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import torch


logger = logging.getLogger(__name__)

MAX_ORDER = 6
_MEMORY_CACHE: dict[tuple, NGramModel] = {}


def cache_dir() -> Path:
    return Path(os.environ.get("OPEN_R1_EXT_CACHE", Path.home() / ".cache" / "open_r1_ext")) / "char_ngrams"


def _pack(windows: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """`(..., k)` ids -> `(...,)` int64 context ids, oldest character most significant."""
    ids = torch.zeros(windows.shape[:-1], dtype=torch.long)
    for j in range(windows.shape[-1]):
        ids = ids * vocab_size + windows[..., j]
    return ids


class NGramModel:
    """Interpolated n-gram model of order `order` (1 = unigram ... 4 = 4-gram) over a `vocab_size` alphabet.

    `contexts[k]`: sorted `(n_ctx_k,)` packed contexts of length k-1 seen in training; `probs[k]`: `(n_ctx_k, V)`
    smoothed next-character distributions, rows aligned with `contexts[k]`; `counts[k]`: the raw counts.
    """

    def __init__(self, order: int, vocab_size: int, alpha: float, contexts, counts, probs, fingerprint: str = ""):
        self.order, self.vocab_size, self.alpha = order, vocab_size, alpha
        self.contexts: dict[int, torch.Tensor] = contexts
        self.counts: dict[int, torch.Tensor] = counts
        self.probs: dict[int, torch.Tensor] = probs
        self.fingerprint = fingerprint

    @classmethod
    def fit(cls, data: torch.Tensor, vocab_size: int, order: int = 2, alpha: float = 1.0, fingerprint: str = ""):
        """Count and smooth all orders 1..`order` of `data` (`(n,)` int64 ids)."""
        if not 1 <= order <= MAX_ORDER:
            raise ValueError(f"n-gram order must be in 1..{MAX_ORDER}, got {order!r}")
        if alpha <= 0:
            raise ValueError(f"n-gram alpha must be > 0, got {alpha!r}")
        data = data.long()
        V = vocab_size
        unigram = torch.bincount(data, minlength=V).float()
        contexts = {1: torch.zeros(1, dtype=torch.long)}
        counts = {1: unigram[None, :]}
        probs = {1: ((unigram + 1.0) / (unigram.sum() + V))[None, :]}
        for k in range(2, order + 1):
            windows = data.unfold(0, k, 1)  # (n-k+1, k)
            ctx = _pack(windows[:, :-1], V)
            uniq, row = torch.unique(ctx, return_inverse=True)
            c = torch.bincount(row * V + windows[:, -1], minlength=len(uniq) * V).view(len(uniq), V).float()
            # every seen context's suffix is a seen context of order k-1 (it is followed by the same character)
            lower_rows = torch.searchsorted(contexts[k - 1], uniq % V ** (k - 2))
            lower = probs[k - 1][lower_rows]
            contexts[k], counts[k] = uniq, c
            probs[k] = (c + alpha * lower) / (c.sum(-1, keepdim=True) + alpha)
        return cls(order, V, alpha, contexts, counts, probs, fingerprint)

    @classmethod
    def cached(cls, data: torch.Tensor, vocab_size: int, order: int, alpha: float, fingerprint: str, use_disk=True):
        """`fit`, memoised in memory and (when `use_disk`) on disk under `cache_dir()`, keyed by the corpus
        fingerprint, order and alpha."""
        key = (fingerprint, vocab_size, order, float(alpha))
        if key in _MEMORY_CACHE:
            return _MEMORY_CACHE[key]
        path = cls.cache_path(fingerprint, vocab_size, order, alpha)
        model = None
        if use_disk and path.is_file():
            try:
                blob = torch.load(path, weights_only=True)
                model = cls(order, vocab_size, alpha, blob["contexts"], blob["counts"], blob["probs"], fingerprint)
            except Exception as err:  # a torn or stale file is rebuilt, not trusted
                logger.warning("Ignoring unreadable n-gram cache %s (%s)", path, err)
        if model is None:
            model = cls.fit(data, vocab_size, order, alpha, fingerprint)
            if use_disk:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                torch.save({"contexts": model.contexts, "counts": model.counts, "probs": model.probs}, tmp)
                os.replace(tmp, path)
        _MEMORY_CACHE[key] = model
        return model

    @staticmethod
    def cache_path(fingerprint: str, vocab_size: int, order: int, alpha: float) -> Path:
        return cache_dir() / f"ngram-{fingerprint}-V{vocab_size}-o{order}-a{alpha:g}.pt"

    def lookup(self, x: torch.Tensor, order: int | None = None, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """Next-character distributions after every position of `x`.

        x: `(B, T)` ids. Returns `(B, T, V)`: row `[b, t]` is `p(. | x[b, t-k+2 .. t])` for the highest order
        `k <= order` whose context lies inside the block and was seen in training (the first positions of a block
        use shorter contexts). `exclude`: `(B, T)` the characters that follow each position in the training text
        (the targets); their occurrence is removed from every order's counts before smoothing (leave-one-out), so
        a context seen only at this position backs off as an unseen one would.
        """
        order = self.order if order is None else order
        if not 1 <= order <= self.order:
            raise ValueError(f"lookup order {order} outside 1..{self.order}")
        if exclude is not None and exclude.shape != x.shape:
            raise ValueError(f"exclude must have the shape of x {tuple(x.shape)}, got {tuple(exclude.shape)}")
        B, T = x.shape
        rows = torch.zeros(order + 1, B, T, dtype=torch.long)  # row of each order's table, where seen
        level = torch.ones(B, T, dtype=torch.long)  # highest order whose context was seen
        for k in range(2, order + 1):
            if T < k - 1:
                break
            ctx = _pack(x.unfold(1, k - 1, 1), self.vocab_size)  # (B, T-k+2): context ending at t = k-2 ...
            table = self.contexts[k]
            idx = torch.searchsorted(table, ctx).clamp_max(len(table) - 1)
            found = (table[idx] == ctx) & (level[:, k - 2 :] == k - 1)  # a suffix of a seen context is seen
            rows[k, :, k - 2 :] = idx
            level[:, k - 2 :] = torch.where(found, torch.full_like(idx, k), level[:, k - 2 :])
        if exclude is None:
            out = torch.empty(B, T, self.vocab_size, dtype=self.probs[1].dtype)
            for k in range(1, order + 1):
                m = level == k
                if m.any():
                    out[m] = self.probs[k][rows[k][m]]
            return out
        own = torch.nn.functional.one_hot(exclude.long(), self.vocab_size).to(self.counts[1].dtype)
        c = (self.counts[1][0] - own).clamp_min(0)
        p = (c + 1.0) / (c.sum(-1, keepdim=True) + self.vocab_size)
        for k in range(2, order + 1):
            m = level >= k
            if not m.any():
                break
            c = (self.counts[k][rows[k][m]] - own[m]).clamp_min(0)
            p[m] = (c + self.alpha * p[m]) / (c.sum(-1, keepdim=True) + self.alpha)
        return p

    @torch.no_grad()
    def score(self, data: torch.Tensor, order: int | None = None, chunk: int = 32768) -> dict[str, float]:
        """Cross-entropy (nats/char) and top-1 accuracy of predicting `data[i+1]` from `data[..i]`, in chunks
        that carry the previous `order-1` characters as context."""
        order = self.order if order is None else order
        data = data.long()
        nll, correct, n = 0.0, 0, 0
        for s in range(0, len(data) - 1, chunk):
            e = min(s + chunk, len(data) - 1)
            lead = min(order - 1, s)
            q = self.lookup(data[s - lead : e][None, :], order)[0, lead:]
            y = data[s + 1 : e + 1]
            nll -= q.gather(1, y[:, None]).clamp_min(1e-12).log().sum().item()
            correct += (q.argmax(-1) == y).sum().item()
            n += len(y)
        ce = nll / max(n, 1)
        return {"ce": ce, "bpc": ce / math.log(2), "accuracy": correct / max(n, 1)}
