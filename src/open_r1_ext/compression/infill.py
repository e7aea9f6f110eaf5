"""The GPT-2 infilling reconstructor (`reconstructor: gpt2_infill`, the default): a causal LM that sees both sides of
every gap because the whole gap-marked sequence is its prefix.

Layout of one row `x (n,)` with `k` removed tokens at positions `g_0 < g_1 < ... < g_{k-1}`:

    index:     0 ... n-1                      n       n+1   ...  n+k-1
    input:     x with x_{g_j} -> <mask>       <sep>   x_{g_0} ... x_{g_{k-2}}      (the prefix, then the infill)
    position:  0 ... n-1                      g_0     g_1   ...  g_{k-1}
    predicts:  (nothing)                      x_{g_0} x_{g_1} ... x_{g_{k-1}}

The prefix holds every kept token in place and one `<mask>` gap marker per removed token, so by the time the infill
starts, the model has read the context on **both sides** of every gap; the infill then lists the removed tokens in
order, each predicted from the prefix and the infill tokens before it (a left-to-right LM's chain rule, so the
teacher-forced NLL is the exact log-likelihood of the infill). **Position ids:** the input that predicts gap `j`
carries the gap's own position `g_j` (a GPT-2 learns absolute position embeddings), so "which gap am I filling"
needs no counting of earlier infill tokens, the infill lives in positions `0 ... n-1` like the prefix, and any
causal LM with `max_position_embeddings >= seq_len` fits. Rows of a batch remove different numbers of tokens; the
infill is right-padded and, the model being causal, no real position ever attends to the padding, so no attention
mask is needed.

* Training (warm start and joint step): cross-entropy on the infill tokens only, teacher-forced (`removed_logits`).
* Reconstruction (evaluation, and the policy's reward by default): **greedy autoregressive decoding** of the infill
  from the prefix (`greedy_infill`, with the KV cache), never teacher-forced: a wrong early guess stays in the
  context of the later ones, as it would in use.
* The teacher-forced per-token argmax conditions each removed token on the *true* earlier removed tokens, so it is
  optimistic; `compression/recovery_teacher_forced` (training) and `recovery_teacher_forced` (evaluation) measure
  how far.
"""

from __future__ import annotations

import torch


SEP_ATTR = "infill_sep_token_id"  # set on the reconstructor's config: marks it as an infilling causal LM


def is_infill(reconstructor) -> bool:
    """Whether `reconstructor` is an infilling causal LM (its config carries the separator id) or a masked LM."""
    return getattr(getattr(reconstructor, "config", None), SEP_ATTR, None) is not None


def gpt2_config(vocab_size: int, seq_len: int, settings, *, sep_id: int, pad_id: int):
    """A GPT-2 configuration from `ReconstructorSettings` (4 x 128 ≈ 0.93M parameters at a 1,024-token vocabulary;
    tied input/output embeddings); `n_positions = seq_len` is enough (see the layout above)."""
    from transformers import GPT2Config

    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=seq_len,
        n_embd=settings.n_embd,
        n_layer=settings.n_layer,
        n_head=settings.n_head,
        n_inner=4 * settings.n_embd,
        resid_pdrop=settings.dropout,
        embd_pdrop=settings.dropout,
        attn_pdrop=settings.dropout,
        bos_token_id=sep_id,
        eos_token_id=sep_id,
        pad_token_id=pad_id,
        tie_word_embeddings=True,
    )
    setattr(config, SEP_ATTR, int(sep_id))
    return config


def check_causal(model, vocab_size: int, seq_len: int) -> None:
    """Refuse a model whose position `i` sees tokens after `i` (e.g. a BERT loaded as `BertLMHeadModel` without
    `is_decoder`): the infill would read the answers. Probe: change the last token; earlier logits must not move."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab_size, (1, min(seq_len, 8)), generator=g)
    other = ids.clone()
    other[0, -1] = (ids[0, -1] + 1) % vocab_size
    was_training = model.training
    model.eval()
    with torch.no_grad():
        a = model(input_ids=ids).logits[0, :-1]
        b = model(input_ids=other).logits[0, :-1]
    model.train(was_training)
    if not torch.allclose(a, b, atol=1e-4):
        raise ValueError(
            f"{type(model).__name__} is not causal (its earlier positions see later tokens), so as an infilling "
            "reconstructor it would read the removed tokens it must predict; use a causal LM (GPT-2, Llama, ...) "
            "or `reconstructor: mlm` with a masked LM"
        )


def infill_inputs(input_ids: torch.Tensor, mask: torch.Tensor, mask_id: int, sep_id: int, pad_id: int = 0):
    """The layout of the module docstring for a batch: `(ids (B, n+K), position_ids (B, n+K), removed (B, K),
    valid (B, K))`, `K` = the most tokens removed from one row (at least 1). `removed[b, j]` is row `b`'s `j`-th
    removed token (`pad_id` beyond its count), `valid` says which are real; `ids[:, n + j]` predicts `removed[:, j]`.
    """
    B, n = input_ids.shape
    k = mask.sum(1)
    K = max(int(k.max()) if B else 0, 1)
    # removed positions first, each row's in increasing order (a stable sort of "kept" flags)
    order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices[:, :K]
    valid = torch.arange(K, device=input_ids.device)[None, :] < k[:, None]
    removed = torch.where(valid, input_ids.gather(1, order), torch.full_like(order, pad_id))
    gap_pos = torch.where(valid, order, torch.zeros_like(order))
    prefix = torch.where(mask, torch.full_like(input_ids, mask_id), input_ids)
    sep = torch.full((B, 1), sep_id, dtype=input_ids.dtype, device=input_ids.device)
    ids = torch.cat([prefix, sep, removed[:, : K - 1]], 1)
    positions = torch.cat([torch.arange(n, device=input_ids.device).expand(B, n), gap_pos], 1)
    return ids, positions, removed, valid


def _sep_id(reconstructor) -> int:
    return int(getattr(reconstructor.config, SEP_ATTR))


def infill_removed_logits(reconstructor, input_ids: torch.Tensor, mask: torch.Tensor, mask_id: int) -> torch.Tensor:
    """Teacher-forced logits `(M, V)` of the `M = mask.sum()` removed tokens, in the order of `input_ids[mask]`;
    the output head runs on the infill positions only."""
    n = input_ids.shape[1]
    head = reconstructor.get_output_embeddings()
    if not mask.any():
        return head.weight.new_zeros(0, head.weight.shape[0]) + 0.0 * head.weight.sum()
    pad = reconstructor.config.pad_token_id if reconstructor.config.pad_token_id is not None else 0
    ids, positions, _, valid = infill_inputs(input_ids, mask, mask_id, _sep_id(reconstructor), pad)
    hidden = reconstructor.base_model(input_ids=ids, position_ids=positions).last_hidden_state[:, n:]
    return head(hidden[valid])


@torch.no_grad()
def greedy_infill(
    reconstructor, input_ids: torch.Tensor, mask: torch.Tensor, mask_id: int, suppress: list[int] | None = None
) -> torch.Tensor:
    """Reconstruction `(B, n)`: kept tokens copied, removed ones decoded greedily left to right from the prefix
    (each from the prefix and the model's *own* earlier infill tokens, with the KV cache); `suppress` ids are never
    predicted (the separator always is)."""
    B, n = input_ids.shape
    if not mask.any():
        return input_ids.clone()
    sep = _sep_id(reconstructor)
    pad = reconstructor.config.pad_token_id if reconstructor.config.pad_token_id is not None else 0
    ids, positions, _, valid = infill_inputs(input_ids, mask, mask_id, sep, pad)
    K = valid.shape[1]
    banned = sorted({sep, *(suppress or [])})
    out = reconstructor(
        input_ids=ids[:, : n + 1], position_ids=positions[:, : n + 1], use_cache=True, logits_to_keep=1
    )
    preds = []
    for j in range(K):
        logits = out.logits[:, -1].float()
        logits[:, banned] = float("-inf")
        token = logits.argmax(-1)
        preds.append(token)
        if j + 1 < K:
            out = reconstructor(
                input_ids=token[:, None],
                position_ids=positions[:, n + 1 + j : n + 2 + j],
                past_key_values=out.past_key_values,
                use_cache=True,
            )
    result = input_ids.clone()
    result[mask] = torch.stack(preds, 1)[valid].to(result.dtype)
    return result
