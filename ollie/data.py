"""OLLIE's datasets: D_e (a few expert trajectories) and D_s (many imperfect, unlabelled ones).

The paper's default (Sec. 6; official `get_datasets`): D_e = 1 expert trajectory, D_s = 1,000
random trajectories + 1 expert trajectory, D_o = D_e ∪ D_s. Built from `shared.il` rollouts of
the committed SAC policies on gymnasium MuJoCo v5 (expert data samples the stochastic expert, as
D4RL's did), or read from user files (D4RL-layout HDF5 or a Minari directory). The
demonstration-scarce variant keeps every k-th transition of D_e (`expert_subsample: 10`).

Out-of-family evaluation: `make_perturbed_env` builds the same task with dynamics outside the
data's range (scaled body masses and friction). No dataset, training step or model choice ever
sees it; the bench only evaluates finished policies there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ollie.config import DataConfig
from shared.errors import DataError
from shared.il.datasets import (
    concat_datasets,
    episode_bounds,
    load_d4rl_hdf5,
    load_minari,
    validate_dataset,
)
from shared.il.demos import Demos
from shared.il.envs import PERTURBATIONS, make_env, make_perturbed_env
from shared.il.generate import dataset, reference_returns

__all__ = ["OLLIEData", "build_data", "dataset_specs", "state_stats", "initial_states",
           "subsample", "make_perturbed_env", "PERTURBATIONS"]



class OLLIEData(Demos):
    """D_e and D_s (`imperfect`) with their reference returns."""

    @property
    def union(self) -> dict[str, np.ndarray]:
        """D_o = D_e ∪ D_s (D_e rows first)."""
        return concat_datasets(self.expert, self.imperfect)


def dataset_specs(cfg: DataConfig) -> dict[str, list[tuple]]:
    """The `shared.il.generate.dataset` calls behind D_e and D_s, each (env, kind, n, seed). D_e's
    expert rollouts use a seed disjoint from D_s's expert trajectories."""
    s, env = cfg.data_seed, cfg.env_id
    expert = [] if cfg.expert_file else [(env, "expert", cfg.n_expert, 1_000_000 + s)]
    imperfect = []
    if not cfg.imperfect_file:
        if cfg.n_random:
            imperfect.append((env, "random", cfg.n_random, s))
        if cfg.n_medium_in_s:
            imperfect.append((env, "medium", cfg.n_medium_in_s, 2_000_000 + s))
        if cfg.n_expert_in_s:
            imperfect.append((env, "expert", cfg.n_expert_in_s, 4_000_000 + s))
    return {"expert": expert, "imperfect": imperfect}


def _load_user(path: str) -> dict[str, np.ndarray]:
    p = Path(path)
    return load_minari(p)[0] if p.is_dir() else load_d4rl_hdf5(p)[0]


def subsample(data: dict[str, np.ndarray], every: int) -> dict[str, np.ndarray]:
    """Every `every`-th transition of each episode (its own next state kept)."""
    if every == 1:
        return data
    bounds = episode_bounds(data)
    keep = np.concatenate([np.arange(a, b)[::every] for a, b in bounds])
    out = {k: v[keep] for k, v in data.items()}
    # the last kept row of each episode closes it (as a timeout if its terminal row was dropped)
    last = np.cumsum([len(range(a, b)[::every]) for a, b in bounds]) - 1
    out["timeouts"][last] |= ~out["terminals"][last]
    return out


def build_data(cfg: DataConfig) -> OLLIEData:
    """D_e and D_s for `cfg` (rollouts cached; deterministic for data_seed)."""
    make_env(cfg.env_id).close()  # an unknown env id: one ConfigError naming it
    specs = dataset_specs(cfg)

    def gen(sp):
        return dataset(*sp, cfg.policy_dir or None, cfg.max_episode_steps)

    expert = _load_user(cfg.expert_file) if cfg.expert_file else gen(specs["expert"][0])
    if cfg.imperfect_file:
        imperfect = _load_user(cfg.imperfect_file)
        desc = f"D_s from {cfg.imperfect_file}"
    else:
        if not specs["imperfect"]:
            raise DataError("D_s is empty: set data.n_random, n_medium_in_s or n_expert_in_s")
        parts = [gen(sp) for sp in specs["imperfect"]]
        imperfect = parts[0] if len(parts) == 1 else concat_datasets(*parts)
        desc = (f"D_s = {cfg.n_random} random + {cfg.n_medium_in_s} medium + "
                f"{cfg.n_expert_in_s} expert trajectories")
    expert = validate_dataset(expert, "D_e")
    imperfect = validate_dataset(imperfect, "D_s")
    for key in ("observations", "actions"):
        if expert[key].shape[1] != imperfect[key].shape[1]:
            raise DataError(f"D_e {key} have {expert[key].shape[1]} dims but D_s's have "
                            f"{imperfect[key].shape[1]}")
    expert = {k: v for k, v in expert.items() if not k.startswith("infos/")}
    imperfect = {k: v for k, v in imperfect.items() if not k.startswith("infos/")}
    expert = subsample(expert, cfg.expert_subsample)
    desc = (f"D_e = {cfg.n_expert} expert trajectory(ies)"
            + (f" (every {cfg.expert_subsample}th transition)" if cfg.expert_subsample > 1
               else "") + f"; {desc}")
    ref = reference_returns(cfg.env_id, cfg.policy_dir or None)
    return OLLIEData(expert, imperfect, cfg.env_id, ref["random"], ref["expert"], desc)


def state_stats(data: OLLIEData) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (S,) of the states of D_e ∪ D_s (the official normalisation, eps 1e-3
    applied by the normaliser); shared by the offline and the online phase."""
    s = np.concatenate([data.expert["observations"], data.imperfect["observations"]])
    return s.mean(0), s.std(0)


def initial_states(data: dict[str, np.ndarray]) -> np.ndarray:
    """First state of every episode (N_ep, S): samples of p0 for the (1 - gamma) E[nu(s0)] term."""
    return data["observations"][[a for a, _ in episode_bounds(data)]]
