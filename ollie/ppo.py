"""PPO pieces of the online phase (Schulman et al. 2017; GAE: Schulman et al. 2016).

- `gae`: generalised advantage estimation over a (T, N) rollout of N parallel envs. Episodes
  may end inside the rollout: `ends` (termination or truncation) cuts the recursion, and
  `next_values` already holds the bootstrap of s_{t+1} (V of the final observation at a
  truncation, 0 or an absorbing state's value at a termination).

      δ_t = r_t + γ next_value_t - V(s_t)
      A_t = δ_t + γ λ (1 - end_t) A_{t+1},   A_T = 0 beyond the rollout;  returns = A + V

- `clipped_policy_loss`: -E[min(ρ A, clip(ρ, 1 - ε, 1 + ε) A)] with ρ = exp(logp - logp_old),
  log ρ clamped to ±`MAX_LOG_RATIO` (the objective is unchanged wherever ρ lies in
  [e^-20, e^20], far outside the clip range; beyond, exp would overflow to inf and turn the
  gradient into NaN).
- `sample_action`: a = tanh(u), u ~ N(μ(s), σ(s)) of the tanh-Gaussian policy, with u and
  log π(a|s); `log_prob_pre_tanh(policy, s, u)` is log π at the action tanh(u), computed from u.
  PPO keeps u: recomputing log π from a = tanh(u) needs atanh(a), which float32 cannot invert
  once |u| ≳ 8 (tanh(u) rounds to ±1, and the clamp to ±(1 − 1e-6) puts u at ±7.25): the
  stored log π then sits thousands of nats below the sample's true density, its gradient in μ
  is (7.25 − μ)/σ², and one PPO step overflows the ratio (results/ollie/NOTES.md, "NaN").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from shared.il.models import TanhGaussianPolicy

__all__ = ["gae", "clipped_policy_loss", "sample_action", "log_prob_pre_tanh", "MAX_LOG_RATIO"]

MAX_LOG_RATIO = 20.0  # |log ρ| clamp of the clipped surrogate


def gae(rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor,
        ends: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns (T, N) from rewards, V(s_t), bootstraps and episode ends (T, N)."""
    T = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(T)):
        delta = rewards[t] + gamma * next_values[t] - values[t]
        running = delta + gamma * lam * (1.0 - ends[t].float()) * running
        adv[t] = running
    return adv, adv + values


def clipped_policy_loss(logp: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor,
                        clip_eps: float) -> torch.Tensor:
    """PPO's clipped surrogate (to minimise) for log-probs and advantages (B,)."""
    ratio = torch.exp((logp - logp_old).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO))
    return -torch.min(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv).mean()


def log_prob_pre_tanh(policy: TanhGaussianPolicy, s: torch.Tensor, u: torch.Tensor
                      ) -> torch.Tensor:
    """log π(tanh u | s) (B,) for pre-tanh actions u (B, A): the Gaussian log-density of u less
    log |d tanh u / du| = log(1 − tanh² u) = 2 (log 2 − u − softplus(−2u)) (exact, finite for
    every finite u; no atanh)."""
    return _log_density_pre_tanh(*policy.dist_params(s), u)


def _log_density_pre_tanh(mean: torch.Tensor, log_std: torch.Tensor, u: torch.Tensor
                          ) -> torch.Tensor:
    z = (u - mean) / log_std.exp()
    log_jac = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
    return (-0.5 * z * z - log_std - 0.5 * math.log(2 * math.pi) - log_jac).sum(-1)


@torch.no_grad()
def sample_action(policy: TanhGaussianPolicy, s: torch.Tensor, gen: torch.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For s (N, S): a = tanh(u) (N, A) in [-1, 1] (±1 where float32 rounds), the pre-tanh
    sample u (N, A) and log π(a|s) (N,) from u (as `log_prob_pre_tanh`, on the same
    distribution parameters)."""
    mean, log_std = policy.dist_params(s)
    u = mean + log_std.exp() * torch.randn(mean.shape, generator=gen, device=mean.device)
    return torch.tanh(u), u, _log_density_pre_tanh(mean, log_std, u)
