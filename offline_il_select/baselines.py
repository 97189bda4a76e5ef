"""Baselines with ILID's policy network and step budget (same `loss(policy, gen)` interface).

- `BC(source='expert')` (BC-E): BC on D_e only.
- `BC(source='all')` (BC-U): BC on D_e ∪ D_b.
- `DWBC` (Xu et al., ICML 2022, Alg. 1 and ryanxhr/DWBC): a discriminator on
  (s, a, normalised log pi(a|s)) trained jointly with the policy by PU learning; policy loss
  alpha * BC_e - E_e[(eta / (d (1 - d)) + 1) (-log pi)] + E_o[(1 / (1 - d) - 1) (-log pi)], with
  d_o < 0.5 set to 0.
- `ISWBC` (Li et al., NeurIPS 2023): discriminator c(s, a) of D_e vs D_e ∪ D_b with a gradient
  penalty, then BC on the union weighted by c / (1 - c) (weights below tau set to 0).
Data and networks live on the device of the state normaliser (`train.fit`: `cfg.device`).
Shapes: batches s (B, S), a (B, A).
"""

from __future__ import annotations

import torch
from torch import nn

from offline_il_select.config import BaselineConfig, ILIDConfig, PolicyConfig
from offline_il_select.discriminator import train_discriminator
from offline_il_select.ilid import t32
from offline_il_select.models import Discriminator, Normalizer, TanhGaussianPolicy
from offline_il_select.wbc import bc_loss, importance_weight

__all__ = ["BC", "DWBC", "DWBCDiscriminator", "ISWBC"]

LOG_PI_MIN, LOG_PI_MAX = -20.0, 10.0  # DWBC's normalisation range of log pi


class BC:
    """Plain BC on D_e ('expert', BC-E) or on D_e ∪ D_b ('all', BC-U)."""

    def __init__(self, expert: dict, imperfect: dict, pcfg: PolicyConfig, source: str,
                 device: torch.device | str = "cpu"):
        self.name = {"expert": "bc_expert", "all": "bc_all"}[source]
        self.pcfg = pcfg
        s, a = t32(expert["observations"], device), t32(expert["actions"], device)
        if source == "all":
            s = torch.cat([s, t32(imperfect["observations"], device)])
            a = torch.cat([a, t32(imperfect["actions"], device)])
        self.s, self.a = s, a

    def prepare(self, gen: torch.Generator) -> dict:
        return {"n_train": len(self.s)}

    def loss(self, policy: TanhGaussianPolicy, gen: torch.Generator) -> torch.Tensor:
        i = torch.randint(len(self.s), (self.pcfg.batch_size,), generator=gen, device=gen.device)
        return bc_loss(policy, self.s[i], self.a[i])

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, st: dict) -> None:
        pass


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
    """Discriminator-weighted BC; the discriminator trains in `loss()`, one step per policy step."""

    name = "dwbc"

    def __init__(self, expert: dict, imperfect: dict, norm: Normalizer, pcfg: PolicyConfig,
                 bcfg: BaselineConfig, icfg: ILIDConfig):
        self.pcfg, self.bcfg = pcfg, bcfg
        dev = norm.mean.device
        self.s_e, self.a_e = t32(expert["observations"], dev), t32(expert["actions"], dev)
        self.s_o, self.a_o = t32(imperfect["observations"], dev), t32(imperfect["actions"], dev)
        A = self.a_e.shape[1]
        sa_norm = norm.with_actions(A)
        self.disc = DWBCDiscriminator(self.s_e.shape[1] + A, sa_norm, icfg.clip).to(dev)
        self.opt = torch.optim.Adam(self.disc.parameters(), lr=pcfg.lr,
                                    weight_decay=pcfg.weight_decay)

    def prepare(self, gen: torch.Generator) -> dict:
        return {}

    def loss(self, policy: TanhGaussianPolicy, gen: torch.Generator) -> torch.Tensor:
        B, eta = self.pcfg.batch_size, self.bcfg.dwbc_eta
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
        return self.bcfg.dwbc_alpha * (-logp_e).mean() - corr_e.mean() + corr_o.mean()

    def state_dict(self) -> dict:
        return {"disc": self.disc.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, st: dict) -> None:
        self.disc.load_state_dict(st["disc"])
        self.opt.load_state_dict(st["opt"])


class ISWBC:
    """Importance-sampling-weighted BC on D_e ∪ D_b with a gradient-penalised discriminator."""

    name = "iswbc"

    def __init__(self, expert: dict, imperfect: dict, norm: Normalizer, pcfg: PolicyConfig,
                 bcfg: BaselineConfig, icfg: ILIDConfig):
        self.pcfg, self.bcfg, self.icfg = pcfg, bcfg, icfg
        self.dev = dev = norm.mean.device
        self.s_e, self.a_e = t32(expert["observations"], dev), t32(expert["actions"], dev)
        self.s_u = torch.cat([self.s_e, t32(imperfect["observations"], dev)])
        self.a_u = torch.cat([self.a_e, t32(imperfect["actions"], dev)])
        A = self.a_e.shape[1]
        self.sa_norm = norm.with_actions(A)
        self.w = torch.zeros(0, device=dev)

    def prepare(self, gen: torch.Generator) -> dict:
        c = self.icfg
        disc = Discriminator(self.s_e.shape[1] + self.a_e.shape[1], c.disc_hidden, c.clip,
                             self.sa_norm).to(self.dev)
        train_discriminator(disc, torch.cat([self.s_e, self.a_e], 1),
                            torch.cat([self.s_u, self.a_u], 1), c.disc_steps, c.disc_batch,
                            c.disc_lr, c.disc_weight_decay, gen,
                            grad_penalty=self.bcfg.iswbc_grad_penalty)
        w = importance_weight(disc.predict(torch.cat([self.s_u, self.a_u], 1)))
        self.w = torch.where(w < self.bcfg.iswbc_tau, torch.zeros_like(w), w)
        return {"weight_mean_expert": float(self.w[:len(self.s_e)].mean()),
                "weight_mean_imperfect": float(self.w[len(self.s_e):].mean())}

    def loss(self, policy: TanhGaussianPolicy, gen: torch.Generator) -> torch.Tensor:
        i = torch.randint(len(self.s_u), (self.pcfg.batch_size,), generator=gen,
                          device=gen.device)
        return bc_loss(policy, self.s_u[i], self.a_u[i], self.w[i])

    def state_dict(self) -> dict:
        return {"w": self.w}

    def load_state_dict(self, st: dict) -> None:
        self.w = st["w"]

