"""Whether the DeepMime memory acts: held-out CE with and without it, and how peaked its read and routing are.

The trainer logs the same quantities per step (`deepmime/memory_attention_entropy`, `deepmime/router_entropy`) and
at evaluation (`deepmime/memory_ablation_ce_increase`); this module measures them on a fixed set of rows, for the
benchmark, the launch script's summary and the tests.
"""

from __future__ import annotations

import torch

from open_r1_ext.core.tiny import sft_batch

from .model import memory_ablated


@torch.no_grad()
def memory_diagnostics(model, tokenizer, rows: list[dict]) -> dict[str, float]:
    """On `rows` (`prompt`, `completion`; CE on completion + eos), for a `DeepMimeStudentForCausalLM`:

    - `val_ce`: mean token CE (nats); `val_ce_memory_ablated`: the same with the memory/MoE output removed;
    - `memory_ablation_ce_increase`: `(val_ce_memory_ablated - val_ce) / val_ce`;
    - `memory_attention_entropy`, `router_entropy`: mean per-token entropies over their maxima (`log S`, `log E`)
      over the rows' non-padding tokens.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in sft_batch(tokenizer, rows).items()}
    out = model(**batch)
    with memory_ablated(model):
        ablated = model(**batch)
    model.train(was_training)
    ce, ce_ablated = out.loss.item(), ablated.loss.item()
    return {
        "val_ce": ce,
        "val_ce_memory_ablated": ce_ablated,
        "memory_ablation_ce_increase": (ce_ablated - ce) / max(ce, 1e-8),
        "memory_attention_entropy": out.memory_attention_entropy.item(),
        "router_entropy": out.router_entropy.item(),
    }
