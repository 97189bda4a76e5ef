"""Baselines with ILID's policy network and step budget (same `loss(policy, gen)` interface).

- `BC(source='expert')` (BC-E): BC on D_e only.
- `BC(source='all')` (BC-U): BC on D_e ∪ D_b.
- `DWBC` (Xu et al., ICML 2022, Alg. 1 and ryanxhr/DWBC): a discriminator on
  (s, a, normalised log pi(a|s)) trained jointly with the policy by PU learning; policy loss
  alpha * BC_e - E_e[(eta / (d (1 - d)) + 1) (-log pi)] + E_o[(1 / (1 - d) - 1) (-log pi)], with
  d_o < 0.5 set to 0.
- `ISWBC` (Li et al., NeurIPS 2023, and liziniu/ISWBC): discriminator c(s, a) of D_e vs
  D_e ∪ D_b with the two-sided gradient penalty of its code (`discriminator.
  train_penalised_discriminator`) and its own output clip [1e-3, 1 - 1e-3] (not ILID's
  [0.1, 0.9]), then BC on the union weighted by c / (1 - c) (weights below tau set to 0); the
  loss's expectation estimated from a batch of D_e and a batch of D_b (`iswbc_stratified`), the
  weights self-normalised to mean 1 over D_u (`iswbc_normalise`).
Data and networks live on the device of the state normaliser (`train.fit`: `cfg.device`).
Shapes: batches s (B, S), a (B, A).
"""

from __future__ import annotations

import numpy as np
import torch

from offline_il_select.config import BaselineConfig, ILIDConfig, PolicyConfig
from offline_il_select.discriminator import train_discriminator, train_penalised_discriminator
from offline_il_select.ilid import t32
from offline_il_select.models import Discriminator, Normalizer, TanhGaussianPolicy
from offline_il_select.wbc import importance_weight
from shared.il.bc import PlainBC
from shared.il.dwbc import DWBC as SharedDWBC
from shared.il.dwbc import DWBCDiscriminator

__all__ = ["BC", "DWBC", "DWBCDiscriminator", "ISWBC"]


class BC(PlainBC):
    """Plain BC on D_e ('expert', BC-E) or on D_e ∪ D_b ('all', BC-U)."""

    def __init__(self, expert: dict, imperfect: dict, pcfg: PolicyConfig, source: str,
                 device: torch.device | str = "cpu"):
        s, a = t32(expert["observations"], device), t32(expert["actions"], device)
        if source == "all":
            s = torch.cat([s, t32(imperfect["observations"], device)])
            a = torch.cat([a, t32(imperfect["actions"], device)])
        super().__init__(s, a, pcfg.batch_size, {"expert": "bc_expert", "all": "bc_all"}[source])

    def prepare(self, gen: torch.Generator) -> dict:
        return {"n_train": len(self.s)}

    def terms(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Unit-weight BC over the first rows of D_e ∪ D_b (D_e alone, or all of it)."""
        return [(np.arange(len(self.s)), np.ones(len(self.s), np.float32))]


class DWBC(SharedDWBC):
    """DWBC (`shared.il.dwbc`) with ILID's policy budget and discriminator clip."""

    def __init__(self, expert: dict, imperfect: dict, norm: Normalizer, pcfg: PolicyConfig,
                 bcfg: BaselineConfig, icfg: ILIDConfig):
        super().__init__(expert, imperfect, norm, pcfg.batch_size, pcfg.lr, pcfg.weight_decay,
                         bcfg.dwbc_alpha, bcfg.dwbc_eta, icfg.clip)

    def terms(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """D_e and D_b as rows of D_e ∪ D_b, unit weights: the rows its loss samples from (in a
        lockstep ensemble its discriminator sets their weights at every step)."""
        n_e, n_o = len(self.s_e), len(self.s_o)
        return [(np.arange(n_e), np.ones(n_e, np.float32)),
                (n_e + np.arange(n_o), np.ones(n_o, np.float32))]


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
        self.disc: Discriminator | None = None  # c(s, a), kept after prepare() for inspection

    def prepare(self, gen: torch.Generator) -> dict:
        c, lam = self.icfg, self.bcfg.iswbc_grad_penalty
        disc = self.init_discriminator()
        if lam > 0:
            train_penalised_discriminator(disc, *self.sets(), c.disc_steps, c.disc_batch,
                                          c.disc_lr, c.disc_weight_decay, gen, lam)
        else:
            train_discriminator(disc, *self.sets(), c.disc_steps, c.disc_batch, c.disc_lr,
                                c.disc_weight_decay, gen)
        return self.weigh(disc)

    # The steps of `prepare`, apart so that many runs' discriminators can train together
    # (`ensemble_prep.prepare_many`).

    def init_discriminator(self) -> Discriminator:
        """A fresh c(s, a) (`disc`, clipped to `iswbc_clip`), initialised from the global RNG."""
        c = self.icfg
        self.disc = Discriminator(self.s_e.shape[1] + self.a_e.shape[1], c.disc_hidden,
                                  self.bcfg.iswbc_clip, self.sa_norm).to(self.dev)
        return self.disc

    def sets(self) -> tuple[torch.Tensor, torch.Tensor]:
        """c(s, a)'s training sets: D_e pairs (label 1), D_e ∪ D_b pairs (label 0)."""
        return torch.cat([self.s_e, self.a_e], 1), torch.cat([self.s_u, self.a_u], 1)

    def weigh(self, disc: Discriminator) -> dict:
        """The weights c / (1 - c) over D_e ∪ D_b from a trained c(s, a) (on any device), those
        below tau set to 0; the statistics."""
        dd = next(disc.parameters()).device
        x = torch.cat([self.s_u, self.a_u], 1).to(dd)
        w = importance_weight(disc.predict(x, 2048 if dd.type == "cpu" else 1 << 16)).to(self.dev)
        w = torch.where(w < self.bcfg.iswbc_tau, torch.zeros_like(w), w)
        self.w = w / w.mean().clamp_min(1e-30) if self.bcfg.iswbc_normalise else w
        n_e = len(self.s_e)
        return {"weight_mean_expert": float(self.w[:n_e].mean()),
                "weight_mean_imperfect": float(self.w[n_e:].mean()),
                "weight_median_imperfect": float(self.w[n_e:].median()),
                # the share of the weighted-BC loss's weight that D_e's rows carry
                "weight_share_expert": float(self.w[:n_e].sum() / self.w.sum().clamp_min(1e-30))}

    def loss(self, policy: TanhGaussianPolicy, gen: torch.Generator) -> torch.Tensor:
        """-E_{D_u}[w log pi] from the batches of `terms()`: one uniform batch of D_u, or (the
        default) a batch of D_e and one of D_b with the weights scaled by their shares of D_u."""
        B, ts = self.pcfg.batch_size, self._terms()
        idx = [torch.randint(len(rows), (B,), generator=gen, device=gen.device)
               for rows, _ in ts]
        rows = torch.cat([r[i] for (r, _), i in zip(ts, idx)])
        logp = policy.log_prob(self.s_u[rows], self.a_u[rows])
        return -sum((w[i] * logp[t * B:(t + 1) * B]).mean()
                    for t, ((_, w), i) in enumerate(zip(ts, idx)))

    def _terms(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        n_e, n_u = len(self.s_e), len(self.s_u)
        every = torch.arange(n_u, device=self.dev)
        if not self.bcfg.iswbc_stratified:
            return [(every, self.w)]
        return [(every[:n_e], self.w[:n_e] * (n_e / n_u)),
                (every[n_e:], self.w[n_e:] * ((n_u - n_e) / n_u))]

    def terms(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """ISW-BC's loss as weighted-BC terms over the rows of D_e ∪ D_b (D_e first), each
        averaged over its own batch: (all rows, c / (1 - c)), or (D_e, w n_e / n_u) and
        (D_b, w n_b / n_u), whose expectations sum to the same loss."""
        return [(r.cpu().numpy(), w.cpu().numpy()) for r, w in self._terms()]

    def state_dict(self) -> dict:
        return {"w": self.w}

    def load_state_dict(self, st: dict) -> None:
        self.w = st["w"]

