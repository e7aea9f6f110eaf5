"""Warm start of the reconstructor: trained to fill gaps on the corpus before joint training, cached on disk.

Each row hides a random fraction of its tokens drawn uniformly from `[min_rate, max_rate]` and the loss is the
cross-entropy of the hidden tokens: for the infilling GPT-2 (`kind: gpt2_infill`, the default) an infilling LM
trained teacher-forced on `[gap-marked sequence, <sep>, hidden tokens in order]` (`compression/infill.py`); for the
masked LM (`kind: mlm`) a masked LM with a variable masking rate. Without it the policy is rewarded against a
reconstructor that can recover almost nothing, and the trade the rate-distortion reward describes cannot be made.

The result is saved with `save_pretrained` under `<cache_root>/compression/<key>` (`cache_root` is the built-in
models' cache, `$OPEN_R1_EXT_CACHE` or `~/.cache/open_r1_ext`), keyed by every setting that shapes it (the kind
included) and by a hash of the prepared data, so every seed and every λ of a sweep starts from the same reconstructor
and the second run loads it in a second. `warm_start.json` in that folder holds the validation loss (hidden-token
NLL, nats/token, teacher-forced, on the validation plays) at the training mask distribution and at 40 % random
masking, the top-1 recovery at 40 % (teacher-forced argmax) and, what the reconstruction really gets, the recovery
of the decoded reconstruction at 40 % (greedy infill decoding; for the masked LM its one-pass argmax).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from open_r1_ext.compression.data import load_split
from open_r1_ext.compression.models import ReconstructorSettings, build_reconstructor, fill_gaps, removed_logits
from open_r1_ext.core.tiny import cache_root


_VERSION = 1


def _log(message: str) -> None:
    print(message, flush=True)


@dataclass
class WarmStartSettings:
    """Every setting that shapes a warm-started reconstructor; the cache key hashes these and the data."""

    vocab_size: int
    seq_len: int
    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    steps: int = 1500
    batch_size: int = 64
    lr: float = 2e-3
    min_rate: float = 0.1
    max_rate: float = 0.8
    seed: int = 0
    data_hash: str = ""
    kind: str = "gpt2_infill"  # `compression.models.RECONSTRUCTORS`

    def key(self) -> str:
        fields = asdict(self)
        if self.kind == "mlm":  # the masked LM's key predates `kind`: keep it, so its cache entries stay valid
            del fields["kind"]
        blob = json.dumps({**fields, "version": _VERSION}, sort_keys=True)
        return f"{self.kind.replace('_', '-')}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def data_hash(data_dir: str | Path) -> str:
    """Hash of the prepared data's metadata and tokenizer: a new split or vocabulary is a new warm start."""
    d = Path(data_dir)
    h = hashlib.sha256((d / "meta.json").read_bytes())
    for f in sorted((d / "tokenizer").glob("*.json")):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def random_rate_masks(shape, min_rate: float, max_rate: float, generator: torch.Generator) -> torch.Tensor:
    """Bool `(B, n)`: row `b` hides each token with its own rate `~ U(min_rate, max_rate)`, at least one token."""
    B, n = shape
    rate = min_rate + (max_rate - min_rate) * torch.rand(B, 1, generator=generator)
    mask = torch.rand(B, n, generator=generator) < rate
    none = ~mask.any(1)
    if none.any():  # a row with nothing hidden carries no loss
        mask[none, torch.randint(0, n, (int(none.sum()),), generator=generator)] = True
    return mask


@torch.no_grad()
def masked_lm_loss(reconstructor, data: torch.Tensor, mask_id: int, rate: float | None, settings, seed: int = 1):
    """`(NLL nats/token, top-1 recovery)` of hidden tokens on `data (N, n)`, teacher-forced for the infilling LM:
    `rate` fixed, or None = the training distribution `U(min_rate, max_rate)`."""
    reconstructor.eval()
    g = torch.Generator().manual_seed(seed)
    nll_sum, hit, count = 0.0, 0, 0
    for start in range(0, len(data), 128):
        x = data[start : start + 128]
        lo, hi = (settings.min_rate, settings.max_rate) if rate is None else (rate, rate)
        mask = random_rate_masks(x.shape, lo, hi, g)
        logits = removed_logits(reconstructor, x, mask, mask_id).float()
        target = x[mask]
        nll_sum += F.cross_entropy(logits, target, reduction="sum").item()
        hit += (logits.argmax(-1) == target).sum().item()
        count += target.numel()
    return nll_sum / count, hit / count


@torch.no_grad()
def decoded_recovery(reconstructor, data: torch.Tensor, mask_id: int, rate: float, suppress=None, seed: int = 1):
    """Share of hidden tokens the decoded reconstruction (`fill_gaps`: greedy infill decoding, or the masked LM's
    one pass) gets right on `data (N, n)` at random masking rate `rate` (the same masks as `masked_lm_loss`)."""
    reconstructor.eval()
    g = torch.Generator().manual_seed(seed)
    hit, count = 0, 0
    for start in range(0, len(data), 128):
        x = data[start : start + 128]
        mask = random_rate_masks(x.shape, rate, rate, g)
        rec = fill_gaps(reconstructor, x, mask, mask_id, suppress)
        hit += ((rec == x) & mask).sum().item()
        count += mask.sum().item()
    return hit / count


def train_warm_start(reconstructor, train: torch.Tensor, mask_id: int, settings: WarmStartSettings, log=_log):
    """Masked-LM training of `reconstructor` on `train (N, n)` for `settings.steps` steps; returns the losses."""
    g = torch.Generator().manual_seed(settings.seed)
    opt = torch.optim.AdamW(reconstructor.parameters(), lr=settings.lr, weight_decay=0.01)
    warmup = max(1, min(100, settings.steps // 10))

    def lr_at(step):  # linear warm-up, cosine decay to a tenth
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, settings.steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    reconstructor.train()
    losses, t0 = [], time.perf_counter()
    for step in range(settings.steps):
        x = train[torch.randint(0, len(train), (settings.batch_size,), generator=g)]
        mask = random_rate_masks(x.shape, settings.min_rate, settings.max_rate, g)
        loss = F.cross_entropy(removed_logits(reconstructor, x, mask, mask_id).float(), x[mask])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(reconstructor.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % max(1, settings.steps // 10) == 0:
            recent = sum(losses[-50:]) / len(losses[-50:])
            log(f"[warm start] step {step + 1}/{settings.steps} loss {recent:.3f} ({time.perf_counter() - t0:.0f}s)")
    reconstructor.eval()
    return losses


def build_warm_start(
    settings: WarmStartSettings,
    data_dir: str | Path,
    mask_id: int,
    log=_log,
    *,
    sep_id: int | None = None,
    pad_id: int = 0,
) -> Path:
    """The cached folder of the warm-started reconstructor for `settings`, training and saving it on a miss
    (`sep_id`/`pad_id`: the infilling LM's separator and padding).

    Written to a temporary name and renamed, so a crash never leaves a half-written entry (launchers call this under
    `main_process_first`, so one process trains and the others load).
    """
    path = cache_root() / "compression" / settings.key()
    if (path / "warm_start.json").exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    rec = build_reconstructor(
        settings.vocab_size,
        settings.seq_len,
        ReconstructorSettings(n_layer=settings.n_layer, n_embd=settings.n_embd, n_head=settings.n_head),
        kind=settings.kind,
        sep_id=sep_id,
        pad_id=pad_id,
    )
    size = sum(p.numel() for p in rec.parameters()) / 1e6
    log(f"[warm start] {settings.kind} reconstructor ({type(rec).__name__}), {size:.2f}M parameters, "
        f"{settings.steps} steps -> {path}")  # fmt: skip
    t0 = time.perf_counter()
    losses = train_warm_start(rec, load_split(data_dir, "train"), mask_id, settings, log=log)
    val = load_split(data_dir, "validation")[:1024]
    val_loss, val_rec = masked_lm_loss(rec, val, mask_id, None, settings)
    val_loss_40, val_rec_40 = masked_lm_loss(rec, val, mask_id, 0.4, settings)
    val_dec_40 = decoded_recovery(rec, val, mask_id, 0.4, suppress=[mask_id, pad_id])
    info = {
        "settings": asdict(settings),
        "train_loss_last50": sum(losses[-50:]) / max(1, len(losses[-50:])),
        "val_loss": val_loss,
        "val_recovery": val_rec,
        "val_loss_at_0.4": val_loss_40,
        "val_recovery_at_0.4": val_rec_40,
        "val_recovery_at_0.4_decoded": val_dec_40,
        "val_sequences": len(val),
        "seconds": time.perf_counter() - t0,
    }
    log(f"[warm start] validation NLL {val_loss:.3f} nats/token (U({settings.min_rate}, {settings.max_rate}) "
        f"masking), {val_loss_40:.3f} at 40 % random, top-1 recovery {val_rec_40:.3f} at 40 % teacher-forced, "
        f"{val_dec_40:.3f} decoded")  # fmt: skip
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    rec.save_pretrained(tmp)
    (tmp / "warm_start.json").write_text(json.dumps(info, indent=2))
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


def warm_start_info(path: str | Path) -> dict:
    return json.loads((Path(path) / "warm_start.json").read_text())
