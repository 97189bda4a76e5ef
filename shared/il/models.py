"""Networks of offline imitation learning: state normaliser, tanh-Gaussian BC policy, clipped
discriminator.

Shapes: B batch, S state, A action.
- `Normalizer`: s (B, S) -> (s - mean) / std with fixed statistics (std floored at eps).
- `TanhGaussianPolicy`: s (B, S) -> mean, log_std (B, A); `log_prob(s, a) (B,)`; `act(s)` =
  tanh(mean) (deterministic evaluation, as in D4RL-style offline IL code).
- `Discriminator`: x (B, D) -> probability (B,) in [clip_lo, clip_hi] (ILID, DWBC and OLLIE clip
  to [0.1, 0.9]); `logit(x)` is the clipped logit; D = S for d(s), S + A for d(s, a).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from shared.il.nets import mlp

__all__ = ["Normalizer", "TanhGaussianPolicy", "Discriminator", "MEAN_CLIP", "ACTION_EPS",
           "tanh_gaussian_params", "tanh_gaussian_log_prob"]

MEAN_CLIP = 9.0  # mean of the pre-tanh Gaussian clipped to +-9
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
ACTION_EPS = 1e-6  # |a| <= 1 - eps before atanh (1 - 1e-7 rounds to 1 - 6e-8 in float32)


class Normalizer(nn.Module):
    """s -> (s - mean) / std with fixed statistics (std floored at eps)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, eps: float = 1e-3):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).clamp_min(eps))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return (s - self.mean) / self.std

    def with_actions(self, action_dim: int) -> Normalizer:
        """Normaliser of (s, a) rows: states as here, actions (already in [-1, 1]) unchanged."""
        dev = self.mean.device
        return Normalizer(torch.cat([self.mean, torch.zeros(action_dim, device=dev)]),
                          torch.cat([self.std, torch.ones(action_dim, device=dev)]))


def tanh_gaussian_params(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Network output (..., 2A) -> the pre-tanh Gaussian's mean and log std (..., A), clipped."""
    mean, log_std = out.chunk(2, dim=-1)
    return mean.clamp(-MEAN_CLIP, MEAN_CLIP), log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)


def tanh_gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor,
                           a: torch.Tensor) -> torch.Tensor:
    """log pi(a|s) (...,) of tanh_# N(mean, exp(log_std)^2) at actions a (..., A) in [-1, 1]
    (clipped to +-(1 - eps) first)."""
    a = a.clamp(-1 + ACTION_EPS, 1 - ACTION_EPS)
    u = torch.atanh(a)
    logp = -0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    return (logp - torch.log1p(-a * a)).sum(-1)


class TanhGaussianPolicy(nn.Module):
    """pi(a|s) = tanh_# N(mu(s), diag sigma(s)^2) on actions in [-1, 1]^A."""

    def __init__(self, state_dim: int, action_dim: int, hidden: int = 256,
                 normalizer: Normalizer | None = None):
        super().__init__()
        self.net = mlp(state_dim, 2 * action_dim, hidden)
        self.norm = normalizer or Normalizer(torch.zeros(state_dim), torch.ones(state_dim))

    def dist_params(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return tanh_gaussian_params(self.net(self.norm(s)))

    def log_prob(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """log pi(a|s) (B,) for actions a (B, A) in [-1, 1] (clipped to +-(1 - eps) first)."""
        return tanh_gaussian_log_prob(*self.dist_params(s), a)

    @torch.no_grad()
    def act(self, s: torch.Tensor) -> torch.Tensor:
        """Deterministic action tanh(mean) (B, A)."""
        return torch.tanh(self.dist_params(s)[0])


class Discriminator(nn.Module):
    """MLP 256-256 with a sigmoid output clipped to [lo, hi]: x (B, D) -> p (B,)."""

    def __init__(self, in_dim: int, hidden: int = 256, clip: tuple[float, float] = (0.1, 0.9),
                 normalizer: Normalizer | None = None):
        super().__init__()
        self.net = mlp(in_dim, 1, hidden)
        self.lo, self.hi = clip
        self.norm = normalizer or Normalizer(torch.zeros(in_dim), torch.ones(in_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(self.norm(x))).squeeze(-1).clamp(self.lo, self.hi)

    def logit(self, x: torch.Tensor) -> torch.Tensor:
        """log p / (1 - p) of the clipped probability (B,) (clipping the logit is the same)."""
        lo, hi = math.log(self.lo / (1 - self.lo)), math.log(self.hi / (1 - self.hi))
        return self.net(self.norm(x)).squeeze(-1).clamp(lo, hi)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
        """forward() over a whole dataset x (N, D) -> (N,), without autograd, in row chunks
        (chunks that stay in cache run about twice as fast on a CPU as one huge matmul)."""
        if len(x) <= chunk:
            return self(x)
        return torch.cat([self(x[i:i + chunk]) for i in range(0, len(x), chunk)])
