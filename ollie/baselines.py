"""Offline baselines, with OLLIE's policy network, batches and step budget (same interface as
`offline.OLLIEPretrainer`: `prep_steps`, `prep_step`, `loss(policy, gen)`).

- BC-E (`BC('expert')`): BC on D_e only.
- BC-all (`BC('all')`, NBCU): BC on D_o = D_e ∪ D_s.
- DWBC (Xu et al., ICML 2022): `shared.il.dwbc.DWBC`, discriminator on (s, a, log π) trained
  jointly with the policy.

The online baselines are configurations of the same recipe (README, "Arms"): GAIL from scratch
(pretrain none + random discriminator), naive offline→GAIL (an offline baseline's π⁰ + random
discriminator) and OLLIE without alignment (OLLIE's π⁰ + random discriminator).
"""

from __future__ import annotations

import torch

from ollie.config import BaselineConfig, OfflineConfig
from ollie.data import OLLIEData
from ollie.offline import t32
from shared.il.bc import PlainBC
from shared.il.dwbc import DWBC as SharedDWBC
from shared.il.models import Normalizer

__all__ = ["BC", "DWBC", "NoPretraining"]


class BC(PlainBC):
    """Plain BC on D_e ('expert', BC-E) or on D_o ('all', BC-all)."""

    prep_steps = 0

    def __init__(self, data: OLLIEData, norm: Normalizer, bcfg: BaselineConfig, source: str):
        d = data.expert if source == "expert" else data.union
        dev = norm.mean.device
        super().__init__(t32(d["observations"], dev), t32(d["actions"], dev), bcfg.bc_batch,
                         {"expert": "bc_expert", "all": "bc_all"}[source])
        self.policy_steps, self.stats = bcfg.bc_steps, {}

    def prep_step(self, i: int, gen: torch.Generator) -> float:
        raise RuntimeError("BC has no preparation steps")


class DWBC(SharedDWBC):
    """DWBC on D_e (expert) and D_o (unlabelled) with the offline discriminator's clip."""

    prep_steps = 0

    def __init__(self, data: OLLIEData, norm: Normalizer, bcfg: BaselineConfig,
                 ocfg: OfflineConfig):
        super().__init__(data.expert, data.union, norm, bcfg.bc_batch, bcfg.bc_lr,
                         bcfg.bc_weight_decay, bcfg.dwbc_alpha, bcfg.dwbc_eta, ocfg.clip)
        self.policy_steps, self.stats = bcfg.bc_steps, {}


class NoPretraining:
    """GAIL from scratch: π⁰ is the freshly initialised policy (no offline steps)."""

    name = "none"
    prep_steps = policy_steps = 0
    stats: dict = {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, st: dict) -> None:
        pass
