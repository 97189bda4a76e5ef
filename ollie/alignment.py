"""OLLIE step 4: the aligned discriminator initialisation (paper, method section).

Convention (one, throughout this package): an online discriminator outputs D(s, a) = P(policy |
s, a); policy samples are labelled 1, expert samples 0. Its optimum for the current policy is
D*(s, a) = ρ^π / (ρ^π + ρ_e). Substituting d / (1 - d) ≈ ρ_e / ρ_o (step 1) and y ≈ ρ^{π⁰} / ρ_o
(step 2; π⁰ is extracted from y) gives the initialisation

    D⁰(s, a) = [1 + (d(s, a) / (1 - d(s, a))) / y(s, a)]⁻¹ = σ(log y(s, a) - logit d(s, a)).

`AlignedDiscriminator` realises D⁰ as a trainable network whose logit is log y_θ(s,a) -
logit d_φ(s,a), with θ and φ copied from the offline y and d and both finetuned online; at step 0
it equals the formula exactly. `RandomDiscriminator` is GAIL's usual freshly initialised start.
Both map (s‖a) (B, S + A) -> logit (B,); D = σ(logit).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ollie.dice import YNet
from shared.il.models import Discriminator, Normalizer
from shared.il.nets import mlp

__all__ = ["AlignedDiscriminator", "RandomDiscriminator", "d0_formula", "spearman"]


def d0_formula(d: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """D⁰ = 1 / (1 + (d / (1 - d)) / y) for offline d (B,) in (0, 1) and y (B,) > 0."""
    return 1.0 / (1.0 + (d / (1.0 - d)) / y)


class AlignedDiscriminator(nn.Module):
    """logit D(s, a) = log y_θ(s, a) - logit d_φ(s, a), initialised from the offline y and d."""

    def __init__(self, d: Discriminator, y: YNet):
        super().__init__()
        self.d = copy.deepcopy(d)
        self.y = copy.deepcopy(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.y(x) - self.d.logit(x)


class RandomDiscriminator(nn.Module):
    """A freshly initialised MLP (s‖a) -> 256 -> 256 -> logit."""

    def __init__(self, in_dim: int, hidden: int = 256, norm: Normalizer | None = None):
        super().__init__()
        self.net = mlp(in_dim, 1, hidden)
        self.norm = norm or Normalizer(torch.zeros(in_dim), torch.ones(in_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(x)).squeeze(-1)


def spearman(a, b) -> float:
    """Spearman rank correlation of two (N,) arrays (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)
