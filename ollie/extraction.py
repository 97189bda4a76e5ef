"""OLLIE step 3: policy extraction by y-weighted behaviour cloning (paper, method section).

    max_π E_{(s,a)~D_o}[ y(s,a) log π(a|s) ]

With y = ρ^{π*} / ρ_o this is BC on ρ^{π*}, whose maximiser is π*(a|s) = ρ^{π*}(s,a) / ρ^{π*}(s).
As in the official code, y is divided by its batch mean (a per-batch rescaling that keeps the
step size independent of y's overall scale). Shapes: logp (B,), y (B,) -> scalar loss (minimised;
the official code's sign is flipped, which would minimise the likelihood).
"""

from __future__ import annotations

import torch

__all__ = ["extraction_loss"]


def extraction_loss(logp: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-mean_B (y / mean_B y) log π(a|s) for log-likelihoods logp (B,) and weights y (B,) > 0."""
    w = y / y.mean().clamp_min(1e-12)
    return -(w.detach() * logp).mean()
