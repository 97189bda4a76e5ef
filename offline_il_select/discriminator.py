"""Discriminator training: expert (label 1) vs another set (label 0), ILID Sec. 5.1 / Eq. (7).

    max_d  E_pos[log d(x)] + E_neg[log(1 - d(x))]

The plain loop is `shared.il.discriminator.train_discriminator` (shared with other imitation
packages); x is a state (B, S) for d(s) or a state-action pair (B, S + A) for D(s, a).

`train_penalised_discriminator` is ISW-BC's c(s, a) (Li et al., NeurIPS 2023, and its official
code `liziniu/ISWBC`, `mujoco/iswbc.py`): the same loss plus lambda times the two-sided gradient
penalty of WGAN-GP on the logit,

    lambda E_xi[(||grad_x logit(xi)|| - 1)^2],
    xi = w x_pos + (1 - w) x_neg  and  w x_neg' + (1 - w) x_neg  (x_neg' the negatives shuffled),

so the logit is kept near 1-Lipschitz (not flat: a one-sided ||grad||^2 penalty pulls every
logit towards a constant, which with 1,000x more negatives than positives leaves the weights
c / (1 - c) nearly uniform). `isw_penalty` is that term for rows of any leading shape (the
lockstep preparations call it on (K, B, D) rows).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from shared.il.discriminator import sample_rows, train_discriminator
from shared.il.models import Discriminator

__all__ = ["train_discriminator", "train_penalised_discriminator", "isw_penalty",
           "draw_penalty_batch", "sample_rows"]

NORM_EPS = 1e-12  # ||g|| = sqrt(sum g^2 + eps): finite gradient where g = 0 (a dead ReLU region)


def isw_penalty(logit: Callable[[torch.Tensor], torch.Tensor], x_pos: torch.Tensor,
                x_neg: torch.Tensor, x_neg_shuffled: torch.Tensor, w: torch.Tensor
                ) -> torch.Tensor:
    """mean over the 2B interpolates of (||grad_x logit|| - 1)^2: rows (..., B, D), w (..., B, 1)
    -> (...) (a scalar for (B, D) rows); differentiable in the network's parameters."""
    xi = torch.cat([w * x_pos + (1 - w) * x_neg, w * x_neg_shuffled + (1 - w) * x_neg], -2)
    xi.requires_grad_(True)
    (g,) = torch.autograd.grad(logit(xi).sum(), xi, create_graph=True)
    norm = torch.sqrt((g * g).sum(-1) + NORM_EPS)
    return ((norm - 1) ** 2).mean(-1)


def draw_penalty_batch(pos: torch.Tensor, neg: torch.Tensor, batch: int, gen: torch.Generator
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step's draws from `gen`, in this order: positive rows, negative rows (B each, with
    replacement), interpolation weights w (B, 1), a permutation of the negatives (B,)."""
    ip = torch.randint(len(pos), (batch,), generator=gen, device=gen.device)
    ineg = torch.randint(len(neg), (batch,), generator=gen, device=gen.device)
    w = torch.rand(batch, 1, generator=gen, device=gen.device)
    perm = torch.randperm(batch, generator=gen, device=gen.device)
    return ip, ineg, w, perm


def train_penalised_discriminator(disc: Discriminator, pos: torch.Tensor, neg: torch.Tensor,
                                  steps: int, batch: int, lr: float, weight_decay: float,
                                  gen: torch.Generator, grad_penalty: float) -> list[float]:
    """Train `disc` in place to output 1 on `pos` (N1, D) and 0 on `neg` (N2, D) with ISW-BC's
    gradient penalty (coefficient `grad_penalty`); returns the losses."""
    opt = torch.optim.Adam(disc.parameters(), lr=lr, weight_decay=weight_decay)
    logit = lambda x: disc.net(disc.norm(x)).squeeze(-1)  # noqa: E731
    losses = []
    for _ in range(steps):
        ip, ineg, w, perm = draw_penalty_batch(pos, neg, batch, gen)
        xp, xn = pos[ip], neg[ineg]
        p = disc(torch.cat([xp, xn]))
        loss = -(torch.log(p[:batch]).mean() + torch.log(1 - p[batch:]).mean())
        loss = loss + grad_penalty * isw_penalty(logit, xp, xn, xn[perm], w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
