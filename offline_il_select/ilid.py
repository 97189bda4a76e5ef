"""ILID: imitation learning from imperfect demonstrations by resultant-state selection.

Yue et al., "How to Leverage Diverse Demonstrations in Offline Imitation Learning", ICML 2024,
Alg. 1:
1. state-only discriminator d(s): D_e states vs D_b states (`discriminator.py`, Eq. (7));
2. D_s = transitions of D_b with an expert-like resultant state within K steps
   (`selection.ResultantStateSelector`, Eq. (6));
3. state-action discriminator D(s, a): D_e vs D_u = D_e ∪ D_s; alpha = D/(1 - D);
4. weighted BC (`wbc.weighted_bc_loss`, Eq. (9)) with beta = 1[d(s) <= sigma] on D_s (the public
   code computes beta but drops it; `use_beta=False` reproduces that as an ablation;
   `clip_alpha=False` takes alpha from D's unclipped sigmoid, another ablation).

Steps 1-3 run once in `prepare()`, which also fixes alpha(s, a) for every row of D_u and beta(s)
for every row of D_s: both depend only on the trained discriminators, so the policy loop never runs
a discriminator. `loss()` is then one weighted-BC minibatch loss: a D_u batch and a D_s batch
(index lookups into the precomputed weights) through ONE policy forward over their concatenation.
Everything trains on the device of the state normaliser (`train.fit` puts it on `cfg.device`);
the selection itself is numpy on the CPU. Shapes: D_e (N_e, S)/(N_e, A), D_b (N_b, .),
D_s (N_s, .); batches (B, .).
"""

from __future__ import annotations

import numpy as np
import torch

from offline_il_select.config import ILIDConfig, PolicyConfig
from offline_il_select.discriminator import train_discriminator
from offline_il_select.models import Discriminator, Normalizer, TanhGaussianPolicy
from offline_il_select.selection import ResultantStateSelector, beta_gate
from offline_il_select.wbc import (
    importance_weight,
    unclipped_importance_weight,
    weighted_bc_loss,
)

__all__ = ["ILID", "t32"]


def t32(x: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float32, device=device)


def _chunk(device: torch.device) -> int:
    """Rows per forward when a discriminator scores a whole dataset: cache-sized on a CPU (as
    `Discriminator.predict`), large on a GPU (where a chunk costs its kernel launches)."""
    return 2048 if device.type == "cpu" else 1 << 16


class ILID:
    """ILID's data selection + weighting (`prepare`) and its weighted-BC loss (`loss`)."""

    name = "ilid"

    def __init__(self, expert: dict, imperfect: dict, norm: Normalizer, cfg: ILIDConfig,
                 pcfg: PolicyConfig):
        self.e, self.b, self.norm, self.cfg, self.pcfg = expert, imperfect, norm, cfg, pcfg
        self.dev = norm.mean.device
        self.artifacts: dict[str, torch.Tensor] = {}
        self.state_disc: Discriminator | None = None  # d(s), kept after prepare() for inspection
        self.sa_disc: Discriminator | None = None  # D(s, a)

    def prepare(self, gen: torch.Generator) -> dict:
        """Train d(s), select D_s, train D(s,a); fix alpha over D_u and beta over D_s."""
        c = self.cfg
        d, big_d = self.init_discriminators()
        train_discriminator(d, *self.state_sets(), c.disc_steps, c.disc_batch, c.disc_lr,
                            c.disc_weight_decay, gen)
        self.select(d)
        train_discriminator(big_d, *self.sa_sets(), c.disc_steps, c.disc_batch, c.disc_lr,
                            c.disc_weight_decay, gen)
        return self.weigh(big_d)

    # The steps of `prepare`, apart so that many runs' discriminators can train together
    # (`ensemble_prep.prepare_many`) between them.

    def init_discriminators(self) -> tuple[Discriminator, Discriminator]:
        """Fresh d(s) and D(s, a) (`state_disc`, `sa_disc`), initialised from the global RNG in
        this order (training d draws only from the run's generator, so building D(s, a) before
        it trains gives D(s, a) the weights it gets after)."""
        cfg, S, A = self.cfg, self.e["observations"].shape[1], self.e["actions"].shape[1]
        self.state_disc = Discriminator(S, cfg.disc_hidden, cfg.clip, self.norm).to(self.dev)
        self.sa_disc = Discriminator(S + A, cfg.disc_hidden, cfg.clip,
                                     self.norm.with_actions(A)).to(self.dev)
        return self.state_disc, self.sa_disc

    def state_sets(self) -> tuple[torch.Tensor, torch.Tensor]:
        """d(s)'s training sets: D_e states (label 1), D_b states (label 0)."""
        return t32(self.e["observations"], self.dev), t32(self.b["observations"], self.dev)

    def select(self, d: Discriminator) -> None:
        """Step 2 with a trained d(s) (on any device): D_s by resultant-state selection over
        D_b, beta = 1[d(s) <= sigma] on D_s (1 without beta)."""
        cfg, dd = self.cfg, next(d.parameters()).device
        d_next = d.predict(t32(self.b["next_observations"], dd), _chunk(dd)).cpu().numpy()
        selected = ResultantStateSelector(cfg.sigma, cfg.rollback)(
            d_next, self.b["terminals"], self.b["timeouts"])
        sel = np.flatnonzero(selected)
        s_s = t32(self.b["observations"][sel], self.dev)
        a_s = t32(self.b["actions"][sel], self.dev)
        d_state = d.predict(s_s.to(dd), _chunk(dd)).cpu().numpy()  # beta needs d(s) on D_s
        beta = beta_gate(d_state, cfg.sigma) if cfg.use_beta else np.ones(len(sel), np.float32)
        self.artifacts = {"s_s": s_s, "a_s": a_s, "beta": t32(beta, self.dev),
                          "selected": torch.as_tensor(selected), "d_state": t32(d_state),
                          "d_next": t32(d_next)}  # d_state on D_s

    def sa_sets(self) -> tuple[torch.Tensor, torch.Tensor]:
        """D(s, a)'s training sets (after `select`): D_e pairs (label 1), D_u pairs (label 0)."""
        s_e, a_e = t32(self.e["observations"], self.dev), t32(self.e["actions"], self.dev)
        a = self.artifacts
        return (torch.cat([s_e, a_e], 1),
                torch.cat([torch.cat([s_e, a["s_s"]]), torch.cat([a_e, a["a_s"]])], 1))

    def weigh(self, big_d: Discriminator) -> dict:
        """Step 3 with a trained D(s, a) (on any device): alpha over D_u; the statistics."""
        s_e, a_e = t32(self.e["observations"], self.dev), t32(self.e["actions"], self.dev)
        a, dd = self.artifacts, next(big_d.parameters()).device
        s_u, a_u = torch.cat([s_e, a["s_s"]]), torch.cat([a_e, a["a_s"]])
        x_u = torch.cat([s_u, a_u], 1).to(dd)
        alpha = importance_weight(big_d.predict(x_u, _chunk(dd))) if self.cfg.clip_alpha else \
            unclipped_importance_weight(big_d, x_u, _chunk(dd))
        a.update(s_u=s_u, a_u=a_u, alpha=alpha.to(self.dev))
        return self.stats()

    def stats(self) -> dict:
        a = self.artifacts
        return {"n_selected": int(a["selected"].sum()), "n_imperfect": len(a["selected"]),
                "beta_mean": float(a["beta"].mean()) if len(a["beta"]) else float("nan"),
                "alpha_mean_expert": float(a["alpha"][:len(self.e["observations"])].mean()),
                "alpha_mean_selected": float(a["alpha"][len(self.e["observations"]):].mean())
                if len(a["s_s"]) else float("nan"),
                "alpha_max": float(a["alpha"].max()),
                "expert_like_share": float((a["d_next"] >= self.cfg.sigma).float().mean())}

    def loss(self, policy: TanhGaussianPolicy, gen: torch.Generator) -> torch.Tensor:
        a, B = self.artifacts, self.pcfg.batch_size
        iu = torch.randint(len(a["s_u"]), (B,), generator=gen, device=gen.device)
        if len(a["s_s"]) == 0:  # nothing selected: alpha-weighted BC on D_e alone
            return weighted_bc_loss(policy, a["s_u"][iu], a["a_u"][iu], a["alpha"][iu])
        i_s = torch.randint(len(a["s_s"]), (B,), generator=gen, device=gen.device)
        return weighted_bc_loss(policy, a["s_u"][iu], a["a_u"][iu], a["alpha"][iu],
                                a["s_s"][i_s], a["a_s"][i_s], a["beta"][i_s])

    def terms(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The loss as weighted-BC terms over the rows of D_e ∪ D_b (D_e first), each (row
        indices, weights) and averaged over its own batch: (D_u, alpha) and, when anything is
        selected, (D_s, beta) -- what `ensemble.train_ensemble` trains many runs of at once."""
        a, n_e = self.artifacts, len(self.e["observations"])
        sel = n_e + np.flatnonzero(a["selected"].numpy())
        u = (np.concatenate([np.arange(n_e), sel]), a["alpha"].cpu().numpy())
        return [u, (sel, a["beta"].cpu().numpy())] if len(sel) else [u]

    def state_dict(self) -> dict:
        return dict(self.artifacts)

    def load_state_dict(self, st: dict) -> None:
        self.artifacts = dict(st)
