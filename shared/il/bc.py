"""Behaviour cloning losses shared by offline imitation methods.

    min_pi  -E_B[w(s,a) log pi(a|s)]

w = 1 is plain BC; a discriminator-derived w is weighted BC (ILID's alpha = D/(1-D), OLLIE's
y(s,a), ISW-BC's c/(1-c)). Shapes: s (B, S), a (B, A), w (B,) -> scalar loss (to minimise).
"""

from __future__ import annotations

import torch

from shared.il.models import TanhGaussianPolicy

__all__ = ["importance_weight", "bc_loss", "PlainBC"]


def importance_weight(d: torch.Tensor) -> torch.Tensor:
    """alpha = D / (1 - D) for discriminator outputs D (B,) in (0, 1)."""
    return d / (1 - d)


def bc_loss(policy: TanhGaussianPolicy, s: torch.Tensor, a: torch.Tensor,
            w: torch.Tensor | None = None) -> torch.Tensor:
    """-mean_B w * log pi(a|s) (w = 1 when None)."""
    logp = policy.log_prob(s, a)
    return -(logp if w is None else w * logp).mean()


class PlainBC:
    """Plain BC on fixed rows s (N, S), a (N, A): `loss(policy, gen)` draws `batch` rows uniformly
    with `gen` (on its device); nothing to save. The BC-E / BC-all arm of the offline IL packages,
    which add their own preparation interface."""

    def __init__(self, s: torch.Tensor, a: torch.Tensor, batch: int, name: str):
        self.s, self.a, self.batch, self.name = s, a, batch, name

    def loss(self, policy: TanhGaussianPolicy, gen: torch.Generator) -> torch.Tensor:
        i = torch.randint(len(self.s), (self.batch,), generator=gen, device=gen.device)
        return bc_loss(policy, self.s[i], self.a[i])

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, st: dict) -> None:
        pass
