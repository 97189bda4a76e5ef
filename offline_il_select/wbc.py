"""Weighted behaviour cloning (ILID Sec. 5.2, Eq. (9)) and the importance weight alpha.

    max_pi  E_{D_u}[alpha(s,a) log pi(a|s)] + E_{D_s}[beta(s) log pi(a|s)]

D_u = D_e ∪ D_s, alpha = D/(1 - D) with D(s, a) the state-action discriminator of D_e vs D_u
(an importance weight d_e/d_u; in [1/9, 9] with the [0.1, 0.9] clip), beta = 1[d(s) <= sigma]
(`selection.beta_gate`). `unclipped_importance_weight` is alpha from the discriminator's raw
logit, exp(logit) = D/(1 - D) of the unclipped sigmoid (an ablation). Each term is a mean over
its own batch, so the two sources weigh alike regardless of their sizes (as in the paper's code).

Shapes: s (B, S), a (B, A), weights (B,) -> scalar loss (to minimise).
"""

from __future__ import annotations

import torch

from shared.il.bc import bc_loss, importance_weight
from shared.il.models import TanhGaussianPolicy

__all__ = ["importance_weight", "unclipped_importance_weight", "weighted_bc_loss", "bc_loss"]

MAX_LOGIT = 69.0  # exp(69) ~ 1e30: a weight that large still sums finitely in float32


@torch.no_grad()
def unclipped_importance_weight(disc, x: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """alpha = D/(1 - D) of the discriminator's sigmoid WITHOUT its output clip, i.e.
    exp(raw logit), over x (N, D) -> (N,) (the logit capped at MAX_LOGIT)."""
    z = torch.cat([disc.net(disc.norm(x[i:i + chunk])).squeeze(-1)
                   for i in range(0, len(x), chunk)])
    return z.clamp(max=MAX_LOGIT).exp()


def weighted_bc_loss(policy: TanhGaussianPolicy, s_u: torch.Tensor, a_u: torch.Tensor,
                     alpha_u: torch.Tensor, s_s: torch.Tensor | None = None,
                     a_s: torch.Tensor | None = None, beta_s: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """ILID's loss: alpha-weighted BC on a D_u batch + beta-gated BC on a D_s batch (if given).

    Both batches go through ONE policy forward over their concatenation (B_u + B_s rows); each
    term is still the mean over its own batch.
    """
    if s_s is None:
        return bc_loss(policy, s_u, a_u, alpha_u)
    logp = policy.log_prob(torch.cat([s_u, s_s]), torch.cat([a_u, a_s]))
    n = len(s_u)
    return -(alpha_u * logp[:n]).mean() - (beta_s * logp[n:]).mean()
