"""Discriminator training: one set (label 1) vs another (label 0) by binary cross-entropy.

    max_d  E_pos[log d(x)] + E_neg[log(1 - d(x))]

x is a state (B, S) for a state-only d(s) or a state-action pair (B, S + A) for d(s, a). Each
step draws independent batches from both sides and runs one forward over their concatenation
(the network has no cross-row layers, so this equals two forwards). An optional gradient penalty
on random interpolates (ISW-BC's regulariser) pushes ||grad_x logit|| towards 0.
"""

from __future__ import annotations

import torch

from shared.il.models import Discriminator

__all__ = ["train_discriminator", "sample_rows"]


def sample_rows(x: torch.Tensor, batch: int, gen: torch.Generator) -> torch.Tensor:
    """`batch` uniform rows of x (N, D) with replacement."""
    return x[torch.randint(len(x), (batch,), generator=gen, device=gen.device)]


def train_discriminator(disc: Discriminator, pos: torch.Tensor, neg: torch.Tensor, steps: int,
                        batch: int, lr: float, weight_decay: float, gen: torch.Generator,
                        grad_penalty: float = 0.0) -> list[float]:
    """Train `disc` in place to output 1 on `pos` (N1, D) and 0 on `neg` (N2, D); returns losses."""
    opt = torch.optim.Adam(disc.parameters(), lr=lr, weight_decay=weight_decay)
    losses = []
    for _ in range(steps):
        xp, xn = sample_rows(pos, batch, gen), sample_rows(neg, batch, gen)
        p = disc(torch.cat([xp, xn]))
        loss = -(torch.log(p[:batch]).mean() + torch.log(1 - p[batch:]).mean())
        if grad_penalty > 0:
            w = torch.rand(batch, 1, generator=gen, device=gen.device)
            xi = (w * xp + (1 - w) * xn).requires_grad_(True)
            logit = disc.net(disc.norm(xi)).sum()
            (g,) = torch.autograd.grad(logit, xi, create_graph=True)
            loss = loss + grad_penalty * (g.norm(dim=-1) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
