"""Behaviour cloning losses shared by offline imitation methods.

    min_pi  -E_B[w(s,a) log pi(a|s)]

w = 1 is plain BC; a discriminator-derived w is weighted BC (ILID's alpha = D/(1-D), OLLIE's
y(s,a), ISW-BC's c/(1-c)). Shapes: s (B, S), a (B, A), w (B,) -> scalar loss (to minimise).
"""

from __future__ import annotations

import torch

from shared.il.models import TanhGaussianPolicy

__all__ = ["importance_weight", "bc_loss"]


def importance_weight(d: torch.Tensor) -> torch.Tensor:
    """alpha = D / (1 - D) for discriminator outputs D (B,) in (0, 1)."""
    return d / (1 - d)


def bc_loss(policy: TanhGaussianPolicy, s: torch.Tensor, a: torch.Tensor,
            w: torch.Tensor | None = None) -> torch.Tensor:
    """-mean_B w * log pi(a|s) (w = 1 when None)."""
    logp = policy.log_prob(s, a)
    return -(logp if w is None else w * logp).mean()
