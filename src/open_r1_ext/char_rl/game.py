"""Language modelling as a game: rewards, group advantages and the clipped loss, for every position at once.

State = the preceding characters of the block, action = the next character, group = all V characters
(`exhaustive`, the seed's design) or K characters sampled at temperatures spread over `[t_min, t_max]`
(`sampled`). The model runs once on a `(B, T)` block; every one of the `B*T` positions is a separate game whose
group is scored from tables already in memory (the target and the n-gram distribution), so a step costs one
forward and one backward, like a cross-entropy step.

Which gradient the exhaustive form computes
-------------------------------------------
With logits z, policy pi = softmax(z), a reward r(a) for every action and advantages A(a) = (r(a) - rbar) / s
where rbar = sum_a pi(a) r(a) (the policy's expected reward, the group baseline) and s a normaliser held
constant, the expected policy gradient over the whole group is exact (no sampling noise):

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
  inside the log, so it still drives each context toward the argmax of the n-gram (compare the bigram lock-in
  the issue reports for bigram-shaped rewards).
- `target_mean` (the default): read the reward table as a sum of exact-match games against targets,
  r(a) = sum_t T(t) 1[a = t], and normalise each target's game by its own expected reward pi(t). Then
  A(a) = r(a) / pi(a) - sum_b r(b) and

      g = sum_a r(a) grad log pi(a),   g_z = r - (sum_b r(b)) pi,

  a reward-weighted log-likelihood whose optimum is pi proportional to E[r | context]: **a proper scoring rule
  for any non-negative reward**. For exact match alone it equals `mean` and cross-entropy.

The reward terms (`game_rewards`) under `target_mean`:

- exact match 1[a = y]: cross-entropy's gradient, as above.
- partial credit lambda_t q(a), q = the n-gram distribution (bigram by default, up to 4-gram): the n-gram plays
  the ground truth with probability q, so it adds lambda_t x the gradient of cross-entropy toward q
  (distillation from the n-gram); the optimum is the mixture (p_data + lambda_t q) / (1 + lambda_t), never the
  n-gram's argmax. lambda_t decays linearly to 0 over `guidance_decay_steps`, so the bootstrap fades into the
  ground truth and the optimum returns to the data distribution.
- confidence bonus c_t pi_old(y) on the correct action ("confident and correct"), c_t ramping from 0 to c over
  `confidence_ramp_steps` (the seed's scaling schedule): it weights the exact-match term by (1 + c_t pi(y)),
  leaning on positions the model already gets right. It sharpens the optimum a little (pi proportional to
  p (1 + c pi)), so c stays small; the health monitor's ECE shows what it costs in calibration.
- entropy bonus and beta KL(pi || q) toward the n-gram reference are added to the loss as usual.

PPO-style clipping against the previous policy uses the expected surrogate over the group,
sum_a w(a) min(rho(a) A(a), clip(rho(a), 1 - eps, 1 + eps_high) A(a)) with rho = pi / pi_old and w = pi_old
(exhaustive) or self-normalised importance weights (sampled); its gradient at rho = 1 is g above. Clipping only
acts when a batch is reused (`num_iterations > 1`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


# -- advantage normalisation registry: fn(rewards, weights, probs) -> advantages, all (..., G). `weights` sum to 1
# over the group and estimate pi_old (exhaustive: pi_old itself); `probs` is pi_old of each group member.
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
    match). Sampled groups estimate sum_b r(b) with the importance-weighted group.
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


def sample_group(old_logits: torch.Tensor, k: int, t_min: float, t_max: float, generator=None):
    """K actions per position drawn at K temperatures spread over `[t_min, t_max]`.

    old_logits: `(B, T, V)`. Returns `actions` `(B, T, K)` and `weights` `(B, T, K)`, the self-normalised
    importance weights pi_old(a_k) / mu_k(a_k) that make weighted group sums estimate sums under pi_old.
    """
    temps = torch.linspace(t_min, t_max, k) if k > 1 else torch.tensor([t_min])
    logits = old_logits.float()[..., None, :] / temps.to(old_logits.device)[:, None]  # (B, T, K, V)
    mu = logits.softmax(-1)
    actions = torch.multinomial(mu.reshape(-1, mu.shape[-1]), 1, generator=generator).view(*mu.shape[:-1])
    log_mu = mu.gather(-1, actions[..., None]).squeeze(-1).clamp_min(1e-30).log()
    log_pi = old_logits.float().log_softmax(-1).gather(-1, actions)
    weights = torch.softmax(log_pi - log_mu, dim=-1)
    return actions, weights


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
    actions: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped group policy-gradient loss, mean over positions, plus entropy bonus and KL toward the reference.

    logits, old_logp, rewards, ref_logp: `(B, T, V)`. Exhaustive when `actions` is None (group = all V, weights
    = pi_old); otherwise actions/weights `(B, T, K)` from `sample_group`. Returns the loss and detached metrics.
    """
    logp = logits.float().log_softmax(-1)
    old_logp = old_logp.float()
    if actions is None:
        group_logp, group_old, group_r, w = logp, old_logp, rewards, old_logp.exp()
    else:
        group_logp, group_old = logp.gather(-1, actions), old_logp.gather(-1, actions)
        group_r, w = rewards.gather(-1, actions), weights
    adv = get_advantage_norm(advantage_norm)(group_r, w, group_old.exp()).detach()
    ratio = (group_logp - group_old).exp()
    clipped = ratio.clamp(1.0 - epsilon_low, 1.0 + epsilon_high)
    surrogate = torch.minimum(ratio * adv, clipped * adv)
    pg_loss = -(w * surrogate).sum(-1).mean()

    probs = logp.exp()
    entropy = -(probs * logp).sum(-1)
    loss = pg_loss - entropy_coef * entropy.mean()
    kl = None
    if ref_logp is not None:
        kl = (probs * (logp - ref_logp)).sum(-1)
        loss = loss + kl_coef * kl.mean()

    with torch.no_grad():
        rbar = (w * group_r).sum(-1)
        is_clipped = ((ratio < 1 - epsilon_low) & (adv < 0)) | ((ratio > 1 + epsilon_high) & (adv > 0))
        metrics = {
            "reward_mean": rbar.mean(),
            "reward_std": (w * (group_r - rbar[..., None]) ** 2).sum(-1).sqrt().mean(),
            "advantage_abs": (w * adv.abs()).sum(-1).mean(),
            "clip_ratio": (w * is_clipped.float()).sum(-1).mean(),
            "pg_loss": pg_loss.detach(),
            "entropy": entropy.mean(),
        }
        if kl is not None:
            metrics["kl_ngram"] = kl.mean()
    return loss, metrics
