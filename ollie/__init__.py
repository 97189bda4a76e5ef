"""ollie: offline-to-online imitation learning with an aligned discriminator initialisation
(OLLIE; Yue et al., ICML 2024, arXiv 2405.17477).

Offline, from a few expert trajectories D_e and many imperfect ones D_s: a PU discriminator d
(`discriminator`), the convex–concave saddle point over ν and y = ρ^{π*}/ρ_o (`dice`), the policy
π⁰ by y-weighted BC (`extraction`, `offline.OLLIEPretrainer`); online: GAIL with PPO (`gail`,
`ppo`) from π⁰ and the aligned discriminator D⁰ = [1 + (d/(1-d))/y]⁻¹ (`alignment`). Baselines in
`baselines`; recipes `train` / `eval` / `bench` behind `python -m`.

The saddle point on a toy batch (tensors of B transitions):

>>> import torch
>>> from ollie import saddle_objective, d0_formula, extraction_loss, shift_reward
>>> B = 4
>>> L = saddle_objective(log_y=torch.zeros(B), reward=torch.ones(B), nu_s=torch.zeros(B),
...                      nu_next=torch.zeros(B), not_done=torch.ones(B), nu_s0=torch.zeros(2),
...                      gamma=0.99)
>>> round(L.item(), 3)      # y = 1 everywhere: E[y δ - y log y] = E[R̃] = 1
1.0
>>> d0_formula(torch.tensor([0.5]), torch.tensor([1.0]))   # d/(1-d) = y: undecided
tensor([0.5000])
>>> shift_reward(torch.tensor([-2.0, 1.0]), "minmax")    # R̃ for the saddle point
tensor([0., 1.])
>>> round(extraction_loss(torch.tensor([-1.0, -3.0]), torch.tensor([1.0, 3.0])).item(), 3)
2.5
"""

from ollie.alignment import AlignedDiscriminator, RandomDiscriminator, d0_formula
from ollie.config import TrainConfig, load_train_config
from ollie.dice import (
    NuNet,
    YNet,
    box_conjugate,
    dual_objective,
    pointwise_y,
    saddle_objective,
    saddle_step,
    y_regression_loss,
)
from ollie.discriminator import offline_disc_loss, shift_reward, surrogate_reward
from ollie.extraction import extraction_loss, resample_rows
from ollie.gail import gail_reward, run_online
from ollie.offline import OLLIEPretrainer
from ollie.ppo import clipped_policy_loss, gae, log_prob_pre_tanh, sample_action

__all__ = ["AlignedDiscriminator", "RandomDiscriminator", "d0_formula", "TrainConfig",
           "load_train_config", "NuNet", "YNet", "pointwise_y", "saddle_objective",
           "saddle_step", "y_regression_loss", "box_conjugate", "dual_objective",
           "offline_disc_loss", "surrogate_reward", "shift_reward",
           "extraction_loss", "resample_rows", "gail_reward", "run_online", "OLLIEPretrainer",
           "clipped_policy_loss", "gae", "log_prob_pre_tanh", "sample_action"]
