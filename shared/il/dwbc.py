"""DWBC: discriminator-weighted behaviour cloning (Xu et al., ICML 2022, Alg. 1; ryanxhr/DWBC).

A discriminator on (s, a, normalised log pi(a|s)) trains jointly with the policy by
positive-unlabelled learning (eta = class prior of expert-like data inside D_o); the policy loss is

    alpha * E_e[-log pi] - E_e[(eta / (d (1 - d)) + 1) (-log pi)] + E_o[(1 / (1 - d) - 1) (-log pi)]

with d_o < 0.5 set to 0. One discriminator step per policy step, inside `loss()`. Data and
networks live on the device of the state normaliser. Shapes: batches s (B, S), a (B, A).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from shared.il.models import Normalizer, TanhGaussianPolicy

__all__ = ["DWBC", "DWBCDiscriminator"]

LOG_PI_MIN, LOG_PI_MAX = -20.0, 10.0  # DWBC's normalisation range of log pi


def _t32(x: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float32, device=device)


class DWBCDiscriminator(nn.Module):
    """d(s, a, log pi): two 128-unit input branches -> 256 -> 1, sigmoid clipped to [0.1, 0.9]."""

    def __init__(self, sa_dim: int, norm: Normalizer, clip=(0.1, 0.9)):
        super().__init__()
        self.norm = norm
        self.branch_sa = nn.Linear(sa_dim, 128)
        self.branch_logp = nn.Linear(1, 128)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 1))
        self.lo, self.hi = clip

    def forward(self, sa: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
        x = (logp.clamp(LOG_PI_MIN, LOG_PI_MAX) - LOG_PI_MIN) / (LOG_PI_MAX - LOG_PI_MIN)
        h = torch.cat([self.branch_sa(self.norm(sa)), self.branch_logp(x[:, None])], -1)
        return torch.sigmoid(self.head(h)).squeeze(-1).clamp(self.lo, self.hi)


class DWBC:
    """Discriminator-weighted BC on D_e (expert) and D_o (unlabelled); `loss(policy, gen)`."""

    name = "dwbc"

    def __init__(self, expert: dict, imperfect: dict, norm: Normalizer, batch_size: int,
                 lr: float, weight_decay: float, alpha: float, eta: float = 0.5,
                 clip: tuple[float, float] = (0.1, 0.9)):
        self.batch_size, self.alpha, self.eta = batch_size, alpha, eta
        dev = norm.mean.device
        self.s_e, self.a_e = _t32(expert["observations"], dev), _t32(expert["actions"], dev)
        self.s_o, self.a_o = _t32(imperfect["observations"], dev), _t32(imperfect["actions"], dev)
        A = self.a_e.shape[1]
        self.disc = DWBCDiscriminator(self.s_e.shape[1] + A, norm.with_actions(A), clip).to(dev)
        self.opt = torch.optim.Adam(self.disc.parameters(), lr=lr, weight_decay=weight_decay)

    def prepare(self, gen: torch.Generator) -> dict:
        return {}

    def loss(self, policy: TanhGaussianPolicy, gen: torch.Generator) -> torch.Tensor:
        B, eta = self.batch_size, self.eta
        ie = torch.randint(len(self.s_e), (B,), generator=gen, device=gen.device)
        io = torch.randint(len(self.s_o), (B,), generator=gen, device=gen.device)
        s_e, a_e, s_o, a_o = self.s_e[ie], self.a_e[ie], self.s_o[io], self.a_o[io]
        logp_e, logp_o = policy.log_prob(s_e, a_e), policy.log_prob(s_o, a_o)
        d_e = self.disc(torch.cat([s_e, a_e], 1), logp_e.detach())
        d_o = self.disc(torch.cat([s_o, a_o], 1), logp_o.detach())
        # PU learning (eta = class prior of expert-like data inside D_o).
        d_loss = (-torch.log(d_e) - torch.log(1 - d_o) / eta + torch.log(1 - d_e)).mean()
        self.opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt.step()
        d_e, d_o = d_e.detach(), d_o.detach()
        d_o = torch.where(d_o < 0.5, torch.zeros_like(d_o), d_o)
        corr_e = -logp_e * (eta / (d_e * (1 - d_e)) + 1)
        corr_o = -logp_o * (1 / (1 - d_o) - 1)
        return self.alpha * (-logp_e).mean() - corr_e.mean() + corr_o.mean()

    @torch.no_grad()
    def row_weights(self, policy: TanhGaussianPolicy, chunk: int = 1 << 14
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Expected weight of each row's -log pi in `loss` at the current discriminator and
        policy, in float64: (D_e rows (N_e,), D_o rows (N_o,)); over `loss`'s uniform draws its
        policy term is w_e @ (-log pi_e) + w_o @ (-log pi_o) (d_o < 0.5 rows weigh 0)."""

        def d_of(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
            return torch.cat([self.disc(torch.cat([s[i:i + chunk], a[i:i + chunk]], 1),
                                        policy.log_prob(s[i:i + chunk], a[i:i + chunk]))
                              for i in range(0, len(s), chunk)]).double()

        d_e, d_o = d_of(self.s_e, self.a_e), d_of(self.s_o, self.a_o)
        w_e = (self.alpha - self.eta / (d_e * (1 - d_e)) - 1) / len(d_e)
        w_o = torch.where(d_o < 0.5, torch.zeros_like(d_o), 1 / (1 - d_o) - 1) / len(d_o)
        return w_e.cpu().numpy(), w_o.cpu().numpy()

    def state_dict(self) -> dict:
        return {"disc": self.disc.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, st: dict) -> None:
        self.disc.load_state_dict(st["disc"])
        self.opt.load_state_dict(st["opt"])
