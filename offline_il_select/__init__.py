"""offline_il_select: offline imitation learning from imperfect demonstrations by resultant-state
data selection and weighted behaviour cloning (ILID; Yue et al., ICML 2024, arXiv 2405.17476).

Given a few expert episodes D_e and many unlabeled imperfect ones D_b, ILID trains a state-only
discriminator d(s), keeps the D_b transitions whose resultant states (next K states of the same
episode) look expert-like (`selection.ResultantStateSelector`), weights D_e ∪ D_s by a
state-action discriminator (alpha = D/(1-D)) and runs weighted BC with the beta gate
(`wbc.weighted_bc_loss`). Modules: `config`, `data` (D_e/D_b from `shared.il`), `models`,
`discriminator`, `selection`, `wbc`, `ilid` (the algorithm), `baselines` (BC-E, BC-U, DWBC,
ISW-BC), `train` / `bench` (recipes behind `python -m`).
"""

from offline_il_select.ilid import ILID
from offline_il_select.selection import ResultantStateSelector, beta_gate, select_resultant
from offline_il_select.wbc import importance_weight, weighted_bc_loss

__all__ = ["ILID", "ResultantStateSelector", "select_resultant", "beta_gate",
           "importance_weight", "weighted_bc_loss"]
