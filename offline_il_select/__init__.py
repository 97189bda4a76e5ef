"""offline_il_select: offline imitation learning from imperfect demonstrations by resultant-state
data selection and weighted behaviour cloning (ILID; Yue et al., ICML 2024, arXiv 2405.17476).

Given a few expert episodes D_e and many unlabeled imperfect ones D_b, ILID trains a state-only
discriminator d(s), keeps the D_b transitions whose resultant states (next K states of the same
episode) look expert-like (`selection.ResultantStateSelector`), weights D_e ∪ D_s by a
state-action discriminator (alpha = D/(1-D)) and runs weighted BC with the beta gate
(`wbc.weighted_bc_loss`). Modules: `config`, `data` (D_e/D_b from `shared.il`), `models`,
`discriminator`, `selection`, `wbc`, `ilid` (the algorithm), `baselines` (BC-E, BC-U, DWBC,
ISW-BC), `train` / `bench` (recipes behind `python -m`).

Example (what a notebook user types; instant): resultant-state selection on two imperfect
episodes. A transition is kept when an expert-like state (d(s') >= sigma) follows within K steps
of the same episode; the episode end stops the look-ahead.

>>> import numpy as np
>>> from offline_il_select import ResultantStateSelector, beta_gate
>>> d_next = np.array([0.1, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])  # d(s_{t+1})
>>> ends = np.zeros(10, bool); ends[4] = True                           # two episodes
>>> ResultantStateSelector(sigma=0.5, k=2)(d_next, ends, np.zeros(10, bool)).astype(int)
array([0, 0, 1, 1, 0, 0, 0, 0, 0, 0])
>>> beta_gate(np.array([0.2, 0.8]), sigma=0.5)                        # imitate only off-expert
array([1., 0.], dtype=float32)

The whole method on a dataset: `python -m offline_il_select.train` or `train.fit(cfg, data, dir)`.
"""

from offline_il_select.ilid import ILID
from offline_il_select.selection import ResultantStateSelector, beta_gate, select_resultant
from offline_il_select.wbc import importance_weight, weighted_bc_loss

__all__ = ["ILID", "ResultantStateSelector", "select_resultant", "beta_gate",
           "importance_weight", "weighted_bc_loss"]
