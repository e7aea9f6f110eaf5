"""Policy size, masks, credit assignment, the learned rate (rate-only and λ -> ∞ runs), the warm start, the
reconstructor, evaluator numbers, baselines, resume."""

import json
from pathlib import Path

import pytest
import torch
from compression_testutils import tiny_args

from open_r1_ext.compression.baselines import BASELINES, baseline_mask, constant_prediction, reconstructor_surprisal
from open_r1_ext.compression.evaluation import (
    SimilarityScorer,
    evaluate_model,
    headline_group,
    measure_speedup,
    plot_rate_distortion,
    reconstruct,
    sequence_metrics,
    summarize,
    verdict,
)
from open_r1_ext.compression.models import (
    CompressionModel,
    KeepMaskPolicy,
    PolicySettings,
    ReconstructorSettings,
    build_reconstructor,
    count_parameters,
    fill_gaps,
    kept_tokens,
    num_to_mask,
    reconstruction_logits,
    removed_logits,
    sample_bernoulli,
    sample_topk,
    topk_mask,
)
from open_r1_ext.compression.trainer import (
    CompressionConfig,
    CompressionTrainer,
    rate_distortion_reward,
    token_advantages,
    token_terms,
    windowed_sum,
)


KINDS = ["gpt2_infill", "mlm"]
MASK_ID, SEP_ID, PAD_ID = 1, 2, 0  # the ids the synthetic tests use (real data: <pad>=0, <mask>=1, <sep>=2 too)


def _rec(kind, vocab, n, n_layer=1, n_embd=16, n_head=2):
    settings = ReconstructorSettings(n_layer=n_layer, n_embd=n_embd, n_head=n_head)
    return build_reconstructor(vocab, n, settings, kind=kind, sep_id=SEP_ID, pad_id=PAD_ID)


def test_default_policy_has_about_one_million_parameters():
    n = count_parameters(KeepMaskPolicy(PolicySettings(vocab_size=CompressionConfig.vocab_size)))
    assert 0.8e6 <= n <= 1.2e6, n


def test_default_reconstructor_is_a_one_million_parameter_gpt2():
    from transformers import GPT2LMHeadModel

    args = CompressionConfig(output_dir="unused", use_cpu=True)
    assert args.reconstructor == "gpt2_infill" and args.reward_decoding == "greedy"
    settings = ReconstructorSettings(n_layer=args.recon_n_layer, n_embd=args.recon_n_embd, n_head=args.recon_n_head)
    rec = build_reconstructor(args.vocab_size, args.seq_len, settings, kind=args.reconstructor, sep_id=2, pad_id=0)
    assert type(rec) is GPT2LMHeadModel and rec.config.n_layer == 4 and rec.config.n_embd == 128
    assert 0.8e6 <= count_parameters(rec) <= 1.2e6, count_parameters(rec)


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.4, 0.6, 1.0])
def test_sampled_and_greedy_masks_respect_the_ratio(ratio):
    torch.manual_seed(0)
    scores = torch.randn(8, 64, requires_grad=True)
    k = num_to_mask(64, ratio)
    mask, logp = sample_topk(scores, k)
    assert (mask.sum(1) == k).all()
    assert (topk_mask(scores.detach(), k).sum(1) == k).all()
    assert torch.isfinite(logp).all() and (logp <= 1e-5).all()
    logp.sum().backward()  # the policy gradient reaches the scores
    assert scores.grad is not None and (k == 0 or scores.grad.abs().sum() > 0)


def test_plackett_luce_logp_matches_enumeration():
    # n=3, k=2: P(ordered (i, j)) = e^si / Z * e^sj / (Z - e^si)
    s = torch.tensor([[0.5, -1.0, 2.0]])
    torch.manual_seed(1)
    mask, logp = sample_topk(s, 2)
    # recover the sampled order from the Gumbel draw by recomputing it with the same seed
    torch.manual_seed(1)
    u = torch.rand(s.shape).clamp(1e-9, 1 - 1e-9)
    order = (s - torch.log(-torch.log(u))).argsort(descending=True)[0]
    i, j = order[:2].tolist()
    e = s[0].exp()
    expected = torch.log(e[i] / e.sum() * e[j] / (e.sum() - e[i]))
    assert torch.allclose(logp[0], expected, atol=1e-5)
    assert mask[0, i] and mask[0, j] and mask.sum() == 2


def test_bernoulli_policy_ratio_follows_scores():
    torch.manual_seed(0)
    for p in (0.1, 0.5, 0.8):
        mask, logp = sample_bernoulli(torch.full((64, 64), torch.logit(torch.tensor(p)).item()))
        assert abs(mask.float().mean().item() - p) < 0.03
        expected = torch.where(mask, torch.tensor(p).log(), torch.tensor(1 - p).log())
        assert logp.shape == (64, 64) and torch.allclose(logp, expected, atol=1e-5)


def test_topk_mask_takes_a_count_per_row():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.3], [0.4, 0.2, 0.8, 0.6]])
    mask = topk_mask(scores, torch.tensor([1, 3]))
    assert mask.tolist() == [[False, True, False, False], [True, False, True, True]]


def test_reward_terms_sum_to_rate_minus_lambda_distortion():
    mask = torch.tensor([[True, False, True, True], [False, False, False, False]])
    dist = torch.tensor([[0.5, 9.0, 0.0, 2.0], [1.0, 1.0, 1.0, 1.0]])
    rate, d, reward = rate_distortion_reward(mask, dist, 2.0)
    assert rate.tolist() == [0.75, 0.0] and d.tolist() == [pytest.approx(2.5 / 4), 0.0]
    assert torch.allclose(token_terms(mask, dist, 2.0).sum(1), reward)
    # a removed token pays only when its distortion is below 1/λ
    assert token_terms(mask, dist, 2.0)[0].tolist() == [0.0, 0.0, 0.25, -0.75]


def test_windowed_sum_and_leave_one_out_advantages():
    terms = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
    assert windowed_sum(terms, 0).tolist() == terms.tolist()
    assert windowed_sum(terms, 1).tolist() == [[3.0, 6.0, 9.0, 12.0, 9.0]]
    assert windowed_sum(terms, -1).tolist() == [[15.0] * 5]
    # two masks of one sequence: only position 0 differs, so only position 0 (and its window) gets credit
    terms = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    adv = token_advantages(terms, group_size=2, window=1)
    assert adv[0, 0] > 0 and adv[1, 0] < 0 and adv[0, 1] > 0
    assert adv[:, 2:].abs().max() == 0  # outside the window nothing is credited
    assert torch.allclose(adv[0], -adv[1])
    # whole-sequence credit: every decision of a mask shares its sequence advantage
    whole = token_advantages(terms, group_size=2, window=-1)
    assert torch.allclose(whole[0], whole[0, :1].expand(4)) and whole[0, 0] > 0


def _pairs_batch(g, size=32):
    """Sequences of duplicated pairs (a a b b ...) with one member of each pair hidden, at random."""
    x = torch.randint(3, 40, (size, 8), generator=g).repeat_interleave(2, 1)
    left = torch.rand(size, 8, generator=g) < 0.5
    return x, torch.stack([left, ~left], 2).reshape(size, 16)


def _train(rec, logits_fn, steps=200, lr=3e-3):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(rec.parameters(), lr=lr)
    for _ in range(steps):
        x, mask = _pairs_batch(g)
        loss = torch.nn.functional.cross_entropy(logits_fn(rec, x, mask), x[mask])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return rec.eval()


@pytest.mark.parametrize("kind", KINDS)
def test_reconstructor_fills_gaps_from_both_sides(kind):
    """Sequences of duplicated pairs (a a b b ...) with one member of each pair hidden: the left member is only
    recoverable from its right neighbour and the right one only from its left neighbour. The same GPT-2 trained as a
    left-to-right model on the gap-marked sequence (each gap predicted from what precedes it, the seed's layout)
    recovers the right members but not the left ones (chance: 1 in 37); the reconstructor recovers both, decoded
    (greedy infill for the GPT-2, not teacher-forced)."""
    torch.manual_seed(0)
    rec = _train(_rec(kind, 40, 16, n_embd=32), lambda r, x, m: removed_logits(r, x, m, MASK_ID))
    x, mask = _pairs_batch(torch.Generator().manual_seed(1), 128)
    left_members = mask.clone()
    left_members[:, 1::2] = False
    hit = (fill_gaps(rec, x, mask, MASK_ID, [MASK_ID, PAD_ID]) == x) & mask
    assert hit[left_members].float().mean() > 0.4  # recovered from the right
    assert hit[mask & ~left_members].float().mean() > 0.4  # recovered from the left
    if kind == "mlm":  # removed_logits is the same computation as the full pass, at the removed positions only
        with torch.no_grad():
            full = reconstruction_logits(rec, x, mask, MASK_ID)
            assert torch.allclose(removed_logits(rec, x, mask, MASK_ID), full[mask], atol=1e-5)
        return

    def left_to_right(r, x, m):  # logits at i - 1 predict the gap at i: only the left context is visible
        masked = torch.where(m, torch.full_like(x, MASK_ID), x)
        bos = torch.full((len(x), 1), SEP_ID)
        return r(input_ids=torch.cat([bos, masked[:, :-1]], 1)).logits[m]

    torch.manual_seed(0)
    causal = _train(_rec(kind, 40, 17, n_embd=32), left_to_right)
    with torch.no_grad():
        lr_hit = torch.zeros_like(mask)
        lr_hit[mask] = left_to_right(causal, x, mask).argmax(-1) == x[mask]
    assert lr_hit[mask & ~left_members].float().mean() > 0.4  # it did learn: right members from their left
    assert lr_hit[left_members].float().mean() < 0.12  # but the left members need the right side


def test_infill_layout_and_padding():
    """Prefix = gap-marked sequence, then <sep>, then the removed tokens in order; each infill input carries its
    gap's position. A row's teacher-forced logits do not depend on the other rows' (longer) infills."""
    from open_r1_ext.compression.infill import infill_inputs

    x = torch.tensor([[10, 11, 12, 13, 14], [20, 21, 22, 23, 24]])
    mask = torch.tensor([[False, True, False, True, True], [True, False, False, False, False]])
    ids, pos, removed, valid = infill_inputs(x, mask, MASK_ID, SEP_ID, PAD_ID)
    assert ids.tolist() == [[10, 1, 12, 1, 1, 2, 11, 13], [1, 21, 22, 23, 24, 2, 20, 0]]  # the infill, shifted
    assert pos.tolist() == [[0, 1, 2, 3, 4, 1, 3, 4], [0, 1, 2, 3, 4, 0, 0, 0]]
    assert removed.tolist() == [[11, 13, 14], [20, 0, 0]] and valid.tolist() == [[True] * 3, [True, False, False]]
    torch.manual_seed(0)
    rec = _rec("gpt2_infill", 40, 5).eval()
    with torch.no_grad():
        both = removed_logits(rec, x, mask, MASK_ID)
        alone = torch.cat([removed_logits(rec, x[i : i + 1], mask[i : i + 1], MASK_ID) for i in range(2)])
    assert both.shape == (4, 40) and torch.allclose(both, alone, atol=1e-5)


def test_greedy_infill_decodes_from_its_own_guesses():
    """Greedy decoding feeds back its own predictions (not the true tokens): teacher-forcing the *decoded* infill
    reproduces every decoded token as the argmax, the cached decoding equals a decoding that recomputes the whole
    sequence at every step, and teacher-forcing the *true* infill gives different argmaxes on an untrained model."""
    from open_r1_ext.compression.infill import infill_inputs

    torch.manual_seed(0)
    rec = _rec("gpt2_infill", 40, 16, n_embd=32).eval()
    x = torch.randint(3, 40, (6, 16))
    mask = torch.rand(6, 16) < 0.5
    mask[0] = False  # a row with nothing removed
    mask[1] = True  # a row with everything removed
    banned = [MASK_ID, PAD_ID, SEP_ID]
    dec = fill_gaps(rec, x, mask, MASK_ID, [MASK_ID, PAD_ID])
    assert torch.equal(dec[~mask], x[~mask]) and not torch.isin(dec[mask], torch.tensor(banned)).any()
    with torch.no_grad():
        tf = removed_logits(rec, dec, mask, MASK_ID)
        tf[:, banned] = float("-inf")
        assert torch.equal(tf.argmax(-1), dec[mask])
        true_tf = removed_logits(rec, x, mask, MASK_ID)
        true_tf[:, banned] = float("-inf")
        assert not torch.equal(true_tf.argmax(-1), dec[mask])
        # reference decoding without the KV cache: recompute the full layout at every step
        ids, pos, removed, valid = infill_inputs(x, mask, MASK_ID, SEP_ID, PAD_ID)
        n, K = 16, valid.shape[1]
        seq, preds = ids[:, : n + 1], []
        for j in range(K):
            logits = rec(input_ids=seq, position_ids=pos[:, : n + 1 + j]).logits[:, -1]
            logits[:, banned] = float("-inf")
            preds.append(logits.argmax(-1))
            seq = torch.cat([seq, preds[-1][:, None]], 1)
    assert torch.equal(torch.stack(preds, 1)[valid], dec[mask])


def test_evaluator_hand_made_cases():
    x = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    none = torch.zeros_like(x, dtype=torch.bool)
    m = sequence_metrics(x, x.clone(), none)
    assert m["ratio"] == [0.0, 0.0] and m["accuracy"] == [1.0, 1.0]
    everything = torch.ones_like(x, dtype=torch.bool)
    wrong = torch.zeros_like(x)
    m = sequence_metrics(x, wrong, everything)
    assert m["ratio"] == [1.0, 1.0] and m["accuracy"] == [0.0, 0.0] and m["recovery"] == [0.0, 0.0]
    half = torch.tensor([[True, True, False, False], [False, False, False, False]])
    rec = torch.tensor([[5, 0, 7, 8], [9, 10, 11, 12]])
    m = sequence_metrics(x, rec, half)
    assert m["ratio"] == [0.5, 0.0] and m["accuracy"] == [0.75, 1.0] and m["recovery"][0] == 0.5
    assert m["removed"] == [2, 0]
    assert m["recovery"][1] != m["recovery"][1]  # NaN: nothing removed
    assert kept_tokens(x, half)[0].tolist() == [7, 8]
    assert SimilarityScorer("bow")(["a b c"], ["a b c"]) == [pytest.approx(1.0)]


def _tiny_model(tok, n=16, kind="gpt2_infill"):
    settings = ReconstructorSettings(n_layer=1, n_embd=16, n_head=2)
    rec = build_reconstructor(
        len(tok), n, settings, kind=kind, sep_id=tok.sep_token_id, pad_id=tok.pad_token_id
    ).eval()
    policy = KeepMaskPolicy(PolicySettings(vocab_size=len(tok), hidden_size=8, num_layers=1))
    return CompressionModel(policy, rec, mask_id=tok.mask_token_id, pad_id=tok.pad_token_id, seq_len=n)


@pytest.mark.parametrize(("kind", "steps"), [("gpt2_infill", 1), ("mlm", 1), ("mlm", 3)])
def test_reconstruct_copies_kept_tokens_and_fills_every_gap(tiny_data, kind, steps):
    from open_r1_ext.compression.data import load_split, load_tokenizer

    tok = load_tokenizer(tiny_data)
    x = load_split(tiny_data, "test")[:4]
    model = _tiny_model(tok, kind=kind)
    none = torch.zeros_like(x, dtype=torch.bool)
    assert torch.equal(reconstruct(model.reconstructor, x, none, tok.mask_token_id, steps=steps), x)
    torch.manual_seed(0)
    mask = torch.rand(x.shape) < 0.5
    rec = reconstruct(model.reconstructor, x, mask, tok.mask_token_id, suppress=[tok.mask_token_id], steps=steps)
    assert torch.equal(rec[~mask], x[~mask]) and not (rec == tok.mask_token_id).any()


@pytest.mark.parametrize("kind", KINDS)
def test_evaluation_matches_the_policy_count_on_every_sequence(tiny_data, kind):
    from open_r1_ext.compression.data import load_split, load_tokenizer

    tok = load_tokenizer(tiny_data)
    x = load_split(tiny_data, "test")[:6]
    model = _tiny_model(tok, kind=kind)
    model.token_freq.copy_(torch.arange(len(tok), dtype=torch.float))
    # a zero-initialised head scores 0 everywhere: `score > 0` removes nothing, and similarity is exactly 1
    res = evaluate_model(model, x, tok, scorer=SimilarityScorer("bow"))
    assert res["policy"]["ratio"] == [0.0] * 6 and res["policy"]["accuracy"] == [1.0] * 6
    assert res["policy"]["similarity"] == [pytest.approx(1.0)] * 6
    # a head that removes tokens by id parity: a different count on each sequence, matched by every baseline
    with torch.no_grad():
        model.policy.embed.weight.zero_()
        model.policy.embed.weight[::2, 0] = 1.0
        for conv in model.policy.convs:
            conv.weight.zero_()
            conv.bias.zero_()
        model.policy.norms[0].weight.fill_(1.0)
        model.policy.head.weight.zero_()
        model.policy.head.weight[0, 0] = 1.0
        model.policy.head.bias.fill_(-0.1)
    masks = {}
    res = evaluate_model(model, x, tok, masks=masks, decode_steps=2)
    removed = res["policy"]["removed"]
    assert len(set(removed)) > 1, removed
    assert masks["policy"].sum(1).tolist() == removed
    assert torch.equal(masks["policy"], x % 2 == 0)
    for method in ("random", "frequency", "surprisal", "constant"):
        assert res[method]["removed"] == removed, method
        assert res[method]["ratio"] == res["policy"]["ratio"]
    # constant removes what frequency removes; its recovery is the share of the mode token among them
    assert torch.equal(masks["constant"], masks["frequency"])
    mode = int(model.token_freq.argmax())
    share = [
        ((r == mode) & m).sum().item() / m.sum().item() if m.any() else None for r, m in zip(x, masks["constant"])
    ]
    for got, want in zip(res["constant"]["recovery"], share):
        assert (want is None and got != got) or got == pytest.approx(want)
    # the teacher-forced diagnostic is the argmax of removed_logits, sequence by sequence
    pm = masks["policy"]
    with torch.no_grad():
        logits = removed_logits(model.reconstructor, x, pm, model.mask_id)
        logits[:, [model.mask_id, model.pad_id]] = float("-inf")
    hits = torch.zeros_like(pm)
    hits[pm] = logits.argmax(-1) == x[pm]
    for i, got in enumerate(res["policy"]["recovery_teacher_forced"]):
        want = hits[i].sum().item() / pm[i].sum().item() if pm[i].any() else None
        assert (want is None and got != got) or got == pytest.approx(want)
    assert all(v != v for v in res["constant"]["recovery_teacher_forced"])  # NaN: no reconstructor


def test_constant_prediction_fills_the_mode():
    x = torch.tensor([[4, 5, 6]])
    freq = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 9.0])
    assert constant_prediction(x, torch.tensor([[True, False, True]]), freq).tolist() == [[7, 5, 7]]


def test_speedup_is_measured_on_the_compressed_sequences(tiny_data):
    from open_r1_ext.compression.data import load_split, load_tokenizer

    tok = load_tokenizer(tiny_data)
    x = load_split(tiny_data, "test")[:8]
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[:4, :8] = True  # half the sequences lose half their tokens
    out = measure_speedup(_tiny_model(tok), x, mask, repeats=1)
    assert out["mean_kept_tokens"] == pytest.approx(12.0) and out["length_ratio"] == pytest.approx(16 / 12)
    assert out["t_full_s"] > 0 and out["t_compressed_s"] > 0 and out["t_policy_s"] > 0
    assert out["speedup_with_policy"] < out["speedup_model_only"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(BASELINES))
@pytest.mark.parametrize("k", [4, 8, [1, 2, 3, 5, 8, 13]])
def test_each_baseline_hits_its_count(name, k, kind):
    torch.manual_seed(0)
    x = torch.randint(3, 50, (6, 16))
    rec = _rec(kind, 50, 16).eval()
    k = torch.tensor(k) if isinstance(k, list) else k
    mask = baseline_mask(name, x, k, token_freq=torch.arange(50.0), reconstructor=rec, mask_id=1)
    assert (mask.sum(1) == k).all()


@pytest.mark.parametrize("kind", KINDS)
def test_frequency_and_surprisal_pick_the_right_tokens(kind):
    x = torch.tensor([[10, 3, 10, 4, 5, 10]])
    freq = torch.zeros(20)
    freq[10] = 100.0
    assert baseline_mask("frequency", x, 3, token_freq=freq)[0].tolist() == [True, False, True, False, False, True]
    torch.manual_seed(0)
    rec = _rec(kind, 20, 6).eval()
    s = reconstructor_surprisal(rec, x, MASK_ID, stride=6)  # stride = n: each token scored with all others visible
    for i in range(6):
        hide = torch.zeros_like(x, dtype=torch.bool)
        hide[0, i] = True
        with torch.no_grad():
            if kind == "mlm":
                logits = reconstruction_logits(rec, x, hide, MASK_ID)[0, i : i + 1]
            else:  # the infill of one gap: the gap-marked prefix, <sep>, then the token, at the gap's position
                ids = torch.cat([torch.where(hide, MASK_ID, x), torch.tensor([[SEP_ID]])], 1)
                pos = torch.tensor([[0, 1, 2, 3, 4, 5, i]])
                logits = rec(input_ids=ids, position_ids=pos).logits[0, -1:]
        expected = torch.nn.functional.cross_entropy(logits, x[0, i : i + 1])
        assert s[0, i].item() == pytest.approx(expected.item(), abs=1e-5)
    if kind == "gpt2_infill":  # with stride 2, a hidden token is also conditioned on the pass's earlier hidden ones
        s2 = reconstructor_surprisal(rec, x, MASK_ID, stride=2)
        hide = torch.tensor([[False, True, False, True, False, True]])
        with torch.no_grad():
            want = torch.nn.functional.cross_entropy(removed_logits(rec, x, hide, MASK_ID), x[hide], reduction="none")
        assert torch.allclose(s2[hide], want, atol=1e-5)
    mask = baseline_mask("surprisal", x, 2, reconstructor=rec, mask_id=MASK_ID)
    lowest = reconstructor_surprisal(rec, x, MASK_ID)[0].topk(2, largest=False).indices.tolist()
    assert set(mask[0].nonzero().flatten().tolist()) == set(lowest)
    with pytest.raises(ValueError, match="known baselines"):
        baseline_mask("entropy", x, 2)


def _trainer(tmp_path, tiny_data, **kw):
    args = tiny_args(tmp_path, tiny_data, **kw)
    built = CompressionTrainer.build_model_and_data(None, args, None)
    return CompressionTrainer(
        model=built["model"],
        args=args,
        train_dataset=built["dataset"]["train"],
        processing_class=built["processing_class"],
    )


def _greedy_ratio(trainer, tiny_data) -> float:
    from open_r1_ext.compression.data import load_split

    x = load_split(tiny_data, "train")[:32]
    with torch.no_grad():
        return (trainer.model.policy(x) > 0).float().mean().item()


def _ratios(trainer) -> list[float]:
    return [h["compression/ratio"] for h in trainer.state.log_history if "compression/ratio" in h]


FAST_POLICY = dict(policy_learning_rate=3e-2, learning_rate=1e-3, max_steps=20, logging_steps=1, baseline_rows=False)


def test_policy_rewarded_only_for_rate_learns_to_drop_more(tmp_path, tiny_data):
    """λ = 0: the reward is the rate alone, so the measured ratio must climb from the initial 0.3."""
    torch.manual_seed(0)
    trainer = _trainer(tmp_path, tiny_data, distortion_lambda=0.0, policy_init_ratio=0.3, **FAST_POLICY)
    assert _greedy_ratio(trainer, tiny_data) == 0.0  # every score starts below 0: the greedy policy keeps everything
    recon_before = [p.clone() for p in trainer.model.reconstructor.parameters()]
    trainer.train()
    ratios = _ratios(trainer)
    assert abs(ratios[0] - 0.3) < 0.1, ratios
    assert sum(ratios[-3:]) / 3 > 0.75, ratios
    assert _greedy_ratio(trainer, tiny_data) > 0.9
    assert any(not torch.equal(a, b) for a, b in zip(recon_before, trainer.model.reconstructor.parameters()))
    assert int(trainer.model.steps_seen) == 20


@pytest.mark.parametrize("distortion", ["nll", "error"])
def test_policy_at_huge_lambda_keeps_everything(tmp_path, tiny_data, distortion):
    """λ -> ∞: any removed token the reconstructor cannot recover costs far more than the rate pays; starting from a
    policy that removes 70 % of tokens (all of them greedily), it must learn to keep everything."""
    torch.manual_seed(0)
    # 30 steps, not FAST_POLICY's 20: the greedy-decoded reward of the infilling GPT-2 (the default) recovers a few
    # removed tokens of the tiny repetitive corpus early on, so the last scores cross 0 a few steps later
    trainer = _trainer(
        tmp_path,
        tiny_data,
        distortion_lambda=1e4,
        distortion=distortion,
        policy_init_ratio=0.7,
        **{**FAST_POLICY, "max_steps": 30},
    )
    assert _greedy_ratio(trainer, tiny_data) == 1.0
    trainer.train()
    ratios = _ratios(trainer)
    assert abs(ratios[0] - 0.7) < 0.1 and sum(ratios[-3:]) / 3 < 0.2, ratios
    assert _greedy_ratio(trainer, tiny_data) < 0.02


def test_logged_ratio_is_measured_from_the_policy(tmp_path, tiny_data):
    """The logged ratio follows the policy's probabilities, whatever `target_ratio` says (ignored when learned)."""
    for p in (0.15, 0.85):
        torch.manual_seed(0)
        trainer = _trainer(
            tmp_path,
            tiny_data,
            max_steps=1,
            logging_steps=1,
            policy_learning_rate=0.0,
            target_ratio=0.4,
            explore_floor=0.0,
        )
        trainer.model.policy.head.bias.data.fill_(torch.logit(torch.tensor(p)).item())
        trainer.train()
        entry = next(h for h in trainer.state.log_history if "compression/ratio" in h)
        assert abs(entry["compression/ratio"] - p) < 0.1, (p, entry)
        assert entry["compression/ratio_greedy"] == (1.0 if p > 0.5 else 0.0)
        assert entry["compression/remove_prob"] == pytest.approx(p, abs=1e-4)


@pytest.mark.parametrize("reward_decoding", ["greedy", "teacher_forced"])
def test_reward_counts_the_decoded_reconstruction(tmp_path, tiny_data, monkeypatch, reward_decoding):
    """`reward_decoding: greedy` rewards what the greedy infill really recovers, not the teacher-forced argmax: with
    the decoder replaced by one that is always right, the greedy reward sees no distortion while the teacher-forced
    reading of the (untrained) reconstructor stays low; `teacher_forced` ignores the decoder."""
    from open_r1_ext.compression import trainer as trainer_module

    def oracle(reconstructor, input_ids, mask, mask_id, suppress=None, steps=1):
        return input_ids.clone()

    monkeypatch.setattr(trainer_module, "fill_gaps", oracle)
    torch.manual_seed(0)
    t = _trainer(
        tmp_path, tiny_data, max_steps=1, logging_steps=1, reward_decoding=reward_decoding, policy_init_ratio=0.5
    )
    t.train()
    entry = next(h for h in t.state.log_history if "compression/recovery" in h)
    assert entry["compression/recovery_teacher_forced"] < 0.5
    if reward_decoding == "greedy":
        assert entry["compression/recovery"] == 1.0 and entry["compression/distortion"] == 0.0
        assert entry["reward"] == pytest.approx(entry["compression/ratio"], abs=1e-6)
    else:
        assert entry["compression/recovery"] == entry["compression/recovery_teacher_forced"]
        assert entry["compression/distortion"] > 0


def test_semantic_term_joins_the_reward_and_every_decision(tmp_path, tiny_data):
    """`semantic_weight` μ: reward = rate - λ·distortion + μ·(similarity - 1), the similarity of each sampled mask's
    decoded reconstruction (bag-of-tokens here, MiniLM in the recipes); as a sequence-level term it shifts every
    decision of a mask by the same leave-one-out amount."""
    terms = torch.zeros(2, 4)
    adv = token_advantages(terms, group_size=2, window=1, sequence_terms=torch.tensor([0.0, -1.0]))
    assert torch.allclose(adv[0], adv[0, :1].expand(4)) and adv[0, 0] > 0 and torch.allclose(adv[0], -adv[1])
    torch.manual_seed(0)
    t = _trainer(
        tmp_path,
        tiny_data,
        max_steps=1,
        logging_steps=1,
        semantic_weight=0.5,
        similarity_model="bow",
        policy_init_ratio=0.5,
        distortion_lambda=2.0,
    )
    assert t.model.objective["semantic_weight"] == 0.5
    t.train()
    entry = next(h for h in t.state.log_history if "compression/semantic_similarity" in h)
    sim = entry["compression/semantic_similarity"]
    assert 0.0 < sim < 1.0  # half the tokens removed by an untrained reconstructor: not a copy, not disjoint
    want = entry["compression/ratio"] - 2.0 * entry["compression/distortion"] + 0.5 * (sim - 1.0)
    assert entry["reward"] == pytest.approx(want, abs=1e-5)
    with pytest.raises(ValueError, match="-1.0"):
        CompressionConfig(output_dir=str(tmp_path), semantic_weight=-1.0, use_cpu=True)


def test_fixed_count_mode_removes_exactly_its_count(tmp_path, tiny_data):
    torch.manual_seed(0)
    trainer = _trainer(tmp_path, tiny_data, ratio_control="fixed", target_ratio=0.25, max_steps=2, logging_steps=1)
    trainer.train()
    assert _ratios(trainer) == [pytest.approx(4 / 16)] * 2
    assert trainer.model.objective["ratio_control"] == "fixed"


@pytest.mark.parametrize("kind", KINDS)
def test_warm_start_is_cached_and_reports_validation_loss(tmp_path, tiny_data, monkeypatch, kind):
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    from open_r1_ext.compression import warmstart

    monkeypatch.setenv("OPEN_R1_EXT_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    args = tiny_args(
        tmp_path, tiny_data, recon_warm_start_steps=30, recon_warm_start_batch_size=16, reconstructor=kind
    )
    built = CompressionTrainer.build_model_and_data(None, args, None)
    info = built["model"].warm_start
    assert Path(info["path"]).parent == tmp_path / "cache" / "compression"
    assert Path(info["path"]).name.startswith(kind.replace("_", "-"))
    assert info["val_loss"] > 0 and 0.0 <= info["val_recovery_at_0.4"] <= 1.0
    assert 0.0 <= info["val_recovery_at_0.4_decoded"] <= 1.0
    # validation loss well below the same reconstructor untrained, on the same masks
    from open_r1_ext.compression.data import load_split

    tok = built["processing_class"]
    fresh = build_reconstructor(
        300, 16, ReconstructorSettings(n_layer=2, n_embd=32, n_head=2), kind=kind, sep_id=tok.sep_token_id
    )
    settings = warmstart.WarmStartSettings(vocab_size=300, seq_len=16)
    val = load_split(tiny_data, "validation")[:1024]
    assert info["val_loss"] < warmstart.masked_lm_loss(fresh, val, tok.mask_token_id, None, settings)[0] - 0.5
    auto = AutoModelForCausalLM if kind == "gpt2_infill" else AutoModelForMaskedLM
    cached = auto.from_pretrained(info["path"])
    assert type(cached) is type(built["model"].reconstructor)
    for (k, a), b in zip(cached.state_dict().items(), built["model"].reconstructor.state_dict().values()):
        assert torch.equal(a, b), k  # the model starts from the warm-started weights

    def fail(*a, **k):
        raise AssertionError("the second build must load the cache, not train")

    with monkeypatch.context() as m:
        m.setattr(warmstart, "train_warm_start", fail)
        again = CompressionTrainer.build_model_and_data(None, args, None)
    assert again["model"].warm_start["path"] == info["path"]
    other = tiny_args(tmp_path, tiny_data, recon_warm_start_steps=2, recon_warm_start_batch_size=4, reconstructor=kind)
    assert CompressionTrainer.build_model_and_data(None, other, None)["model"].warm_start["path"] != info["path"]
    trainer = CompressionTrainer(model=built["model"], args=args, processing_class=tok)
    results = trainer.summary_results()
    assert results["compression/warm_start_val_loss"] == info["val_loss"]
    assert results["compression/warm_start_val_recovery_at_0.4_decoded"] == info["val_recovery_at_0.4_decoded"]


def test_warm_start_key_depends_on_the_reconstructor_kind():
    from open_r1_ext.compression.warmstart import WarmStartSettings

    gpt2, mlm = WarmStartSettings(1024, 64), WarmStartSettings(1024, 64, kind="mlm")
    assert gpt2.kind == "gpt2_infill" and gpt2.key() != mlm.key()
    assert gpt2.key().startswith("gpt2-infill-") and mlm.key().startswith("mlm-")


def test_greedy_infill_trains_an_infilling_lm(tiny_data):
    """The warm start's loop trains the infilling GPT-2: the teacher-forced validation NLL falls by over a nat, the
    greedy-decoded recovery at 40 % masking rises from nothing (0.08 measured after 150 steps on this tiny corpus),
    and the teacher-forced argmax, which is given the true earlier removed tokens, reads at least as high."""
    from open_r1_ext.compression import warmstart
    from open_r1_ext.compression.data import load_split, load_tokenizer

    tok = load_tokenizer(tiny_data)
    torch.manual_seed(0)
    rec = build_reconstructor(
        len(tok), 16, ReconstructorSettings(n_layer=2, n_embd=32, n_head=2), kind="gpt2_infill",
        sep_id=tok.sep_token_id, pad_id=tok.pad_token_id,
    )  # fmt: skip
    val = load_split(tiny_data, "validation")[:256]
    suppress = [tok.mask_token_id, tok.pad_token_id]
    settings = warmstart.WarmStartSettings(len(tok), 16, steps=150, batch_size=32, lr=3e-3)
    nll_before = warmstart.masked_lm_loss(rec, val, tok.mask_token_id, 0.4, settings)[0]
    before = warmstart.decoded_recovery(rec, val, tok.mask_token_id, 0.4, suppress)
    warmstart.train_warm_start(rec, load_split(tiny_data, "train"), tok.mask_token_id, settings, log=lambda m: None)
    after = warmstart.decoded_recovery(rec, val, tok.mask_token_id, 0.4, suppress)
    nll_after, teacher_forced = warmstart.masked_lm_loss(rec, val, tok.mask_token_id, 0.4, settings)
    assert nll_after < nll_before - 1.0, (nll_before, nll_after)
    assert after > before + 0.05, (before, after)
    assert teacher_forced >= after, (teacher_forced, after)


def test_resume_restores_policy_reconstructor_optimizer_and_state(tmp_path, tiny_data):
    torch.manual_seed(0)
    trainer = _trainer(tmp_path, tiny_data, max_steps=4, save_strategy="steps", save_steps=2)
    trainer.train()
    ckpt = Path(trainer.args.output_dir) / "checkpoint-2"
    assert (ckpt / "model.safetensors").exists() and (ckpt / "optimizer.pt").exists()
    assert (ckpt / "compression_model.json").exists()

    saved = CompressionModel.from_folder(ckpt)
    assert int(saved.steps_seen) == 2 and saved.token_freq.sum() > 0

    torch.manual_seed(0)
    resumed = _trainer(tmp_path, tiny_data, max_steps=4, save_strategy="no")
    # check what resume loads, before any further step: wrap _load_optimizer_and_scheduler
    seen = {}
    original = resumed._load_optimizer_and_scheduler

    def spy(checkpoint):
        original(checkpoint)
        seen["steps_seen"] = int(resumed.model.steps_seen)
        seen["policy"] = {k: v.clone() for k, v in resumed.model.policy.state_dict().items()}
        seen["recon"] = {k: v.clone() for k, v in resumed.model.reconstructor.state_dict().items()}
        seen["opt_steps"] = [s["step"].item() for s in resumed.optimizer.state_dict()["state"].values()]
        seen["lrs"] = [g["lr"] for g in resumed.optimizer.param_groups]

    resumed._load_optimizer_and_scheduler = spy
    resumed.train(resume_from_checkpoint=str(ckpt))
    assert seen["steps_seen"] == 2
    for k, v in saved.policy.state_dict().items():
        assert torch.equal(seen["policy"][k], v), k
    for k, v in saved.reconstructor.state_dict().items():
        assert torch.equal(seen["recon"][k], v), k
    assert seen["opt_steps"] and all(s == 2 for s in seen["opt_steps"])
    assert len(seen["lrs"]) == 2  # policy and reconstructor groups
    assert saved.objective["ratio_control"] == "learned" and saved.objective["distortion_lambda"] == 1.25
    assert resumed.state.global_step == 4 and int(resumed.model.steps_seen) == 4
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["global_step"] == 2


def test_config_validation_quotes_bad_values(tmp_path):
    with pytest.raises(ValueError, match="'sometimes'"):
        CompressionConfig(output_dir=str(tmp_path), ratio_control="sometimes", use_cpu=True)
    with pytest.raises(ValueError, match="1.5"):
        CompressionConfig(output_dir=str(tmp_path), target_ratio=1.5, use_cpu=True)
    with pytest.raises(ValueError, match="-1.0"):
        CompressionConfig(output_dir=str(tmp_path), distortion_lambda=-1.0, use_cpu=True)
    with pytest.raises(ValueError, match="-3"):
        CompressionConfig(output_dir=str(tmp_path), credit_window=-3, use_cpu=True)
    with pytest.raises(ValueError, match="'bert'"):
        CompressionConfig(output_dir=str(tmp_path), reconstructor="bert", use_cpu=True)
    with pytest.raises(ValueError, match="'sampled'"):
        CompressionConfig(output_dir=str(tmp_path), reward_decoding="sampled", use_cpu=True)


def test_trainer_refuses_reward_funcs(tmp_path, tiny_data):
    args = tiny_args(tmp_path, tiny_data)
    built = CompressionTrainer.build_model_and_data(None, args, None)
    with pytest.raises(ValueError, match="reward_funcs: \\[\\]"):
        CompressionTrainer(model=built["model"], reward_funcs=[lambda **k: 0], args=args)


def _fake_runs(policy_rec, freq_rec, ratio=0.4, seeds=3, n=40):
    runs = []
    for seed in range(seeds):
        g = torch.Generator().manual_seed(seed)
        run = {}
        for m, base in (("policy", policy_rec), ("frequency", freq_rec), ("random", 0.1)):
            rec = (base + 0.05 * torch.rand(n, generator=g)).tolist()
            run[m] = {
                "ratio": [ratio] * n,
                "recovery": rec,
                "similarity": rec,
                "accuracy": [(1 - ratio) + ratio * r for r in rec],
                "similarity_kept": [0.5] * n,
            }
        runs.append(run)
    return runs


def test_summary_intervals_and_verdict():
    s = summarize(_fake_runs(0.6, 0.3))
    t = s["tests_vs_policy"]["frequency"]["recovery"]
    assert t["diff"] == pytest.approx(0.3, abs=0.03) and t["ci95"][0] > 0.25 and t["n"] == 120
    assert s["methods"]["policy"]["ratio"]["mean"] == pytest.approx(0.4)
    v = verdict(s)
    assert v["recovery_target_met_mean"] and v["recovery_target_met_interval"] and v["similarity_above_every_baseline"]
    v = verdict(summarize(_fake_runs(0.4, 0.3)))  # 10 points over frequency: short of the 15-point target
    assert not v["recovery_target_met_mean"] and v["similarity_above_every_baseline"]
    v = verdict(summarize(_fake_runs(0.3, 0.3)))
    assert not v["similarity_above_every_baseline"]


def test_headline_group_is_the_least_compression_at_or_above_035_and_plot(tmp_path):
    groups = {}
    for lam, ratio in ((1.0, 0.55), (2.0, 0.38), (4.0, 0.2)):
        s = summarize(_fake_runs(0.6, 0.3, ratio=ratio))
        groups[f"λ={lam}"] = {"objective": {"ratio_control": "learned", "distortion_lambda": lam}, "summary": s}
    assert headline_group(groups) == "λ=2.0"
    assert headline_group(groups, min_ratio=0.6) is None
    plot_rate_distortion(groups, tmp_path / "rd.png")
    assert (tmp_path / "rd.png").read_bytes()[:4] == b"\x89PNG"


def _pretrained_setup(tmp_path, tiny_data):
    from open_r1_ext.compression.data import load_tokenizer

    tok = load_tokenizer(tiny_data)
    plays = tmp_path / "plays"
    plays.mkdir(exist_ok=True)
    for name, line in (("a", "To be, or not to be, that is the question. "), ("b", "Whether 'tis nobler. ")):
        (plays / f"{name}.txt").write_text(line * 40)
        (plays / f"{name}2.txt").write_text(line * 30)  # four plays: one test, one validation, two train
    return tok, plays


def test_pretrained_masked_lm_from_a_local_folder(tmp_path, tiny_data):
    """`reconstructor: mlm` + `model_name_or_path` = a local masked-LM folder: its tokenizer prepares the data, its
    weights are loaded; a causal LM folder is refused with a message that says why, and so is a masked-LM folder
    given to the (default) infilling reconstructor."""
    from types import SimpleNamespace

    from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel

    tok, plays = _pretrained_setup(tmp_path, tiny_data)
    folder = tmp_path / "bert"
    config = BertConfig(
        vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    bert = BertForMaskedLM(config)
    bert.save_pretrained(folder)
    tok.save_pretrained(folder)
    args = tiny_args(tmp_path, tmp_path / "pretrained_data", reconstructor="mlm")
    args.texts_folder = str(plays)
    built = CompressionTrainer.build_model_and_data(None, args, SimpleNamespace(model_name_or_path=str(folder)))
    rec = built["model"].reconstructor
    assert torch.equal(rec.bert.embeddings.word_embeddings.weight, bert.bert.embeddings.word_embeddings.weight)
    assert len(built["processing_class"]) == len(tok) and built["model"].warm_start is None
    gpt2 = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=32, n_embd=16, n_layer=1, n_head=2)).save_pretrained(
        gpt2
    )
    with pytest.raises(ValueError, match="not a masked language model"):
        build_reconstructor(len(tok), 16, ReconstructorSettings(), pretrained=str(gpt2), kind="mlm")
    with pytest.raises(ValueError, match="is a masked language model, not a causal LM"):
        build_reconstructor(
            len(tok), 16, ReconstructorSettings(), pretrained=str(folder), kind="gpt2_infill", sep_id=2
        )


def test_pretrained_causal_lm_from_a_local_folder(tmp_path, tiny_data):
    """`model_name_or_path` = a local GPT-2 folder for the (default) infilling reconstructor: its tokenizer prepares
    the data, its weights are loaded (embeddings resized to the added <mask>/<sep>), a joint step runs, the model
    saves and reloads; a model that is not causal (BERT loaded as a decoder without `is_decoder`) is refused."""
    from types import SimpleNamespace

    from transformers import BertConfig, BertLMHeadModel, GPT2Config, GPT2LMHeadModel

    tok, plays = _pretrained_setup(tmp_path, tiny_data)
    folder = tmp_path / "gpt2"
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=32, n_embd=16, n_layer=1, n_head=2))
    gpt2.save_pretrained(folder)
    tok.save_pretrained(folder)
    args = tiny_args(tmp_path, tmp_path / "pretrained_data", max_steps=1, logging_steps=1)
    args.texts_folder = str(plays)
    built = CompressionTrainer.build_model_and_data(None, args, SimpleNamespace(model_name_or_path=str(folder)))
    rec = built["model"].reconstructor
    assert type(rec) is GPT2LMHeadModel and built["model"].warm_start is None
    assert torch.equal(rec.transformer.h[0].attn.c_attn.weight, gpt2.transformer.h[0].attn.c_attn.weight)
    assert rec.config.infill_sep_token_id == built["processing_class"].sep_token_id
    trainer = CompressionTrainer(
        model=built["model"],
        args=args,
        train_dataset=built["dataset"]["train"],
        processing_class=built["processing_class"],
    )
    trainer.train()
    assert any("compression/recovery" in h for h in trainer.state.log_history)
    trainer.save_model()
    again = CompressionModel.from_folder(args.output_dir)
    assert type(again.reconstructor) is GPT2LMHeadModel
    for k, v in trainer.model.reconstructor.state_dict().items():
        assert torch.equal(again.reconstructor.state_dict()[k], v), k
    bert = tmp_path / "bert_decoder"
    config = BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    BertLMHeadModel(config).save_pretrained(bert)
    with pytest.raises(ValueError, match="is not causal"):
        build_reconstructor(len(tok), 16, ReconstructorSettings(), pretrained=str(bert), kind="gpt2_infill", sep_id=2)


@pytest.mark.parametrize("label_names", [None, ["input_ids"]])
def test_evaluate_logs_the_objective_under_eval_keys(tmp_path, tiny_data, label_names):
    """`evaluate()` scores the joint objective on the eval split and logs it as `eval_*`, never under training keys
    (with `label_names` set, `Trainer` already went through `compute_loss`; without, it only ran the policy)."""
    from open_r1_ext.compression.data import to_dataset_dict

    torch.manual_seed(0)
    args = tiny_args(tmp_path, tiny_data, per_device_eval_batch_size=4, label_names=label_names, ratio_control="fixed")
    built = CompressionTrainer.build_model_and_data(None, args, None)
    trainer = CompressionTrainer(
        model=built["model"],
        args=args,
        train_dataset=built["dataset"]["train"],
        eval_dataset=to_dataset_dict(tiny_data)["validation"],
        processing_class=built["processing_class"],
    )
    metrics = trainer.evaluate()
    entry = trainer.state.log_history[-1]
    assert "eval_loss" in metrics
    for key in ("reward", "compression/ratio", "compression/distortion", "losses/reconstruction"):
        assert f"eval_{key}" in entry, (key, sorted(entry))
        assert key not in entry, (key, sorted(entry))
    assert entry["eval_compression/ratio"] == pytest.approx(num_to_mask(16, 0.4) / 16)
    assert int(trainer.model.steps_seen) == 0  # evaluation is not a joint training step


def test_log_averages_without_nan_and_prefixes_eval(tmp_path, tiny_data):
    trainer = _trainer(tmp_path, tiny_data)
    trainer.model.train()
    trainer._metrics["train"]["reward"] += [1.0, float("nan"), 3.0]
    trainer._metrics["train"]["compression/ratio"] += [float("nan")]
    trainer.log({})
    assert trainer.state.log_history[-1]["reward"] == pytest.approx(2.0)
    assert trainer.state.log_history[-1]["compression/ratio"] is None  # no valid value: None, not NaN
    trainer.model.eval()
    trainer._metrics["eval"]["reward"] += [0.5]
    trainer.log({"eval_loss": 1.0})
    entry = trainer.state.log_history[-1]
    assert entry["eval_loss"] == 1.0 and entry["eval_reward"] == 0.5 and "reward" not in entry
    assert not trainer._metrics["train"] and not trainer._metrics["eval"]


def test_args_default_to_compression_config(tmp_path, tiny_data, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default output_dir is relative
    built = CompressionTrainer.build_model_and_data(None, tiny_args(tmp_path, tiny_data), None)
    trainer = CompressionTrainer(model=built["model"])
    assert type(trainer.args) is CompressionConfig and trainer.args.output_dir == "runs/compression"
    assert CompressionTrainer._name == "Compression"
    with pytest.raises(TypeError, match="needs a CompressionConfig"):
        CompressionTrainer(model=built["model"], args=tiny_args(tmp_path, tiny_data).to_dict())
