"""The two datasets ILID learns from: D_e (a few expert episodes) and D_b (imperfect, unlabeled).

Built from `shared.il` (SAC expert / medium policies rolled out on gymnasium MuJoCo v5 envs, in
D4RL's layout), or read from user files (`expert_file` / `imperfect_file`: a D4RL-layout HDF5
file or a Minari dataset directory). The expert episodes of D_e use a different rollout seed from
anything in D_b. `selection_quality` scores a selection against ground truth: the share of
selected transitions that come from D_b episodes with a return above D_b's median episode return.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from offline_il_select.config import DataConfig
from shared.errors import DataError
from shared.il.datasets import (
    concat_datasets,
    episode_ids,
    episode_returns,
    load_d4rl_hdf5,
    load_minari,
    validate_dataset,
)
from shared.il.demos import Demos
from shared.il.envs import make_env
from shared.il.generate import dataset, reference_returns

__all__ = ["ILData", "build_data", "dataset_specs", "generate_spec", "load_user_dataset",
           "selection_quality", "state_stats"]


class ILData(Demos):
    """D_e and D_b (`imperfect`) with their reference returns."""


def load_user_dataset(path: str | Path) -> dict[str, np.ndarray]:
    """A D4RL-layout HDF5 file, or a Minari dataset directory."""
    path = Path(path)
    if path.is_dir():
        return load_minari(path)[0]
    return load_d4rl_hdf5(path)[0]


def dataset_specs(cfg: DataConfig) -> dict[str, list[tuple]]:
    """The `shared.il.generate.dataset` calls behind D_e and D_b: {'expert': [...], 'imperfect':
    [...]}, each a list of (env_id, kind, episodes, seed) (empty where a user file is given)."""
    seed, env = cfg.data_seed, cfg.env_id
    expert = [] if cfg.expert_file else [(env, "expert", cfg.n_expert, 1_000_000 + seed)]
    if cfg.imperfect_file:
        imperfect = []
    elif cfg.imperfect == "random":
        imperfect = [(env, "random", cfg.n_random, seed)]
    elif cfg.imperfect == "medium_random":
        imperfect = [(env, "medium", cfg.n_medium, 2_000_000 + seed),
                     (env, "random", cfg.n_random, seed)]
    else:
        imperfect = [(env, "noisy_expert", cfg.n_noisy, 3_000_000 + seed)]
    return {"expert": expert, "imperfect": imperfect}


def generate_spec(spec: tuple, cfg: DataConfig) -> dict[str, np.ndarray]:
    """Roll out (or read from the cache) one (env_id, kind, episodes, seed) dataset."""
    return dataset(*spec, cfg.policy_dir or None, cfg.max_episode_steps)


def build_data(cfg: DataConfig) -> ILData:
    """D_e and D_b for `cfg` (rollouts are cached; each part deterministic for data_seed)."""
    specs = dataset_specs(cfg)
    if cfg.expert_file:
        expert = load_user_dataset(cfg.expert_file)
    else:
        expert = generate_spec(specs["expert"][0], cfg)
    if cfg.imperfect_file:
        imperfect = load_user_dataset(cfg.imperfect_file)
        desc = f"D_b from {cfg.imperfect_file}"
    else:
        parts = [generate_spec(sp, cfg) for sp in specs["imperfect"]]
        imperfect = parts[0] if len(parts) == 1 else concat_datasets(*parts)
        desc = {"random": f"{cfg.n_expert} expert + {cfg.n_random} random episodes",
                "medium_random": f"{cfg.n_expert} expert + {cfg.n_medium} medium + "
                                 f"{cfg.n_random} random episodes",
                "noisy": f"{cfg.n_expert} expert + {cfg.n_noisy} noisy-expert episodes"
                }[cfg.imperfect]
    expert, imperfect = validate_dataset(expert, "D_e"), validate_dataset(imperfect, "D_b")
    if expert["observations"].shape[1] != imperfect["observations"].shape[1]:
        raise DataError(f"D_e states have {expert['observations'].shape[1]} dims but D_b's have "
                        f"{imperfect['observations'].shape[1]}")
    if expert["actions"].shape[1] != imperfect["actions"].shape[1]:
        raise DataError(f"D_e actions have {expert['actions'].shape[1]} dims but D_b's have "
                        f"{imperfect['actions'].shape[1]}")
    check_env_shapes(expert, cfg.env_id, "D_e")
    ref = reference_returns(cfg.env_id, cfg.policy_dir or None)
    return ILData(expert, imperfect, cfg.env_id, ref["random"], ref["expert"], desc)


def check_env_shapes(data: dict[str, np.ndarray], env_id: str, name: str) -> None:
    """The dataset's state and action sizes must be the environment's (the policy is evaluated
    there): a DataError naming both, before any training."""
    env = make_env(env_id)
    try:
        obs, act = env.observation_space.shape, env.action_space.shape
    finally:
        env.close()
    for key, want in (("observations", obs), ("actions", act)):
        got = data[key].shape[1:]
        if tuple(got) != tuple(want):
            raise DataError(f"{name} {key} have shape {tuple(got)} per step but {env_id} "
                            f"expects {tuple(want)} (data.env_id matches the dataset?)")


def state_stats(data: ILData) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (S,) of the states of D_e ∪ D_b (ILID normalises with these)."""
    s = np.concatenate([data.expert["observations"], data.imperfect["observations"]])
    return s.mean(0), s.std(0)


def selection_quality(imperfect: dict[str, np.ndarray], selected: np.ndarray) -> float:
    """Share of selected transitions whose D_b episode returns more than D_b's median episode."""
    rets = episode_returns(imperfect)
    good = rets > np.median(rets)
    sel = np.asarray(selected, bool)
    if not sel.any():
        return float("nan")
    return float(good[episode_ids(imperfect)][sel].mean())
