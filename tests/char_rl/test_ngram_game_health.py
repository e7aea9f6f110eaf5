"""Pure functions of the char game: n-gram tables, rewards/advantages/gradients, health metrics."""

import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from open_r1_ext.char_rl.data import CharCorpus, CharTokenizer
from open_r1_ext.char_rl.game import (
    draw_group,
    game_loss,
    game_rewards,
    get_advantage_norm,
    gradient_rel_error,
    proposal_logp,
    sampled_coefficients,
    teacher_expected_reward,
)
from open_r1_ext.char_rl.health import HealthMonitor, HealthThresholds, expected_calibration_error
from open_r1_ext.char_rl.ngram import NGramModel


# -- n-gram tables ---------------------------------------------------------------------------------------------


def _brute_probs(s: list[int], V: int, k: int, ctx: tuple, alpha: float) -> list[float]:
    """p_k(. | ctx) by the recursive definition, counted with Counter."""
    if k == 1:
        c = Counter(s)
        return [(c[a] + 1) / (len(s) + V) for a in range(V)]
    grams = Counter(tuple(s[i : i + k]) for i in range(len(s) - k + 1))
    lower = _brute_probs(s, V, k - 1, ctx[1:], alpha)
    c = [grams[(*ctx, a)] for a in range(V)]
    return [(c[a] + alpha * lower[a]) / (sum(c) + alpha) for a in range(V)]


def test_ngram_tables_match_brute_force_counts():
    g = torch.Generator().manual_seed(0)
    V = 4
    data = torch.randint(V, (400,), generator=g)
    s = data.tolist()
    model = NGramModel.fit(data, V, order=4, alpha=2.0)
    for k in range(2, 5):
        grams = Counter(tuple(s[i : i + k]) for i in range(len(s) - k + 1))
        for row, packed in enumerate(model.contexts[k].tolist()):
            ctx = tuple((packed // V**j) % V for j in reversed(range(k - 1)))
            assert model.counts[k][row].tolist() == [grams[(*ctx, a)] for a in range(V)]
            assert torch.allclose(model.probs[k][row], torch.tensor(_brute_probs(s, V, k, ctx, 2.0)), atol=1e-6)
        assert model.counts[k].sum() == len(s) - k + 1
    assert torch.allclose(model.probs[4].sum(-1), torch.ones(len(model.contexts[4])))


def test_ngram_lookup_backs_off_inside_the_block():
    data = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    model = NGramModel.fit(data, 4, order=3, alpha=1.0)
    x = torch.tensor([[0, 1, 3]])  # 3 never occurs: position 2 has no seen context of length >= 1
    q = model.lookup(x)
    assert torch.allclose(q[0, 0], model.probs[2][0])  # bigram after "0" (first position: one char of context)
    row = int(torch.searchsorted(model.contexts[3], torch.tensor(0 * 4 + 1)))
    assert torch.allclose(q[0, 1], model.probs[3][row])  # trigram after "01"
    assert torch.allclose(q[0, 2], model.probs[1][0])  # unseen "3": unigram
    assert q[0, 1].argmax() == 2


def test_ngram_leave_one_out_lookup_removes_the_positions_own_count():
    g = torch.Generator().manual_seed(0)
    V, alpha = 3, 2.0
    data = torch.randint(V, (300,), generator=g)
    model = NGramModel.fit(data, V, order=3, alpha=alpha)
    s = data.tolist()
    t = 100
    x, y = data[t - 2 : t + 1][None, :], data[t - 1 : t + 2][None, :]
    q = model.lookup(x, exclude=y)[0, 2]  # context s[t-1], s[t]; target s[t+1]

    def deleted(k, ctx):  # the recursive definition with the occurrence at t+1 taken out of every order
        grams = Counter(tuple(s[i : i + k]) for i in range(len(s) - k + 1))
        grams[tuple(s[t + 2 - k : t + 2])] -= 1
        if k == 1:
            return [(grams[(a,)] + 1) / (len(s) - 1 + V) for a in range(V)]
        lower = deleted(k - 1, ctx[1:])
        c = [grams[(*ctx, a)] for a in range(V)]
        return [(c[a] + alpha * lower[a]) / (sum(c) + alpha) for a in range(V)]

    assert torch.allclose(q, torch.tensor(deleted(3, (s[t - 1], s[t]))), atol=1e-6)
    assert not torch.allclose(q, model.lookup(x)[0, 2])
    once = NGramModel.fit(torch.tensor([0, 1, 2, 1, 0, 0]), 3, order=2, alpha=1.0)  # bigram "2 -> 1" seen once
    q = once.lookup(torch.tensor([[2]]), exclude=torch.tensor([[1]]))[0, 0]
    uni = torch.tensor([3.0, 1.0, 1.0])  # unigram counts minus the excluded "1"
    assert torch.allclose(q, (uni + 1) / (uni.sum() + 3))  # backs off as an unseen context would
    with pytest.raises(ValueError, match="shape of x"):
        once.lookup(torch.tensor([[2, 1]]), exclude=torch.tensor([[1]]))


def test_ngram_score_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OPEN_R1_EXT_CACHE", str(tmp_path))
    data = torch.tensor([0, 1] * 50)
    m = NGramModel.cached(data, 2, 2, 1.0, fingerprint="abc")
    assert NGramModel.cache_path("abc", 2, 2, 1.0).is_file()
    assert NGramModel.cached(data, 2, 2, 1.0, fingerprint="abc") is m
    assert m.score(data, 2)["accuracy"] == 1.0 and m.score(data, 1)["accuracy"] == pytest.approx(0.5, abs=0.02)


def test_char_corpus_split_and_tokenizer(tmp_path):
    c = CharCorpus.from_text("abcdefghij" * 10)
    assert len(c.train) == 90 and len(c.val) == 10 and c.tokenizer.itos == list("abcdefghij")
    c.tokenizer.save_pretrained(tmp_path)
    assert CharTokenizer.from_pretrained(tmp_path).decode(c.val) == "abcdefghij"
    with pytest.raises(ValueError, match="'z' is not in the 10-character vocabulary"):
        c.tokenizer.encode("z")


def test_char_tokenizer_is_the_core_tokenizer():
    """One character tokenizer in the project: the game's ids are core.tiny.char_tokenizer's, less its specials."""
    from open_r1_ext.core.tiny import char_tokenizer

    text = "To be,\n\nor not."
    tok = CharTokenizer.from_text(text)
    core = char_tokenizer("".join(sorted(set(text))))
    assert type(tok.core) is type(core) and tok.core.get_vocab() == core.get_vocab()
    ids = tok.encode(text)
    assert ids.min() == 0 and ids.max() == len(tok) - 1 and tok.decode(ids) == text
    assert core.convert_ids_to_tokens(tok.to_core_ids(ids)) == list(text)  # "\n\n" stays two newlines


# -- rewards, advantages and the gradient they make ------------------------------------------------------------

PI = torch.tensor([0.5, 0.3, 0.2])
Q = torch.tensor([0.2, 0.5, 0.3])


def _one_position(lam=0.5, conf=0.0):
    y = torch.tensor([[0]])
    r = game_rewards(y, Q.view(1, 1, 3), PI.view(1, 1, 3), partial_credit=lam, confidence_bonus=conf)
    return y, r


def test_rewards_hand_made():
    _, r = _one_position(lam=0.5, conf=0.4)
    # correct char 0: 1 + 0.4 * 0.5 + 0.5 * 0.2; others: 0.5 * q
    assert torch.allclose(r[0, 0], torch.tensor([1.3, 0.25, 0.15]))


def test_advantages_hand_made():
    _, r = _one_position(lam=0.5)
    r, w = r[0, 0], PI  # r = [1.1, 0.25, 0.15], rbar = 0.55 + 0.075 + 0.03 = 0.655
    rbar = 0.655
    assert torch.allclose(get_advantage_norm("none")(r, w, PI), r - rbar)
    assert torch.allclose(get_advantage_norm("mean")(r, w, PI), (r - rbar) / rbar)
    std = math.sqrt(float((PI * (r - rbar) ** 2).sum()))
    assert torch.allclose(get_advantage_norm("std")(r, w, PI), (r - rbar) / std)
    assert torch.allclose(get_advantage_norm("target_mean")(r, w, PI), r / PI - 1.5)  # sum(r) = 1.5
    assert float((PI * get_advantage_norm("target_mean")(r, w, PI)).sum()) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="known: .*'target_mean'"):
        get_advantage_norm("nope")


def _logit_grad(norm, lam):
    y, r = _one_position(lam=lam)
    logits = PI.log().view(1, 1, 3).clone().requires_grad_(True)
    loss, metrics = game_loss(logits, logits.detach().log_softmax(-1), r, advantage_norm=norm)
    loss.backward()
    return logits.grad[0, 0], r[0, 0], metrics


def test_exhaustive_gradient_is_cross_entropy_for_exact_match():
    logits = PI.log().view(1, 1, 3).clone().requires_grad_(True)
    F.cross_entropy(logits.view(1, 3), torch.tensor([0])).backward()
    ce_grad = logits.grad[0, 0]
    for norm in ("mean", "target_mean"):
        assert torch.allclose(_logit_grad(norm, 0.0)[0], ce_grad, atol=1e-6)
    assert torch.allclose(_logit_grad("none", 0.0)[0], 0.5 * ce_grad, atol=1e-6)  # scaled by pi(y)
    factor = math.sqrt(0.5 / 0.5)  # std: sqrt(pi(y) / (1 - pi(y)))
    assert torch.allclose(_logit_grad("std", 0.0)[0], factor * ce_grad, atol=1e-5)


def test_target_mean_gradient_is_reward_weighted_likelihood():
    grad, r, metrics = _logit_grad("target_mean", 0.5)
    # minus g_z = -(r - sum(r) pi): the optimum is pi proportional to r
    assert torch.allclose(grad, -(r - r.sum() * PI), atol=1e-6)
    assert metrics["reward_mean"] == pytest.approx(0.655, abs=1e-5)
    assert metrics["clip_ratio"] == 0.0


def test_clipping_acts_on_reused_batches():
    y, r = _one_position(lam=0.0)
    old = PI.log().view(1, 1, 3)
    moved = (PI.log() + torch.tensor([1.0, 0.0, 0.0])).view(1, 1, 3).requires_grad_(True)  # pi(y) ratio >> 1.2
    loss, metrics = game_loss(moved, old, r, advantage_norm="target_mean", epsilon_low=0.2, epsilon_high=0.2)
    loss.backward()
    assert metrics["clip_ratio"] > 0
    assert moved.grad[0, 0, 0] >= 0  # no further push on the clipped correct action


def test_exhaustive_game_is_ce_plus_ngram_distillation():
    """The exhaustive game's gradient is that of (1 + c pi_old(y)) CE + lambda H(q, pi) + beta KL(pi || q): exactly."""
    torch.manual_seed(0)
    B, T, V, lam, conf, beta = 3, 5, 7, 0.4, 0.5, 0.03
    logits = torch.randn(B, T, V, requires_grad=True)
    y = torch.randint(V, (B, T))
    q = torch.randn(B, T, V).softmax(-1)
    old = logits.detach().log_softmax(-1)
    r = game_rewards(y, q, old.exp(), partial_credit=lam, confidence_bonus=conf)
    loss, _ = game_loss(logits, old, r, "target_mean", kl_coef=beta, ref_logp=q.log())
    (g_game,) = torch.autograd.grad(loss, logits)

    twin = logits.detach().clone().requires_grad_(True)
    logp = twin.log_softmax(-1)
    weight = 1.0 + conf * old.exp().gather(-1, y[..., None]).squeeze(-1)
    ce = -(weight * logp.gather(-1, y[..., None]).squeeze(-1)).mean()
    distill = -(q * logp).sum(-1).mean()
    kl = (logp.exp() * (logp - q.log())).sum(-1).mean()
    (g_twin,) = torch.autograd.grad(ce + lam * distill + beta * kl, twin)
    assert torch.allclose(g_game, g_twin, atol=1e-6)


def _position_set(seed=0, n=400, V=6, teacher_noise=0.0):
    """n positions of one vocabulary: targets drawn from a true distribution p, a policy pi and a teacher q."""
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(1, n, V, generator=g).mul(1.5).softmax(-1)
    y = torch.multinomial(p[0], 1, generator=g).view(1, n)
    logits = (p.log() + 0.7 * torch.randn(1, n, V, generator=g)).requires_grad_(True)
    q = (p.log() + teacher_noise * torch.randn(1, n, V, generator=g)).softmax(-1)
    return y, logits, q


@pytest.mark.parametrize(
    "sampler,cv,baseline", [("replacement", False, "none"), ("replacement", True, "loo"), ("priority", True, "none")]
)
def test_sampled_game_is_unbiased_for_the_exhaustive_gradient(sampler, cv, baseline):
    y, logits, q = _position_set(n=3)
    old = logits.detach().log_softmax(-1)
    r = game_rewards(y, q, old.exp(), partial_credit=0.3, confidence_bonus=0.2)
    h = teacher_expected_reward(q, old.exp(), 0.3, 0.2) if cv else None
    exact = torch.autograd.grad(game_loss(logits, old, r)[0], logits)[0]
    reps = 20000  # independent draws of the same 3 positions, as one batch
    big = old.expand(reps, -1, -1).contiguous()
    log_mu = proposal_logp(big, 1.3, q.expand_as(big), 0.4)  # tempered policy mixed with the teacher
    actions, inv = draw_group(log_mu, 3, sampler, generator=torch.Generator().manual_seed(1))
    coef = sampled_coefficients(
        big, r.expand(reps, -1, -1), actions, inv, None if h is None else h.expand_as(big), baseline
    )
    est = (coef - big.exp() * coef.sum(-1, keepdim=True)).mean(0, keepdim=True)  # minus the loss' logit gradient
    g_exact = -exact * exact.shape[1]  # game_loss averages over positions
    assert torch.allclose(est, g_exact, atol=0.03), (est - g_exact).abs().max()


def test_priority_sampling_draws_distinct_actions_and_rejects_k_ge_v():
    old = torch.randn(2, 4, 6).log_softmax(-1)
    actions, inv = draw_group(old, 5, "priority", generator=torch.Generator().manual_seed(0))  # mu = pi_old
    assert all(len(set(row.tolist())) == 5 for row in actions.view(-1, 5)) and (inv >= 1).all()
    with pytest.raises(ValueError, match="group_size < vocabulary"):
        draw_group(old, 6, "priority")
    with pytest.raises(ValueError, match="known: \\['replacement', 'priority'\\]"):
        draw_group(old, 2, "gumbel")


@pytest.mark.parametrize(
    "sampler,lam,most", [("priority", 0.0, 0.8), ("priority", 0.5, 0.6), ("replacement", 0.5, 0.85)]
)
def test_teacher_control_variate_reduces_the_estimators_error(sampler, lam, most):
    """The diagnostic the trainer logs (`game/est_rel_var` vs `_no_cv`), on positions where the policy is far from
    the data and the teacher close to it (early training): the same draws land nearer the exact gradient with the
    teacher's expected reward as control variate; a uniform "teacher" does not help. Leave-one-out is measured too:
    on top of the softmax's own centring (the pi sum(C) term) it adds noise here."""
    g = torch.Generator().manual_seed(0)
    n, V = 4000, 20
    p = torch.randn(1, n, V, generator=g).mul(2.0).softmax(-1)
    y = torch.multinomial(p[0], 1, generator=g).view(1, n)
    old = (0.3 * p.log() + torch.randn(1, n, V, generator=g)).log_softmax(-1)
    q = (p.log() + 0.3 * torch.randn(1, n, V, generator=g)).softmax(-1)
    r = game_rewards(y, q, old.exp(), partial_credit=lam)
    actions, inv = draw_group(old, 4, sampler, generator=torch.Generator().manual_seed(0))

    def err(h, baseline="none"):
        return float(gradient_rel_error(sampled_coefficients(old, r, actions, inv, h, baseline), r, old.exp()))

    teacher = teacher_expected_reward(q, old.exp(), lam)
    assert err(teacher) < most * err(None)
    assert err(torch.full_like(q, 1 / V)) > 0.95 * err(None)
    if sampler == "replacement":
        assert err(teacher, "loo") > err(teacher)
    assert err(r) == pytest.approx(0.0, abs=1e-10)  # the reward itself as control variate: the exact gradient


def test_entropy_and_kl_terms():
    y, r = _one_position(lam=0.0)
    logits = PI.log().view(1, 1, 3)
    base, _ = game_loss(logits, logits, r)
    ent, m = game_loss(logits, logits, r, entropy_coef=0.1)
    h = float(-(PI * PI.log()).sum())
    assert float(base - ent) == pytest.approx(0.1 * h, abs=1e-6) and m["entropy"] == pytest.approx(h, abs=1e-6)
    kl, m = game_loss(logits, logits, r, kl_coef=0.5, ref_logp=Q.log().view(1, 1, 3))
    expected = float((PI * (PI.log() - Q.log())).sum())
    assert m["kl_ngram"] == pytest.approx(expected, abs=1e-6) and float(kl - base) == pytest.approx(0.5 * expected)


# -- health monitor ----------------------------------------------------------------------------------------------


def test_ece_hand_made():
    conf = torch.tensor([0.9, 0.9, 0.1, 0.1])
    correct = torch.tensor([1, 0, 0, 0])
    # bin 0.9: accuracy 0.5, confidence 0.9 -> 0.4 * 2/4; bin 0.1: accuracy 0, confidence 0.1 -> 0.1 * 2/4
    assert expected_calibration_error(conf, correct) == pytest.approx(0.25)
    assert expected_calibration_error(torch.tensor([1.0, 0.5]), torch.tensor([1, 1])) == pytest.approx(0.25)


def test_confidence_collapse_and_gradient_warnings(caplog):
    mon = HealthMonitor(HealthThresholds(window=10, overconfidence_warn=0.1))
    y = torch.zeros(100, dtype=torch.long)
    for i in range(10):  # max-prob climbs 0.4 -> 0.95 while the model is right half the time
        p = 0.4 + 0.06 * i
        probs = torch.tensor([[p, 1 - p]] * 50 + [[1 - p, p]] * 50)
        m = mon.observe_predictions(probs, y)
    assert m["health/accuracy"] == pytest.approx(0.5)
    assert m["health/confidence_collapse"] == 1.0
    assert m["health/overconfidence"] == pytest.approx(0.94 - 0.5, abs=1e-6)
    assert mon.warnings["confidence_collapse"] >= 1 and mon.warnings["overconfidence"] >= 1
    assert any("confidence collapse" in r.message for r in caplog.records)
    for _ in range(12):
        g = mon.observe_grad_norm(1.0)
    assert "grad_spike" not in mon.warnings
    assert g["health/grad_norm_cv"] == 0.0 and g["health/grad_spike"] == 1.0
    g = mon.observe_grad_norm(50.0)
    assert g["health/grad_spike"] == pytest.approx(50.0) and mon.warnings["grad_spike"] == 1
    state = mon.state_dict()
    other = HealthMonitor()
    other.load_state_dict(state)
    assert other.state_dict() == state


def test_healthy_model_raises_no_collapse():
    mon = HealthMonitor(HealthThresholds(window=10))
    y = torch.zeros(100, dtype=torch.long)
    for i in range(10):  # confidence and accuracy rise together
        acc = 0.4 + 0.05 * i
        n = int(acc * 100)
        probs = torch.tensor([[acc, 1 - acc]] * n + [[1 - acc, acc]] * (100 - n))
        m = mon.observe_predictions(probs, y)
    assert m["health/confidence_collapse"] == 0.0 and "confidence_collapse" not in mon.warnings


def test_underconfident_sharpening_on_a_plateau_is_not_collapse():
    """What plain CE does from random weights: max-probability climbs toward an accuracy it trails, on a plateau.
    The seed's rule (confidence up, accuracy flat) and an ECE threshold both flagged it; it is not overconfidence."""
    mon = HealthMonitor(HealthThresholds(window=10))
    y = torch.zeros(100, dtype=torch.long)
    for i in range(30):
        p = 0.12 + 0.012 * i  # max-probability 0.12 -> 0.47 while the model is right 60 % of the time
        rest = (1 - p) / 9
        right = [p] + [rest] * 9
        wrong = [rest, p] + [rest] * 8
        m = mon.observe_predictions(torch.tensor([right] * 60 + [wrong] * 40), y)
    assert m["health/ece"] > 0.1 and m["health/overconfidence"] < 0
    assert m["health/confidence_collapse"] == 0.0 and not mon.warnings
