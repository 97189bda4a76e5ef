"""The two datasets ILID learns from: D_e (a few expert trajectories) and D_b (imperfect data).

Composed as the paper's code composes them (`get_datasets` in its `main.py`): D_e = the first
`n_expert` trajectories of an expert dataset; D_b = the first `n_s` trajectories of a source
dataset (random / medium / medium-replay / noisy) followed by the next `n_s_expert` trajectories of
the expert dataset, which D_e does not hold. `pick='sampled'` takes a seeded permutation of the
trajectories instead of the first ones. The datasets are `shared.il` rollouts of the committed
SAC policies on gymnasium MuJoCo v5 envs (expert data sampled from the stochastic expert, as
D4RL's), or user files (`expert_file` / `imperfect_file`: a D4RL-layout HDF5 file or a Minari
dataset directory), cut to the same counts; a count larger than the file is an error.
`selection_quality` scores a selection against ground truth: the share of selected transitions
that come from D_b episodes with a return above D_b's median episode return.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from offline_il_select.config import DataConfig
from shared.errors import DataError
from shared.il.datasets import (
    concat_datasets,
    episode_bounds,
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
           "pick_trajectories", "cut_trajectories", "compose", "references",
           "selection_quality", "state_stats", "check_env_shapes", "env_shapes"]

SOURCE_KINDS = {"random": "random", "medium": "medium", "medium_replay": "medium_replay",
                "noisy": "noisy_expert"}  # config source -> shared.il dataset kind
SOURCE_SEEDS = {"random": 0, "medium": 2_000_000, "medium_replay": 4_000_000,
                "noisy": 3_000_000}  # rollout seed offsets: no two datasets share an episode
EXPERT_SEED = 1_000_000


@dataclass
class ILData(Demos):
    """D_e and D_b (`imperfect`) with their reference returns: `ref_random` / `ref_expert` give
    the primary normalised score (expert = the deterministic expert, evaluated as the imitating
    policies are), `refs` every reference by name: {'ours': (random, deterministic expert),
    'd4rl': D4RL's published (random, expert), 'sampled': (random, sampled expert)}."""

    refs: dict = field(default_factory=dict)
    # (N_b,) bool: which D_b rows come from its expert trajectories (ground truth for reports;
    # no method sees it)
    imperfect_is_expert: np.ndarray | None = None


def load_user_dataset(path: str | Path) -> dict[str, np.ndarray]:
    """A D4RL-layout HDF5 file, or a Minari dataset directory."""
    path = Path(path)
    if path.is_dir():
        return load_minari(path)[0]
    return load_d4rl_hdf5(path)[0]


def dataset_specs(cfg: DataConfig) -> dict[str, list[tuple]]:
    """The `shared.il.generate.dataset` calls behind D_e and D_b: {'expert': [...], 'source':
    [...]}, each a list of (env_id, kind, episodes, seed) (empty where a user file is given).
    One expert rollout serves D_e and D_b's expert trajectories, as one expert file does."""
    seed, env = cfg.data_seed, cfg.env_id
    expert = [] if cfg.expert_file else [
        (env, "expert", cfg.n_expert + cfg.n_s_expert, EXPERT_SEED + seed)]
    source = [] if cfg.imperfect_file else [
        (env, SOURCE_KINDS[cfg.source], cfg.n_s, SOURCE_SEEDS[cfg.source] + seed)]
    return {"expert": expert, "source": source}


def generate_spec(spec: tuple, cfg: DataConfig, parts: int = 1, map_fn=map
                  ) -> dict[str, np.ndarray]:
    """Roll out (or read from the cache) one (env_id, kind, episodes, seed) dataset; `parts` >
    1 rolls it out in that many slices of episodes through `map_fn` (a pool's `map`)."""
    return dataset(*spec, cfg.policy_dir or None, cfg.max_episode_steps, parts=parts,
                   map_fn=map_fn)


def pick_trajectories(data: dict[str, np.ndarray], n: int, pick: str, seed: int,
                      name: str) -> list[int]:
    """Indices of the `n` trajectories to cut from `data` (episode order): the first n, or the
    first n of a permutation seeded by `seed`. More than the data holds is a DataError naming
    `name` (the file or dataset) and both counts."""
    have = len(episode_bounds(data))
    if n > have:
        raise DataError(f"{name}: holds {have} trajectories, fewer than the {n} asked for")
    order = np.arange(have) if pick == "first" else np.random.default_rng(seed).permutation(have)
    return order[:n].tolist()


def cut_trajectories(data: dict[str, np.ndarray], which: list[int]) -> dict[str, np.ndarray]:
    """The transitions of trajectories `which` (indices in episode order), in that order, each
    closed by a timeout where it has no end flag (a file's last, cut-off trajectory), so that
    reordered trajectories never merge."""
    bounds = episode_bounds(data)
    rows = np.concatenate([np.arange(*bounds[i]) for i in which]).astype(np.int64)
    out = {k: v[rows] for k, v in data.items()}
    last = np.cumsum([bounds[i][1] - bounds[i][0] for i in which]) - 1
    out["timeouts"] = out["timeouts"].copy()
    out["timeouts"][last[~out["terminals"][last]]] = True
    return out


def compose(expert_data: dict[str, np.ndarray], source_data: dict[str, np.ndarray],
            cfg: DataConfig, expert_name: str = "expert data", source_name: str = "source data"
            ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """(D_e, D_b, D_b's expert-row mask) from the expert and source datasets, as the paper's
    `get_datasets`: D_e = the first n_expert picked expert trajectories, D_b = n_s picked source
    trajectories followed by the next n_s_expert picked expert trajectories."""
    ex = pick_trajectories(expert_data, cfg.n_expert + cfg.n_s_expert, cfg.pick,
                           cfg.data_seed, f"{expert_name} (n_expert + n_s_expert)")
    src = pick_trajectories(source_data, cfg.n_s, cfg.pick, cfg.data_seed + 1,
                            f"{source_name} (n_s)")
    d_e = cut_trajectories(expert_data, ex[:cfg.n_expert])
    d_b = cut_trajectories(source_data, src)
    n_source = len(d_b["rewards"])
    if cfg.n_s_expert:
        d_b = concat_datasets(d_b, cut_trajectories(expert_data, ex[cfg.n_expert:]))
    return d_e, d_b, np.arange(len(d_b["rewards"])) >= n_source


def references(env_id: str, policy_dir: str | None = None) -> dict[str, tuple[float, float]]:
    """{'ours': (random, deterministic expert), 'd4rl': D4RL's (random, expert), 'sampled':
    (random, sampled expert)} returns of `env_id`."""
    ref = reference_returns(env_id, policy_dir)
    if "expert_deterministic" not in ref:
        raise DataError(f"reference returns of {env_id} lack 'expert_deterministic' (run python "
                        "-m shared.il.generate --deterministic-references)")
    return {"ours": (ref["random"], ref["expert_deterministic"]),
            "d4rl": (ref["d4rl_random"], ref["d4rl_expert"]),
            "sampled": (ref["random"], ref["expert"])}


def _keys(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The D4RL keys only (a rollout also carries infos/*, which files may lack)."""
    return {k: v for k, v in data.items() if not k.startswith("infos/")}


def build_data(cfg: DataConfig) -> ILData:
    """D_e and D_b for `cfg` (rollouts are cached; each part deterministic for data_seed).
    User files are read, checked against the environment and cut before any rollout."""
    specs = dataset_specs(cfg)
    env_obs, env_act = env_shapes(cfg.env_id)
    files = {}
    for key, path in (("expert", cfg.expert_file), ("source", cfg.imperfect_file)):
        if path:
            files[key] = validate_dataset(load_user_dataset(path), path)
            check_env_shapes(files[key], cfg.env_id, path, (env_obs, env_act))
    expert = files.get("expert") or generate_spec(specs["expert"][0], cfg)
    source = files.get("source") or generate_spec(specs["source"][0], cfg)
    expert, source = _keys(expert), _keys(source)
    d_e, d_b, is_expert = compose(expert, source, cfg, cfg.expert_file or "expert rollout",
                       cfg.imperfect_file or f"{cfg.source} rollout")
    d_e, d_b = validate_dataset(d_e, "D_e"), validate_dataset(d_b, "D_b")
    for name, d in (("D_e", d_e), ("D_b", d_b)):
        check_env_shapes(d, cfg.env_id, name, (env_obs, env_act))
    refs = references(cfg.env_id, cfg.policy_dir or None)
    src = cfg.imperfect_file or f"{cfg.source} rollouts"
    desc = (f"D_e: {cfg.n_expert} expert; D_b: {cfg.n_s} of {src} + {cfg.n_s_expert} expert "
            f"trajectories ({cfg.pick})")
    return ILData(d_e, d_b, cfg.env_id, *refs["ours"], desc, refs, is_expert)


def env_shapes(env_id: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(observation shape, action shape) of `env_id`."""
    env = make_env(env_id)
    try:
        return tuple(env.observation_space.shape), tuple(env.action_space.shape)
    finally:
        env.close()


def check_env_shapes(data: dict[str, np.ndarray], env_id: str, name: str,
                     shapes: tuple[tuple[int, ...], tuple[int, ...]] | None = None) -> None:
    """The dataset's state and action sizes must be the environment's (the policy is evaluated
    there): a DataError naming the dataset (file) and both shapes, before any training."""
    obs, act = shapes or env_shapes(env_id)
    for key, want in (("observations", obs), ("actions", act)):
        got = data[key].shape[1:]
        if tuple(got) != tuple(want):
            raise DataError(f"{name}: {key} have shape {tuple(got)} per step but {env_id} "
                            f"expects {tuple(want)} (data.env_id matches the dataset?)")


def state_stats(data: ILData, eps: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std + eps (S,) of the states of D_e ∪ D_b, D_b's expert trajectories included
    (as the paper's code: `np.std(states_o, 0) + 1e-3`)."""
    s = np.concatenate([data.expert["observations"], data.imperfect["observations"]])
    return s.mean(0), s.std(0) + eps


def selection_quality(imperfect: dict[str, np.ndarray], selected: np.ndarray) -> float:
    """Share of selected transitions whose D_b episode returns more than D_b's median episode."""
    rets = episode_returns(imperfect)
    good = rets > np.median(rets)
    sel = np.asarray(selected, bool)
    if not sel.any():
        return float("nan")
    return float(good[episode_ids(imperfect)][sel].mean())
