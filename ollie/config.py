"""Typed configs of OLLIE's two phases, the baselines and the data (YAML -> dataclasses).

Convention used throughout: an online discriminator outputs D(s, a) = P(policy | s, a), i.e. the
policy's samples are labelled 1 and the expert's 0 (the paper's Sec. 4 form of D⁰).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DataConfig", "OfflineConfig", "OnlineConfig", "BaselineConfig", "TrainConfig",
           "PRETRAIN", "load_train_config"]

PRETRAIN = ("ollie", "bc_expert", "bc_all", "dwbc", "none")  # offline phases (none: random pi⁰)


@dataclass
class DataConfig:
    env_id: str = "Hopper-v5"  # gymnasium MuJoCo env the datasets come from
    n_expert: int = 1  # expert trajectories in D_e
    n_random: int = 1000  # random trajectories in D_s (official default)
    n_expert_in_s: int = 1  # expert trajectories mixed into D_s (official `num_s_e`)
    n_medium_in_s: int = 0  # medium-policy trajectories in D_s (0 in the paper's default)
    expert_subsample: int = 1  # keep every k-th D_e transition (10 = demonstration-scarce)
    data_seed: int = 0  # seed of the dataset rollouts (fixed across training seeds)
    policy_dir: str = ""  # expert/medium policy files; '' = shared/il/policies
    expert_file: str = ""  # a D4RL-layout HDF5 (or Minari dir) to use as D_e instead
    imperfect_file: str = ""  # a D4RL-layout HDF5 (or Minari dir) to use as D_s instead
    max_episode_steps: int = 1000  # episode cap of the rollouts


@dataclass
class OfflineConfig:
    hidden: int = 256  # width of every offline network (2 hidden layers; nu/y get 3 as in code)
    # Step 1: d(s,a) of D_e vs D_s (Sec. 4.1).
    # 'pu': positive-unlabelled (official default, DWBC's loss); 'bce': D_e (1) vs D_o (0) with
    # balanced batches, whose optimum d/(1-d) = ρ_e/ρ_o is what R̃ = log d/(1-d) stands for.
    # PU's optimum is not ρ_e/ρ_o: on expert rows it runs to the upper clip whatever their share.
    disc_loss: Literal["pu", "bce"] = "pu"
    pu_eta: float = 0.5  # PU class prior eta
    disc_lr: float = 1e-4  # Adam lr (official 1e-5 for 100k steps)
    disc_weight_decay: float = 5e-3  # Adam weight decay (official)
    disc_steps: int = 5_000  # gradient steps (official 100k)
    disc_batch: int = 256  # per side
    # clip of OLLIE's d (official (0.1, 0.9)). R̃ = logit d then spans logit(hi) - logit(lo), and
    # y's mass on expert rows can only approach 1 if that exceeds log(1 / expert rows' share of
    # D_o) by a margin (HalfCheetah's data: 2% of rows, log 50 = 3.9 against 4.4 here;
    # configs/ollie/halfcheetah.yaml widens it, results/ollie/NOTES.md)
    disc_clip: tuple[float, float] = (0.1, 0.9)
    clip: tuple[float, float] = (0.1, 0.9)  # clip of DWBC's discriminator (official)
    # Step 2: saddle point over nu(s) and y(s,a) >= 0 (Sec. 4.2).
    gamma: float = 0.99  # discount
    dice_lr: float = 3e-4  # Adam lr of nu and y (official qf_lr)
    # Adam lr of nu's constant mode b (nu = MLP + b / (1 - gamma), dice.NuNet): it sets E_o[y] = 1,
    # which an MLP output reaches only after its bias travels to ~R̃ / (1 - gamma); 0 = b stays 0
    # (nu is the MLP alone). Needed once R̃'s range is wide (halfcheetah.yaml): without it the
    # saddle point diverged there; on Hopper's data it did not help (results/ollie/NOTES.md).
    nu_offset_lr: float = 0.0
    # true: terminations enter an absorbing state with reward logit(disc_clip lo) (shifted as R̃ is),
    # as DemoDICE's data do; false: a termination ends the flow (see dice.saddle_objective). Off
    # by default: its extra ν learns slowly (with reward_shift none, Hopper --quick scored 11
    # with it vs 108 without; results/ollie/NOTES.md).
    absorbing: bool = False
    # R̃ as the saddle point sees it: 'min' = logit d - logit(disc_clip lo) >= 0 (the least
    # expert-like row earns 0, so ending a trajectory never gains reward: a termination is worth
    # what the worst transition is worth forever, as with an absorbing state of that reward);
    # 'minmax' = the official min-max scaling of logit d over D_o to [0, 1]; 'none' = logit d
    # (negative on D_s, which makes falling early pay: see dice.py).
    reward_shift: Literal["min", "minmax", "none"] = "min"
    # y's update: 'ascent' = gradient ascent on L (the paper); 'regression' = fit log y to
    # δ_ν - 1 (the same fixed point, each row's step divided by y: no collapse when y is small;
    # dice.y_regression_loss); 'dual' = ν minimises the closed-form inner max over
    # 0 <= y <= e^log_y_max (dice.dual_objective: no descent-ascent) and log y is fitted to its
    # maximiser min(δ_ν - 1, log_y_max). Not with absorbing.
    y_update: Literal["ascent", "regression", "dual"] = "ascent"
    dice_beta1: float = 0.5  # Adam beta1 of nu and y (0.9 cycles in gradient descent-ascent)
    dice_steps: int = 20_000  # gradient steps (official 1M, shared with extraction)
    dice_batch: int = 256  # D_o batch (and p0 batch)
    log_y_max: float = 5.0  # log y clamped to [-log_y_max - 5, log_y_max] (y = exp, positive)
    # Step 3: y-weighted BC (Sec. 4.3).
    policy_lr: float = 1e-4  # Adam lr (official 3e-5 for 1M steps)
    policy_weight_decay: float = 0.0  # Adam weight decay
    policy_steps: int = 20_000  # gradient steps
    policy_batch: int = 256  # D_o batch
    # 'resample': batches drawn from D_o with probability ∝ y, equal weights (the same objective
    # E_o[y log π]; the batch holds ~B·(y's mass) rows where y is large); 'uniform': uniform
    # batches weighted by y / batch mean (official code; ~B·(those rows' share) of them)
    extraction: Literal["resample", "uniform"] = "uniform"
    # Low-y cut (a deviation from the paper; 0 = off, the paper's plain y-weighted BC): y is set
    # to 0 on every D_o row whose y is below extraction_y_cut × y's extraction_y_cut_quantile
    # over D_e (the rows the method knows are expert), in both batching modes. On HalfCheetah
    # the ~1% of y's mass left on D_s's random rows bent the policy (zeroing it by the labels:
    # score 19.1 -> 64.6, results/ollie/NOTES.md). In [0, 1]: at most that quantile of D_e is cut.
    extraction_y_cut: float = 0.0
    extraction_y_cut_quantile: float = 0.05  # the quantile of y over D_e the cut scales, [0, 1]


@dataclass
class OnlineConfig:
    env_steps: int = 100_000  # online interaction budget
    n_envs: int = 4  # parallel environments (sync)
    rollout_steps: int = 512  # steps per env per PPO iteration
    gamma: float = 0.99  # discount
    gae_lambda: float = 0.95  # GAE lambda
    clip_eps: float = 0.2  # PPO ratio clip
    epochs: int = 10  # PPO epochs per iteration
    minibatch: int = 256  # PPO minibatch
    policy_lr: float = 3e-5  # Adam lr of the policy (finetuning a pretrained one; official 3e-5)
    target_kl: float = 0.02  # PPO's KL budget per iteration (approx. KL(old || new))
    # 'minibatch': the policy stops before the first minibatch whose KL to the rollout policy
    # exceeds 1.5 target_kl (as Stable-Baselines3); 'epoch': the epochs stop once the whole
    # batch's KL exceeds target_kl after an epoch (the first epoch always runs whole: on a sharp
    # pretrained policy it reached KL 4-24 and unlearned, results/ollie/NOTES.md)
    kl_check: Literal["minibatch", "epoch"] = "minibatch"
    value_lr: float = 3e-4  # Adam lr of the value function
    value_hidden: int = 256  # value MLP width
    value_warmup_epochs: int = 20  # value-only epochs on the first batch (every arm alike)
    max_grad_norm: float = 0.5  # gradient-norm clip
    entropy_coef: float = 0.0  # entropy bonus (tanh-Gaussian: estimated from samples)
    # Reward from D = P(policy | s,a): 'positive' = -log D (the -log(1 - D_expert) form, >= 0,
    # a survival bonus); 'negative' = log(1 - D) (the log D_expert form, <= 0).
    reward: Literal["positive", "negative"] = "positive"
    # Initial online discriminator: 'aligned' = D⁰ from OLLIE's d and y (Sec. 4.4; needs
    # pretrain 'ollie'), 'random' = a freshly initialised network (GAIL's usual start).
    discriminator: Literal["aligned", "random"] = "aligned"
    # Termination as an absorbing state (DAC): a fall bootstraps the value of staying in an
    # absorbing state forever, valued with the discriminator's most policy-like output.
    absorbing: bool = True
    disc_lr: float = 1e-4  # Adam lr of the online discriminator
    disc_epochs: int = 1  # passes over each iteration's rollout batch
    disc_batch: int = 256  # per side
    disc_hidden: int = 256  # width of a freshly initialised (random) discriminator
    eval_every: int = 10_000  # env steps between evaluations (learning curve)
    ckpt_every: int = 1  # PPO iterations between resumable checkpoints


@dataclass
class BaselineConfig:
    bc_lr: float = 1e-4  # BC-E / BC-all / DWBC policy lr
    bc_steps: int = 20_000  # policy steps of every offline baseline (= OLLIE's extraction)
    bc_batch: int = 256  # batch
    bc_weight_decay: float = 0.0  # Adam weight decay
    dwbc_alpha: float = 7.5  # DWBC's weight on plain expert BC
    dwbc_eta: float = 0.5  # DWBC's PU class prior


@dataclass
class TrainConfig:
    # Offline phase that makes pi⁰; the online phase (GAIL + PPO) follows when online.env_steps
    # > 0. OLLIE = ollie + aligned; GAIL from scratch = none + random (see README's arms).
    pretrain: Literal["ollie", "bc_expert", "bc_all", "dwbc", "none"] = "ollie"
    seed: int = 0  # networks, batches, online env resets
    device: str = "cpu"  # cpu | cuda | auto (MuJoCo steps on the CPU)
    data: DataConfig = field(default_factory=DataConfig)
    offline: OfflineConfig = field(default_factory=OfflineConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    baselines: BaselineConfig = field(default_factory=BaselineConfig)
    eval_episodes: int = 10  # deterministic episodes per evaluation
    offline_eval_every: int = 5_000  # offline policy steps between evaluations
    offline_ckpt_every: int = 2_000  # offline steps between resumable checkpoints
    policy_hidden: int = 256  # tanh-Gaussian policy width (2 hidden layers)

    def validate(self) -> None:
        for k in ("clip", "disc_clip"):
            lo, hi = getattr(self.offline, k)
            if not 0 < lo < hi < 1:
                raise ValueError(f"offline.{k} must satisfy 0 < lo < hi < 1, got "
                                 f"{getattr(self.offline, k)}")
        if not 0 < self.offline.gamma < 1 or not 0 < self.online.gamma < 1:
            raise ValueError("offline.gamma and online.gamma must lie in (0, 1)")
        if not 0 <= self.online.gae_lambda <= 1:
            raise ValueError("online.gae_lambda must lie in [0, 1]")
        if not 0 < self.offline.pu_eta <= 1:
            raise ValueError("offline.pu_eta must lie in (0, 1]")
        if self.data.n_expert < 1 or self.data.expert_subsample < 1:
            raise ValueError("data.n_expert and data.expert_subsample must be >= 1")
        if min(self.online.n_envs, self.online.rollout_steps, self.online.minibatch,
               self.online.epochs, self.eval_episodes, self.online.eval_every) < 1:
            raise ValueError("online.n_envs, rollout_steps, minibatch, epochs, eval_every and "
                             "eval_episodes must be >= 1")
        if self.online.env_steps < 0:
            raise ValueError("online.env_steps must be >= 0")
        for k in ("disc_steps", "dice_steps", "policy_steps"):
            if getattr(self.offline, k) < 1:
                raise ValueError(f"offline.{k} must be >= 1")
        for k in ("extraction_y_cut", "extraction_y_cut_quantile"):
            v = getattr(self.offline, k)
            if not 0 <= v <= 1:  # also refuses nan
                raise ValueError(f"offline.{k} must lie in [0, 1], got {v}")
        if self.offline.y_update != "ascent" and self.offline.absorbing:
            raise ValueError(f"offline.y_update={self.offline.y_update} does not support "
                             "offline.absorbing")
        if self.online.discriminator == "aligned" and self.pretrain != "ollie":
            raise ValueError(f"online.discriminator=aligned needs pretrain=ollie (D⁰ is built "
                             f"from OLLIE's d and y), not pretrain={self.pretrain}")
        if self.baselines.bc_steps < 1:
            raise ValueError("baselines.bc_steps must be >= 1")


QUICK_OVERLAY = "configs/ollie/quick.yaml"


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_train_config(path: str | None, overrides: list[str] | None = None,
                      quick: bool = False) -> TrainConfig:
    """YAML `path` -> TrainConfig; with `quick`, `configs/ollie/quick.yaml` is laid over it
    before the `key=value` overrides (an explicit override always wins). Validated."""
    from shared.config import apply_overrides, from_dict, read_yaml
    from shared.errors import ConfigError

    data = read_yaml(path) if path else {}
    if quick:
        data = _merge(data, read_yaml(QUICK_OVERLAY))
    source = path or "<defaults>"
    try:
        cfg = from_dict(TrainConfig, apply_overrides(data, overrides))
        cfg.validate()
    except (ConfigError, ValueError) as e:
        raise ConfigError(f"{source}: {e}") from None
    return cfg
