"""Pure functions of the char game: n-gram tables, rewards/advantages/gradients, health metrics."""

import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from open_r1_ext.char_rl.data import CharCorpus, CharTokenizer
from open_r1_ext.char_rl.game import game_loss, game_rewards, get_advantage_norm, sample_group
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


def test_sampled_group_estimates_the_exhaustive_gradient():
    torch.manual_seed(0)
    logits = torch.randn(5).expand(1, 2000, 5).contiguous()  # one state, 2000 independent groups of 16 samples
    y = torch.zeros(1, 2000, dtype=torch.long)
    old = logits.log_softmax(-1)
    r = game_rewards(y, None, old.exp())
    actions, weights = sample_group(old, 16, 0.7, 1.5)
    assert actions.shape == (1, 2000, 16) and torch.allclose(weights.sum(-1), torch.ones(1, 2000))
    lg = logits.clone().requires_grad_(True)
    game_loss(lg, old, r, actions=actions, weights=weights)[0].backward()
    exact = logits.clone().requires_grad_(True)
    game_loss(exact, old, r)[0].backward()
    sampled_mean, exact_mean = lg.grad.mean((0, 1)), exact.grad.mean((0, 1))
    assert F.cosine_similarity(sampled_mean, exact_mean, dim=0) > 0.98


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
    mon = HealthMonitor(HealthThresholds(window=10, ece_warn=0.1))
    y = torch.zeros(100, dtype=torch.long)
    for i in range(10):  # max-prob climbs 0.4 -> 0.95 while the model is right half the time
        p = 0.4 + 0.06 * i
        probs = torch.tensor([[p, 1 - p]] * 50 + [[1 - p, p]] * 50)
        m = mon.observe_predictions(probs, y)
    assert m["health/accuracy"] == pytest.approx(0.5)
    assert m["health/confidence_collapse"] == 1.0
    assert m["health/overconfidence"] == pytest.approx(0.94 - 0.5, abs=1e-6)
    assert mon.warnings["confidence_collapse"] >= 1 and mon.warnings["ece"] >= 1
    assert any("confidence collapse" in r.message for r in caplog.records)
    for _ in range(12):
        g = mon.observe_grad_norm(1.0)
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
