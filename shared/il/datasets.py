"""Offline RL / imitation datasets in D4RL's layout: HDF5 writer, loaders, validation, episodes.

A dataset is a dict of flat arrays over N transitions (D4RL's `get_dataset()` layout):
observations (N, S), actions (N, A), rewards (N,), terminals (N,) bool, timeouts (N,) bool,
next_observations (N, S). An episode ends at a transition whose terminal or timeout flag is set
(the last transition of a file also ends one). Loaders read any D4RL-layout HDF5 file and a Minari
dataset directory (`data/main_data.hdf5` with one group per episode, observations of length T+1);
bad data gets a `DataError` naming the file and the key.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from shared.errors import DataError
from shared.io import atomic_path
from shared.validate import brief, h5_dataset, h5_get, read_json_file

__all__ = ["D4RL_KEYS", "validate_dataset", "write_d4rl_hdf5", "load_d4rl_hdf5", "load_minari",
           "write_minari", "episode_bounds", "episode_ids", "episode_returns", "concat_datasets",
           "take_episodes"]

D4RL_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")
# what h5py raises for a corrupt file: a bad superblock (OSError), an object header it cannot
# decode while iterating a group (KeyError), a broken B-tree (RuntimeError, ValueError)
_H5_ERRORS = (OSError, KeyError, RuntimeError, ValueError)


def validate_dataset(data: dict[str, np.ndarray], source: str = "dataset") -> dict[str, np.ndarray]:
    """Check keys, lengths, ranks and finiteness; return float32/bool copies of the D4RL keys."""
    for k in D4RL_KEYS:
        if k not in data:
            raise DataError(f"{source}: missing key '{k}'")
    arrays: dict[str, np.ndarray] = {}
    for k, rank in (("observations", 2), ("actions", 2), ("next_observations", 2),
                    ("rewards", 1), ("terminals", 1), ("timeouts", 1)):
        a = np.asarray(data[k])
        if a.ndim != rank:
            raise DataError(f"{source}: '{k}' must have rank {rank}, got shape {a.shape}")
        if a.dtype.kind not in "biuf":
            raise DataError(f"{source}: '{k}' must hold numbers, got dtype {a.dtype}")
        arrays[k] = a
    n = len(arrays["observations"])
    for k, a in arrays.items():
        if len(a) != n:
            raise DataError(f"{source}: '{k}' has {len(a)} rows but 'observations' has {n}")
    out: dict[str, np.ndarray] = {}
    for k, a in arrays.items():
        if k in ("terminals", "timeouts"):
            if not np.isin(a, (0, 1)).all():
                raise DataError(f"{source}: '{k}' must hold only 0/1 (false/true) flags")
            out[k] = a.astype(bool)
            continue
        with np.errstate(over="ignore"):
            a = a.astype(np.float32)
        if not np.isfinite(a).all():
            bad = int(np.flatnonzero(~np.isfinite(a).reshape(n, -1).all(1))[0])
            raise DataError(f"{source}: '{k}' has a non-finite value (NaN/inf) at row {bad}")
        out[k] = a
    if out["next_observations"].shape[1] != out["observations"].shape[1]:
        raise DataError(f"{source}: 'next_observations' width {out['next_observations'].shape[1]}"
                        f" != 'observations' width {out['observations'].shape[1]}")
    if n == 0:
        raise DataError(f"{source}: dataset is empty")
    return out


def write_d4rl_hdf5(path: str | Path, data: dict[str, np.ndarray], attrs: dict | None = None
                    ) -> None:
    """Write a validated dataset atomically (gzip), with `attrs` as file attributes."""
    import h5py

    data = validate_dataset(data, str(path))
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for k in D4RL_KEYS:
                f.create_dataset(k, data=data[k], compression="gzip", compression_opts=4)
            for k, v in (attrs or {}).items():
                f.attrs[k] = v


def load_d4rl_hdf5(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a D4RL-layout HDF5 file -> (validated arrays, file attributes).

    Files without `next_observations` (older D4RL files) get them from the following row within
    each episode; the episode's last transition then is dropped, as D4RL's `qlearning_dataset`
    does.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset file not found: {path}")
    src = str(path)
    budget = [64 * path.stat().st_size + (16 << 20)]  # gzip'd columns expand, but not 1000x
    try:
        with h5py.File(path, "r") as f:
            data = {}
            for k in D4RL_KEYS:
                a = h5_dataset(f, k, src, path.stat().st_size, budget)
                if a is not None:
                    data[k] = a
            attrs = {k: _attr_value(v) for k, v in f.attrs.items()}
    except _H5_ERRORS as e:
        raise DataError(f"{path}: not a readable HDF5 file ({brief(e)})") from None
    if "next_observations" not in data and "observations" in data:
        data = _add_next_observations(data, src)
    return validate_dataset(data, src), attrs


def _attr_value(v):
    """An HDF5 attribute as a plain Python value (scalars unwrapped, arrays as lists)."""
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, np.ndarray):
        return v.item() if v.size == 1 else v.tolist()
    return v.item() if isinstance(v, np.generic) else v


def _add_next_observations(data: dict, source: str) -> dict:
    for k in ("terminals", "timeouts"):
        if k not in data:
            raise DataError(f"{source}: missing key '{k}'")
    n = len(data["observations"]) if np.ndim(data["observations"]) else 0
    if n == 0:
        raise DataError(f"{source}: dataset is empty")
    for k in ("terminals", "timeouts"):
        if np.ndim(data[k]) != 1 or len(data[k]) != n:
            raise DataError(f"{source}: '{k}' has shape {np.shape(data[k])}, expected ({n},)")
    ends = np.asarray(data["terminals"], bool) | np.asarray(data["timeouts"], bool)
    # Row t's successor is row t+1 unless t ends an episode; terminal rows keep themselves (their
    # next state is never bootstrapped), timeout rows and the last row have no successor.
    keep = ~np.asarray(data["timeouts"], bool)
    keep[-1] = bool(np.asarray(data["terminals"])[-1])
    nxt = np.empty_like(data["observations"])
    nxt[:-1] = data["observations"][1:]
    nxt[ends] = data["observations"][ends]
    nxt[-1] = data["observations"][-1]
    out = {k: np.asarray(v)[keep] for k, v in data.items() if np.ndim(v) and len(v) == n}
    out["next_observations"] = nxt[keep]
    return out


def write_minari(root: str | Path, data: dict[str, np.ndarray], dataset_id: str,
                 env_id: str, ref_min_score: float | None = None,
                 ref_max_score: float | None = None) -> Path:
    """Export to Minari's on-disk layout: `root/<dataset_id>/data/main_data.hdf5` + metadata.json.

    Each episode is a group `episode_<i>` with observations (T+1, S), actions (T, A), rewards,
    terminations, truncations (T,). This writes the files only (no `minari` import needed).
    """
    import json

    import h5py

    data = validate_dataset(data, dataset_id)
    d = Path(root) / dataset_id
    (d / "data").mkdir(parents=True, exist_ok=True)
    bounds = episode_bounds(data)
    with atomic_path(d / "data" / "main_data.hdf5") as tmp:
        with h5py.File(tmp, "w") as f:
            for i, (s, e) in enumerate(bounds):
                g = f.create_group(f"episode_{i}")
                g.attrs["id"] = i
                g.attrs["total_steps"] = e - s
                obs = np.concatenate([data["observations"][s:e],
                                      data["next_observations"][e - 1:e]])
                g.create_dataset("observations", data=obs)
                g.create_dataset("actions", data=data["actions"][s:e])
                g.create_dataset("rewards", data=data["rewards"][s:e])
                g.create_dataset("terminations", data=data["terminals"][s:e])
                g.create_dataset("truncations", data=data["timeouts"][s:e])
            f.attrs["total_episodes"] = len(bounds)
            f.attrs["total_steps"] = len(data["rewards"])
    meta = {"dataset_id": dataset_id, "env_spec": json.dumps({"id": env_id}),
            "total_episodes": len(bounds), "total_steps": int(len(data["rewards"])),
            "data_format": "hdf5", "minari_version": "0.5.4",
            "ref_min_score": ref_min_score, "ref_max_score": ref_max_score}
    with atomic_path(d / "metadata.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2))
    return d


def load_minari(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a Minari dataset directory -> (D4RL-layout arrays, metadata.json contents).

    `path` is the dataset folder (holding `data/main_data.hdf5`) or the HDF5 file itself. Per
    episode, observations (T+1, S) become observations[:-1] and next_observations[1:].
    """
    import h5py

    path = Path(path)
    file = path / "data" / "main_data.hdf5" if path.is_dir() else path
    if not file.is_file():
        raise DataError(f"Minari data file not found: {file}")
    meta_file = file.parent.parent / "metadata.json"
    meta = read_json_file(meta_file) if meta_file.is_file() else {}
    if not isinstance(meta, dict):
        raise DataError(f"{meta_file}: expected a JSON object")
    src, size = str(file), file.stat().st_size
    budget = [64 * size + (16 << 20)]
    parts: dict[str, list] = {k: [] for k in D4RL_KEYS}
    try:
        with h5py.File(file, "r") as f:
            names = sorted(k for k in f.keys() if isinstance(k, str) and k.startswith("episode_"))
            bad = [k for k in names if not re.fullmatch(r"episode_\d{1,9}", k)]
            if bad:
                raise DataError(f"{file}: group '{bad[0]}' is not named episode_<integer>")
            names.sort(key=lambda k: int(k.split("_")[1]))
            if not names:
                raise DataError(f"{file}: no 'episode_<i>' groups")
            for name in names:
                g = h5_get(f, name, src)
                if not isinstance(g, h5py.Group):
                    raise DataError(f"{file}: '{name}' is not a group")
                ep = {}
                for k in ("observations", "actions", "rewards", "terminations", "truncations"):
                    ep[k] = h5_dataset(g, k, src, size, budget)
                    if ep[k] is None:
                        raise DataError(f"{file}: {name} lacks key '{k}'")
                    want = 2 if k in ("observations", "actions") else 1
                    if ep[k].ndim != want:
                        raise DataError(f"{file}: {name}/{k} must have rank {want} (dict "
                                        f"observations are not supported), got {ep[k].shape}")
                obs, T = ep["observations"], len(ep["actions"])
                if len(obs) != T + 1:
                    raise DataError(f"{file}: {name}/observations has {len(obs)} rows, "
                                    f"expected actions+1 = {T + 1}")
                for k in ("rewards", "terminations", "truncations"):
                    if len(ep[k]) != T:
                        raise DataError(f"{file}: {name}/{k} has {len(ep[k])} rows, expected {T}")
                for k, a in (("observations", obs), ("actions", ep["actions"])):
                    first = parts[k][0] if parts[k] else None
                    if first is not None and a.shape[1] != first.shape[1]:
                        raise DataError(f"{file}: {name}/{k} has width {a.shape[1]}, earlier "
                                        f"episodes {first.shape[1]}")
                term, trunc = ep["terminations"].astype(bool), ep["truncations"].astype(bool)
                if T and not (term[-1] or trunc[-1]):
                    trunc[-1] = True  # an episode cut without a flag: mark its end as a timeout
                parts["observations"].append(obs[:-1])
                parts["next_observations"].append(obs[1:])
                parts["actions"].append(ep["actions"])
                parts["rewards"].append(ep["rewards"])
                parts["terminals"].append(term)
                parts["timeouts"].append(trunc)
    except _H5_ERRORS as e:
        raise DataError(f"{file}: not a readable HDF5 file ({brief(e)})") from None
    data = {k: np.concatenate(v) for k, v in parts.items()}
    return validate_dataset(data, src), meta


def episode_bounds(data: dict[str, np.ndarray]) -> list[tuple[int, int]]:
    """[(start, end)) per episode, in order; the last transition always closes one."""
    ends = np.asarray(data["terminals"], bool) | np.asarray(data["timeouts"], bool)
    ends = ends.copy()
    ends[-1] = True
    stops = np.flatnonzero(ends) + 1
    starts = np.concatenate([[0], stops[:-1]])
    return list(zip(starts.tolist(), stops.tolist()))


def episode_ids(data: dict[str, np.ndarray]) -> np.ndarray:
    """(N,) int episode index of every transition."""
    ends = np.asarray(data["terminals"], bool) | np.asarray(data["timeouts"], bool)
    ids = np.concatenate([[0], np.cumsum(ends[:-1])])
    return ids.astype(np.int64)


def episode_returns(data: dict[str, np.ndarray]) -> np.ndarray:
    """(num_episodes,) undiscounted return of each episode."""
    ids = episode_ids(data)
    return np.bincount(ids, weights=data["rewards"].astype(np.float64))


def take_episodes(data: dict[str, np.ndarray], which: np.ndarray | list[int]
                  ) -> dict[str, np.ndarray]:
    """The transitions of episodes `which` (indices into episode order), in that order."""
    ids = episode_ids(data)
    order = np.concatenate([np.flatnonzero(ids == i) for i in which]) if len(which) else \
        np.zeros(0, dtype=np.int64)
    return {k: v[order] for k, v in data.items()}


def concat_datasets(*parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Concatenate datasets (each must end with a closed episode)."""
    out = {}
    for k in D4RL_KEYS:
        out[k] = np.concatenate([p[k] for p in parts])
    # Force each part's final row to close its episode, so episodes never merge across parts.
    n = np.cumsum([len(p["rewards"]) for p in parts]) - 1
    tail = out["terminals"][n] | out["timeouts"][n]
    out["timeouts"][n[~tail]] = True
    return out
