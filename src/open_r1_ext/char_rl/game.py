"""Language modelling as a game: rewards, group advantages and the loss, for every position at once.

State = the preceding characters of the block, action = the next character, group = all V characters
(`exhaustive`, the seed's design) or K characters drawn from the policy (`sampled`, the reinforcement-learning
version). The model runs once on a `(B, T)` block; every one of the `B*T` positions is a separate game, so a step
costs one forward and one backward, like a cross-entropy step.

What the exhaustive game is: cross-entropy plus n-gram distillation
--------------------------------------------------------------------
With every action scored there is nothing left to explore: the expected policy gradient is computed exactly, and
under the default `advantage_norm: target_mean` it is, term for term, the gradient of a supervised loss,

    grad game = grad [ (1 + c_t pi_old(y)) CE(pi, y) + lambda_t H(q, pi) + beta KL(pi || q) - entropy_coef H(pi) ],

i.e. **cross-entropy (weighted by the confidence bonus) plus distillation from the n-gram table q** (the
exact-expectation limit of the game). `test_exhaustive_game_is_ce_plus_ngram_distillation` checks the identity
on random logits. So "exhaustive game / CE twin = 1.00" is true by construction, not a finding; the game can only
differ from CE through its n-gram terms. PPO clipping never acts at `num_iterations: 1` (pi = pi_old).

The sampled game is the RL version: at each position K actions are drawn, and only their rewards are read (bandit
feedback). `sampled_coefficients` estimates the same gradient without bias from those K rewards, with variance
reductions: the **n-gram teacher's expected reward** h(a) = E_{y~q}[r(a)] as an action-dependent control variate
(its exact expectation sum_a h(a) grad log pi(a) is added back, which is the distillation gradient; the K samples
then only correct the teacher's error r - h), and a **leave-one-out baseline** (each sample's baseline is the
other K-1 samples' mean, as in RLOO), and teacher-guided exploration: actions are drawn from
mu = (1 - m) pi_old^(1/T) + m q (`sample_teacher_mix` m), importance-weighted back. Sampling is with replacement
or, with `sampler: priority`, K distinct actions by Gumbel-top-K with the priority-sampling inclusion weights
(unbiased, Duffield et al. 2007; Kool et al. 2019). `game/est_rel_var*` log how far the estimate is from the
exact gradient, with and without the control variate and the baseline, on the same samples: the diagnostic that
shows each one acts (or, for the baseline, that it does not).

Which gradient each advantage normalisation computes (exhaustive group)
-----------------------------------------------------------------------
With logits z, policy pi = softmax(z), a reward r(a) for every action and advantages A(a) = (r(a) - rbar) / s
where rbar = sum_a pi(a) r(a) (the policy's expected reward, the group baseline) and s a normaliser held
constant, the expected policy gradient over the whole group is

    g = sum_a pi(a) A(a) grad log pi(a) = (1/s) grad_z E_pi[r],   and w.r.t. the logits  g_z(a) = pi(a) A(a).

For the exact-match reward r(a) = 1[a = y], E_pi[r] = pi(y), so g = (1/s) grad pi(y) = (pi(y)/s) grad log pi(y):
**cross-entropy's gradient scaled by pi(y)/s**. That factor decides everything:

- `none` (s = 1): the gradient of expected accuracy pi(y). It vanishes where the model is wrong (pi(y) small) and
  the maximiser of E_ctx[pi(y|ctx)] is the deterministic argmax policy, so the per-context distribution
  collapses onto one character and validation CE diverges (infinite loss on every miss).
- `std` (s = std_pi(r) = sqrt(pi(y)(1 - pi(y))), GRPO's group-std scaling with policy weights): the factor is
  sqrt(pi(y)/(1 - pi(y))), which *grows without bound* as pi(y) -> 1, so confident predictions are pushed
  hardest: the collapse measured beside the project (34.8 % top-1, 6.7 nats/char after 2,000 steps).
- `mean` (s = rbar): the factor is exactly 1, g = grad log pi(y), **cross-entropy's gradient**. In general
  g = grad log E_pi[r], the log of the expected reward. With partial credit in r that objective is linear in pi
  inside the log, so it still drives each context toward the argmax of the n-gram.
- `target_mean` (the default): read the reward table as a sum of exact-match games against targets,
  r(a) = sum_t T(t) 1[a = t], and normalise each target's game by its own expected reward pi(t). Then
  A(a) = r(a) / pi(a) - sum_b r(b) and

      g = sum_a r(a) grad log pi(a),   g_z = r - (sum_b r(b)) pi,

  a reward-weighted log-likelihood whose optimum is pi proportional to E[r | context]: a proper scoring rule
  for any non-negative reward. For exact match alone it equals `mean` and cross-entropy.

The reward terms (`game_rewards`) under `target_mean`:

- exact match 1[a = y]: cross-entropy's gradient, as above.
- partial credit lambda_t q(a), q = the n-gram distribution (bigram by default, up to 6-gram): the n-gram plays
  the ground truth with probability q, so it adds lambda_t x the gradient of H(q, pi), **distillation from the
  n-gram**; the optimum is the mixture (p_data + lambda_t q) / (1 + lambda_t), never the n-gram's argmax.
  lambda_t decays linearly over `guidance_decay_steps` or, with `guidance_schedule: adaptive`, with the gap
  between the model's and the teacher's cross-entropy on the training batch (0 once the model overtakes it).
  On training positions q is the leave-one-out table (`ngram_leave_one_out`): the counts of the very position
  being scored are removed, so the teacher does not hand the model its own label.
- confidence bonus c_t pi_old(y) on the correct action ("confident and correct"), c_t ramping from 0 to c over
  `confidence_ramp_steps` (the seed's scaling schedule): it weights the exact-match term by (1 + c_t pi(y)),
  leaning on positions the model already gets right. It sharpens the optimum a little (pi proportional to
  p (1 + c pi)), so c stays small; the health monitor's calibration metrics show what it costs.
- entropy bonus and beta KL(pi || q) toward the n-gram reference are added to the loss as usual.

PPO-style clipping against the previous policy uses the surrogate sum_a min(rho(a) C(a), clip(rho(a), 1 - eps,
1 + eps_high) C(a)) with rho = pi / pi_old and C(a) the weight of log pi(a) in the gradient (pi_old(a) A(a) for the
exhaustive group, `sampled_coefficients` for the sampled one); its gradient at rho = 1 is g above. Clipping only
acts when a batch is reused (`num_iterations > 1`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


# -- advantage normalisation registry (exhaustive group): fn(rewards, weights, probs) -> advantages, all (..., V).
# `weights` sum to 1 over the group (pi_old); `probs` is pi_old of each group member.
ADVANTAGE_NORMS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {}
_EPS = 1e-8


def register_advantage_norm(name: str):
    def deco(fn):
        ADVANTAGE_NORMS[name] = fn
        return fn

    return deco


def get_advantage_norm(name: str):
    if name not in ADVANTAGE_NORMS:
        raise ValueError(f"Unknown advantage_norm {name!r}; known: {sorted(ADVANTAGE_NORMS)}")
    return ADVANTAGE_NORMS[name]


def _baseline(rewards: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (weights * rewards).sum(-1, keepdim=True)


@register_advantage_norm("target_mean")
def target_mean_normalised(rewards, weights, probs):
    """A(a) = r(a) / pi(a) - sum_b r(b): every target's exact-match game normalised by its own expected reward.

    Gradient sum_a r(a) grad log pi(a), optimum pi proportional to E[r | context] (cross-entropy's for exact
    match). The sampled game estimates this gradient with `sampled_coefficients`.
    """
    ratio = rewards / probs.clamp_min(_EPS)
    return ratio - _baseline(ratio, weights)


@register_advantage_norm("mean")
def mean_normalised(rewards, weights, probs):
    """A = (r - rbar) / rbar: gradient grad log E_pi[r] (cross-entropy's for exact match alone)."""
    rbar = _baseline(rewards, weights)
    return (rewards - rbar) / (rbar + _EPS)


@register_advantage_norm("std")
def std_normalised(rewards, weights, probs):
    """A = (r - rbar) / std_pi(r): GRPO's scaling with policy weights; weights confident predictions most."""
    rbar = _baseline(rewards, weights)
    std = (weights * (rewards - rbar) ** 2).sum(-1, keepdim=True).sqrt()
    return (rewards - rbar) / (std + _EPS)


@register_advantage_norm("none")
def centred(rewards, weights, probs):
    """A = r - rbar: the gradient of expected reward (pi(y) x cross-entropy's for exact match)."""
    return rewards - _baseline(rewards, weights)


def game_rewards(
    y: torch.Tensor,
    q: torch.Tensor | None,
    old_probs: torch.Tensor,
    partial_credit: float = 0.0,
    confidence_bonus: float = 0.0,
) -> torch.Tensor:
    """Reward of every action at every position.

    y: `(B, T)` targets; q: `(B, T, V)` n-gram distributions (None when `partial_credit` is 0); old_probs:
    `(B, T, V)` the policy that played (no gradient). Returns `(B, T, V)`:
    r(a) = 1[a = y] (1 + confidence_bonus * pi_old(y)) + partial_credit * q(a).
    """
    exact = F.one_hot(y, old_probs.shape[-1]).to(old_probs.dtype)
    r = exact * (1.0 + confidence_bonus * old_probs.gather(-1, y[..., None]))
    if partial_credit:
        r = r + partial_credit * q
    return r


def teacher_expected_reward(
    q: torch.Tensor, old_probs: torch.Tensor, partial_credit: float = 0.0, confidence_bonus: float = 0.0
) -> torch.Tensor:
    """h(a) = E_{y~q}[r(a)]: the reward the n-gram teacher expects action a to earn, for every action.

    q, old_probs: `(B, T, V)`. With r(a) = 1[a = y] (1 + c pi_old(y)) + lambda q(a) (`game_rewards`),
    h(a) = q(a) (1 + c pi_old(a)) + lambda q(a). Known for all V actions without reading the target: the control
    variate of the sampled game.
    """
    return q * (1.0 + confidence_bonus * old_probs + partial_credit)


SAMPLERS = ("replacement", "priority")


def proposal_logp(
    old_logp: torch.Tensor, temperature: float = 1.0, teacher: torch.Tensor | None = None, teacher_mix: float = 0.0
) -> torch.Tensor:
    """log mu of the sampling distribution mu = (1 - teacher_mix) softmax(log pi_old / temperature) + teacher_mix q.

    old_logp, teacher (q): `(B, T, V)`. Mixing in the n-gram teacher is guided exploration: the characters the
    teacher expects are drawn more often, so the target is in the group more often and its importance weight
    1 / mu stays small. Any mu > 0 keeps the estimate unbiased (the weights correct for it).
    """
    log_mu = (old_logp.float() / temperature).log_softmax(-1)
    if teacher is None or teacher_mix <= 0:
        return log_mu
    return ((1.0 - teacher_mix) * log_mu.exp() + teacher_mix * teacher.float()).clamp_min(1e-30).log()


def draw_group(log_mu: torch.Tensor, k: int, sampler: str = "replacement", generator=None):
    """K actions per position from mu, and the weight that makes each unbiased.

    log_mu: `(B, T, V)` log-probabilities of the sampling distribution (`proposal_logp`). Returns `actions`
    `(B, T, K)` and `inv` `(B, T, K)` such that for any f, sum_k inv_k f(a_k) is an unbiased estimate of
    sum_a f(a):

    - `replacement`: K i.i.d. draws, inv = 1 / (K mu(a_k)).
    - `priority`: K distinct actions, the top K of log mu(a) + Gumbel noise; with tau the (K+1)-th largest key,
      a is kept with probability p(a) = 1 - exp(-exp(log mu(a) - tau)) given tau, and inv = 1 / p(a) (priority
      sampling: Duffield, Lund & Thorup 2007; Kool, van Hoof & Welling 2019). Needs K < V.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler!r}; known: {list(SAMPLERS)}")
    log_mu = log_mu.float()
    V = log_mu.shape[-1]
    if sampler == "replacement":
        actions = torch.multinomial(log_mu.exp().reshape(-1, V), k, replacement=True, generator=generator)
        actions = actions.view(*log_mu.shape[:-1], k)
        inv = (-log_mu.gather(-1, actions)).exp() / k
        return actions, inv
    if k >= V:
        raise ValueError(f"priority sampling needs group_size < vocabulary size, got {k} >= {V}")
    u = torch.rand(log_mu.shape, generator=generator, device=log_mu.device).clamp(1e-20, 1.0 - 1e-7)
    keys = log_mu - (-u.log()).log()  # log mu + Gumbel(0, 1)
    top = keys.topk(k + 1, dim=-1)
    actions, tau = top.indices[..., :k], top.values[..., k:]
    p_keep = -torch.expm1(-(log_mu.gather(-1, actions) - tau).exp())
    return actions, 1.0 / p_keep.clamp_min(1e-12)


def sampled_coefficients(
    old_logp: torch.Tensor,
    rewards: torch.Tensor,
    actions: torch.Tensor,
    inv: torch.Tensor,
    control: torch.Tensor | None = None,
    baseline: str = "none",
) -> torch.Tensor:
    """Weights C(a) of log pi(a) in the sampled game's gradient, an unbiased estimate of the exhaustive one.

    The exhaustive (`target_mean`) gradient is sum_a r(a) grad log pi(a). From K sampled actions and their rewards
    only, with the control variate h (`control`, `(B, T, V)`, None for none) and a baseline b_k:

        C = h + sum_k inv_k [r(a_k) - h(a_k) - b_k pi_old(a_k)] e_{a_k}

    Unbiased because E[sum_k inv_k f(a_k)] = sum_a f(a) and sum_a pi(a) grad log pi(a) = 0. `baseline`:
    `loo` (with-replacement draws only: b_k = mean over the other K-1 samples of (r - h)(a_j) / mu(a_j), the
    estimate of sum_a (r - h)(a) that leaves sample k out, as RLOO does) or `none`. old_logp, rewards: `(B, T, V)`;
    actions, inv: `(B, T, K)` from `draw_group`. Reads `rewards` at the sampled actions only. Returns `(B, T, V)`.
    """
    if baseline not in ("loo", "none"):
        raise ValueError(f"Unknown sampled baseline {baseline!r}; known: ['loo', 'none']")
    r = rewards.float().gather(-1, actions)
    h = control.float().gather(-1, actions) if control is not None else torch.zeros_like(r)
    w = inv * (r - h)
    k = actions.shape[-1]
    if baseline == "loo" and k > 1:
        # per-sample estimates v_j = (r - h)(a_j) / mu(a_j) = K w_j under with-replacement draws
        v = w * k
        b = (v.sum(-1, keepdim=True) - v) / (k - 1)
        w = w - inv * b * old_logp.float().gather(-1, actions).exp()
    coef = control.float().clone() if control is not None else torch.zeros_like(rewards, dtype=torch.float32)
    return coef.scatter_add_(-1, actions, w)


def gradient_rel_error(coef: torch.Tensor, exact: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """sum ||g_hat - g||^2 / sum ||g||^2 of the logit gradients g = C - pi sum(C), over all positions.

    coef, exact (the exhaustive weights, i.e. the rewards), probs: `(B, T, V)`. 0 means the exact gradient.
    """
    g_hat = coef - probs * coef.sum(-1, keepdim=True)
    g = exact - probs * exact.sum(-1, keepdim=True)
    return ((g_hat - g) ** 2).sum() / (g**2).sum().clamp_min(1e-30)


def game_loss(
    logits: torch.Tensor,
    old_logp: torch.Tensor,
    rewards: torch.Tensor,
    advantage_norm: str = "target_mean",
    epsilon_low: float = 0.2,
    epsilon_high: float = 0.2,
    entropy_coef: float = 0.0,
    kl_coef: float = 0.0,
    ref_logp: torch.Tensor | None = None,
    coef: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped policy-gradient loss, mean over positions, plus entropy bonus and KL toward the reference.

    logits, old_logp, rewards, ref_logp: `(B, T, V)`. Exhaustive when `coef` is None: the group is all V actions,
    weighted by pi_old, with `advantage_norm`'s advantages (C = pi_old A). Sampled: `coef` `(B, T, V)` from
    `sampled_coefficients` (the advantage normalisation is then `target_mean`'s by construction). Returns the loss
    and detached metrics.
    """
    logp = logits.float().log_softmax(-1)
    old_logp = old_logp.float()
    old_probs = old_logp.exp()
    if coef is None:
        adv = get_advantage_norm(advantage_norm)(rewards, old_probs, old_probs).detach()
        coef = old_probs * adv
    else:
        coef = coef.detach()
        adv = None
    ratio = (logp - old_logp).exp()
    clipped = ratio.clamp(1.0 - epsilon_low, 1.0 + epsilon_high)
    surrogate = torch.minimum(ratio * coef, clipped * coef)
    pg_loss = -surrogate.sum(-1).mean()

    probs = logp.exp()
    entropy = -(probs * logp).sum(-1)
    loss = pg_loss - entropy_coef * entropy.mean()
    kl = None
    if ref_logp is not None:
        kl = (probs * (logp - ref_logp)).sum(-1)
        loss = loss + kl_coef * kl.mean()

    with torch.no_grad():
        rbar = (old_probs * rewards).sum(-1)
        is_clipped = ((ratio < 1 - epsilon_low) & (coef < 0)) | ((ratio > 1 + epsilon_high) & (coef > 0))
        metrics = {
            "reward_mean": rbar.mean(),
            "reward_std": (old_probs * (rewards - rbar[..., None]) ** 2).sum(-1).sqrt().mean(),
            "coef_abs": coef.abs().sum(-1).mean(),
            # share of the gradient's weight whose ratio the clip holds back
            "clip_ratio": (coef.abs() * is_clipped.float()).sum(-1).mean()
            / coef.abs().sum(-1).mean().clamp_min(1e-30),
            "pg_loss": pg_loss.detach(),
            "entropy": entropy.mean(),
        }
        if adv is not None:
            metrics["advantage_abs"] = (old_probs * adv.abs()).sum(-1).mean()
        if kl is not None:
            metrics["kl_ngram"] = kl.mean()
    return loss, metrics
