"""OLLIE step 1: the offline discriminator d(s, a) and the surrogate reward (paper, method
section; official `Discriminator`, `Model.train_discriminator`).

d separates expert data D_e (label 1) from the offline data D_o = D_e ∪ D_s (label 0), so that
d / (1 - d) ≈ ρ_e / ρ_o and the surrogate reward is

    R̃(s, a) = log d(s, a) / (1 - d(s, a))            (= logit d, in [logit 0.1, logit 0.9])

Loss 'pu' (positive-unlabelled, the official default, as in DWBC; D_o is unlabelled and holds
expert-like rows with class prior eta):

    E_e[-log d] + E_o[-log(1 - d)] / eta - E_e[-log(1 - d)]

Loss 'bce': E_e[-log d] + E_o[-log(1 - d)]. d is `shared.il.models.Discriminator`: MLP (s‖a) ->
256 -> 256 -> 1, sigmoid clipped to `offline.disc_clip` (official [0.1, 0.9]). Shapes:
x = (s‖a) (B, S + A) -> d (B,).
"""

from __future__ import annotations

import torch

from shared.il.discriminator import sample_rows
from shared.il.models import Discriminator

__all__ = ["offline_disc_loss", "train_offline_discriminator", "surrogate_reward",
           "shift_reward"]


def offline_disc_loss(d_e: torch.Tensor, d_o: torch.Tensor, loss: str = "pu",
                      eta: float = 0.5) -> torch.Tensor:
    """Loss of d on an expert batch d_e (B,) and an offline batch d_o (B,) of probabilities."""
    if loss == "bce":
        return -(torch.log(d_e).mean() + torch.log(1 - d_o).mean())
    return (-torch.log(d_e) + torch.log(1 - d_e)).mean() - torch.log(1 - d_o).mean() / eta


def train_offline_discriminator(disc: Discriminator, x_e: torch.Tensor, x_o: torch.Tensor,
                                steps: int, batch: int, opt: torch.optim.Optimizer,
                                gen: torch.Generator, loss: str = "pu", eta: float = 0.5
                                ) -> list[float]:
    """`steps` Adam steps of d on D_e rows x_e (N_e, S + A) vs D_o rows x_o (N_o, S + A)."""
    out = []
    for _ in range(steps):
        p = disc(torch.cat([sample_rows(x_e, batch, gen), sample_rows(x_o, batch, gen)]))
        lv = offline_disc_loss(p[:batch], p[batch:], loss, eta)
        opt.zero_grad(set_to_none=True)
        lv.backward()
        opt.step()
        out.append(lv.item())
    return out


@torch.no_grad()
def surrogate_reward(disc: Discriminator, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """R̃ = log d / (1 - d) over rows x (N, S + A) -> (N,)."""
    return torch.cat([disc.logit(x[i:i + chunk]) for i in range(0, len(x), chunk)])


def shift_reward(r: torch.Tensor, mode: str = "min", clip_lo: float = 0.1) -> torch.Tensor:
    """R̃ (N,) as the saddle point uses it. 'none': R̃ itself. 'min': R̃ - logit(clip_lo) >= 0.
    'minmax': (R̃ - min R̃) / (max R̃ - min R̃) in [0, 1] (official `label_offline_reward`).

    Why not 'none': a termination ends the flow, so on data where R̃ < 0 (all of D_s) an
    occupancy that falls at once collects less negative reward and less KL cost than one that
    follows the expert; with R̃ >= 0 every step survived is worth at least as much as none.
    """
    if mode == "none":
        return r
    if mode == "min":
        return r - torch.logit(torch.tensor(clip_lo, dtype=r.dtype))
    if mode == "minmax":
        return (r - r.min()) / (r.max() - r.min()).clamp_min(1e-8)
    raise ValueError(f"unknown reward shift {mode!r}")
