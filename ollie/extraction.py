"""OLLIE step 3: policy extraction by y-weighted behaviour cloning (paper, method section).

    max_π E_{(s,a)~D_o}[ y(s,a) log π(a|s) ]

With y = ρ^{π*} / ρ_o this is BC on ρ^{π*}, whose maximiser is π*(a|s) = ρ^{π*}(s,a) / ρ^{π*}(s).
As in the official code, y is divided by its batch mean (a per-batch rescaling that keeps the
step size independent of y's overall scale). Shapes: logp (B,), y (B,) -> scalar loss (minimised;
the official code's sign is flipped, which would minimise the likelihood).

Batches: uniform over D_o with weights y (official), or drawn with probability ∝ y and equal
weights (`resample_rows`): the same objective, but where y's mass sits on a small share of the
rows (2% on HalfCheetah's data) a uniform batch of 256 holds ~5 of them and a resampled one ~250.

Low-y cut (`cut_low_y`, `offline.extraction_y_cut`; a deviation from the paper, off by default):
y is set to 0 on every D_o row whose y lies below `cut` times y's `quantile` over D_e, the one
set the method knows to be expert. On HalfCheetah y ranks D_s's expert rows above its random
rows with AUC ≈ 1, yet the ~1% of y's mass left on 100k random rows bent the policy; the same y
with those rows zeroed by their labels scored 64.6 instead of 19.1 (results/ollie/NOTES.md).
"""

from __future__ import annotations

import torch

__all__ = ["cut_low_y", "extraction_loss", "resample_rows"]


def extraction_loss(logp: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-mean_B (y / mean_B y) log π(a|s) for log-likelihoods logp (B,) and weights y (B,) > 0."""
    w = y / y.mean().clamp_min(1e-12)
    return -(w.detach() * logp).mean()


def resample_rows(cdf: torch.Tensor, batch: int, gen: torch.Generator) -> torch.Tensor:
    """`batch` row indices (B,) drawn with replacement, P(i) = y_i / Σ y, from cdf = cumsum(y)
    (N,) (float64, so that the last rows of a long table keep their share)."""
    u = torch.rand(batch, generator=gen, device=cdf.device, dtype=cdf.dtype) * cdf[-1]
    return torch.searchsorted(cdf, u, right=True).clamp_max(len(cdf) - 1)


def cut_low_y(y: torch.Tensor, y_expert: torch.Tensor, cut: float, quantile: float
              ) -> tuple[torch.Tensor, float]:
    """y (N,) with every row below the threshold cut · quantile_q(y_expert) set to 0 (the kept
    rows keep their values), and the threshold; y_expert (N_e,) is y over D_e. cut = 0 returns
    y itself. With cut <= 1 at least D_e's rows at or above the quantile keep their weight."""
    if cut == 0:
        return y, 0.0
    if not bool(torch.isfinite(y).all()):  # a NaN row would be cut silently, an inf kept alone
        raise ValueError("offline.extraction_y_cut: y is not finite on every row of D_o; the "
                         "saddle point diverged (see offline.log_y_max)")
    thr = cut * float(torch.quantile(y_expert.double(), quantile))
    return torch.where(y >= thr, y, torch.zeros_like(y)), thr
