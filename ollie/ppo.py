"""PPO pieces of the online phase (Schulman et al. 2017; GAE: Schulman et al. 2016).

- `gae`: generalised advantage estimation over a (T, N) rollout of N parallel envs. Episodes
  may end inside the rollout: `ends` (termination or truncation) cuts the recursion, and
  `next_values` already holds the bootstrap of s_{t+1} (V of the final observation at a
  truncation, 0 or an absorbing state's value at a termination).

      δ_t = r_t + γ next_value_t - V(s_t)
      A_t = δ_t + γ λ (1 - end_t) A_{t+1},   A_T = 0 beyond the rollout;  returns = A + V

- `clipped_policy_loss`: -E[min(ρ A, clip(ρ, 1 - ε, 1 + ε) A)] with ρ = exp(logp - logp_old).
- `sample_action`: a = tanh(u), u ~ N(μ(s), σ(s)) of the tanh-Gaussian policy, with log π(a|s).
"""

from __future__ import annotations

import torch

from shared.il.models import TanhGaussianPolicy

__all__ = ["gae", "clipped_policy_loss", "sample_action"]


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
    ratio = torch.exp(logp - logp_old)
    return -torch.min(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv).mean()


@torch.no_grad()
def sample_action(policy: TanhGaussianPolicy, s: torch.Tensor, gen: torch.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """a (N, A) in (-1, 1) sampled from π(.|s) for s (N, S), and log π(a|s) (N,)."""
    mean, log_std = policy.dist_params(s)
    u = mean + log_std.exp() * torch.randn(mean.shape, generator=gen, device=mean.device)
    a = torch.tanh(u)
    return a, policy.log_prob(s, a)
