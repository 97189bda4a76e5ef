"""Typed configs for ILID training, the baselines and the benchmark (YAML -> dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from shared.config import NonNegFloat, NonNegInt, PosFloat, PosInt, Prob

__all__ = ["DataConfig", "ILIDConfig", "PolicyConfig", "BaselineConfig", "TrainConfig",
           "METHODS", "SOURCES"]

METHODS = ("ilid", "bc_expert", "bc_all", "dwbc", "iswbc")


SOURCES = ("random", "medium", "medium_replay", "noisy")  # source datasets of D_b


@dataclass
class DataConfig:
    """D_e and the imperfect data D_b, composed as the paper's code composes them (its
    `get_datasets`): D_e = the first `n_expert` trajectories of the expert dataset; D_b = the
    first `n_s` trajectories of the source dataset followed by the next `n_s_expert` expert
    trajectories (the code's num_e, num_s_s, num_s_e; the code calls D_b 'D_s')."""

    env_id: str = "Hopper-v5"  # gymnasium MuJoCo env the datasets come from
    # source dataset of D_b, as D4RL's: 'random' (uniform actions), 'medium' (the medium policy,
    # sampled), 'medium_replay' (medium policy + per-episode noise: a reconstruction of D4RL's
    # replay buffer), 'noisy' (expert + per-episode noise, with known per-episode quality)
    source: Literal["random", "medium", "medium_replay", "noisy"] = "random"
    n_expert: PosInt = 1  # expert trajectories in D_e (the code's num_e)
    n_s: PosInt = 1000  # source trajectories in D_b (the code's num_s_s)
    n_s_expert: NonNegInt = 0  # further expert trajectories appended to D_b (the code's num_s_e)
    # which trajectories are cut from a dataset or file: 'first' (as the code) or 'sampled'
    # (a permutation seeded by data_seed)
    pick: Literal["first", "sampled"] = "first"
    data_seed: int = 0  # seed of the dataset rollouts and of 'sampled' (fixed across seeds)
    policy_dir: str = ""  # expert/medium policy files; '' = shared/il/policies
    expert_file: str = ""  # a D4RL-layout HDF5 (or Minari dir) to cut D_e and D_b's experts from
    imperfect_file: str = ""  # a D4RL-layout HDF5 (or Minari dir) to cut D_b's n_s from
    max_episode_steps: PosInt = 1000  # episode cap of the rollouts

    def validate(self) -> None:
        # user files are checked here, before any rollout or run directory
        for name in ("expert_file", "imperfect_file"):
            v = getattr(self, name)
            if v and not Path(v).exists():
                raise ValueError(f"data.{name}: file not found: {v}")
        if self.policy_dir and not Path(self.policy_dir).is_dir():
            raise ValueError(f"data.policy_dir: directory not found: {self.policy_dir}")


@dataclass
class PolicyConfig:
    hidden: PosInt = 256  # tanh-Gaussian MLP width (2 hidden layers)
    lr: PosFloat = 1e-4  # Adam learning rate
    weight_decay: NonNegFloat = 5e-3  # Adam weight decay (paper code)
    steps: PosInt = 10_000  # gradient steps (the paper runs 1M)
    batch_size: PosInt = 256  # per data source


@dataclass
class ILIDConfig:
    sigma: Prob = 0.4  # expert-likeness threshold on d(s) (paper's `bar`)
    rollback: PosInt = 20  # K: look-ahead window of resultant states (same episode only)
    use_beta: bool = True  # gate the D_s term by beta = 1[d(s) <= sigma] (the public code skips it)
    # alpha = D/(1-D) from the clipped D(s, a) (in [1/9, 9], as the paper); false: from the
    # network's raw logit, exp(logit) (an ablation; the training loss stays clipped)
    clip_alpha: bool = True
    disc_hidden: PosInt = 256  # width of d(s) and D(s,a)
    disc_lr: PosFloat = 1e-4  # Adam lr of both discriminators (paper: 1e-5 for 100k steps)
    disc_weight_decay: NonNegFloat = 5e-3  # Adam weight decay of both discriminators
    disc_steps: PosInt = 2_000  # gradient steps of each discriminator (paper: 100k)
    disc_batch: PosInt = 256  # per side
    clip: tuple[float, float] = (0.1, 0.9)  # discriminator output clip


@dataclass
class BaselineConfig:
    dwbc_alpha: NonNegFloat = 7.5  # DWBC's weight on the plain expert BC term
    dwbc_eta: Prob = 0.5  # DWBC's PU-learning class prior
    iswbc_grad_penalty: NonNegFloat = 1.0  # ISW-BC's gradient-penalty coefficient (its code: 1)
    iswbc_tau: NonNegFloat = 0.0  # ISW-BC: weights below tau are set to 0 (its code: 0)
    # ISW-BC's c(s, a) output clip: its code has none (an epsilon of 1e-3 in the weight bounds
    # the weights below by ~1e-3); ILID's [0.1, 0.9] would bound c / (1 - c) to [1/9, 9], which
    # leaves ~90% of the loss weight on D_b's rows when D_b is 1,000x D_e
    iswbc_clip: tuple[float, float] = (0.001, 0.999)
    # ISW-BC's loss -E_{D_u}[w log pi] estimated with D_e's and D_b's rows in batches of their own,
    # each row's weight scaled by its part's share of D_u (the same expected loss; with D_b
    # 1,000x D_e a uniform batch of D_u, as its code draws, holds ~0.1 expert rows); false:
    # one uniform batch of D_u
    iswbc_stratified: bool = True
    # ISW-BC's weights divided by their mean over D_u (self-normalised importance weights: the same
    # minimiser). Its code's Adam has no weight decay, so the loss's scale does not matter there;
    # here every arm's Adam has the policy's L2 weight decay, and unnormalised weights (mean over
    # D_e's rows ~0.24 once scaled by D_e's share) leave the decay pulling the policy to action 0
    iswbc_normalise: bool = True


@dataclass
class TrainConfig:
    method: Literal["ilid", "bc_expert", "bc_all", "dwbc", "iswbc"] = "ilid"  # what to train
    seed: int = 0  # networks, batches
    # where the networks train: cpu, cuda[:N] or auto (evaluation rollouts step MuJoCo on the CPU;
    # a CUDA generator draws other batches than the CPU one, so a seed differs across devices)
    device: str = "cpu"
    data: DataConfig = field(default_factory=DataConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    ilid: ILIDConfig = field(default_factory=ILIDConfig)
    baselines: BaselineConfig = field(default_factory=BaselineConfig)
    eval_every: PosInt = 2_000  # policy steps between evaluations (learning curve)
    eval_episodes: PosInt = 10  # deterministic episodes per evaluation
    ckpt_every: PosInt = 2_000  # policy steps between resumable checkpoints

    def validate(self) -> None:
        lo, hi = self.ilid.clip
        if not 0 < lo < hi < 1:
            raise ValueError(f"ilid.clip must satisfy 0 < lo < hi < 1, got {self.ilid.clip}")
        if not lo <= self.ilid.sigma <= hi:
            raise ValueError(f"ilid.sigma={self.ilid.sigma} outside the clip {self.ilid.clip}")
        lo, hi = self.baselines.iswbc_clip
        if not 0 < lo < hi < 1:
            raise ValueError(f"baselines.iswbc_clip must satisfy 0 < lo < hi < 1, got "
                             f"{self.baselines.iswbc_clip}")
        if self.ilid.rollback < 1:
            raise ValueError("ilid.rollback (K) must be >= 1")
        if self.policy.steps < 1 or self.eval_every < 1 or self.eval_episodes < 1:
            raise ValueError("policy.steps, eval_every and eval_episodes must be >= 1")
