"""shared.il.datasets: D4RL-layout HDF5 and Minari round-trips, validation errors, episodes."""

import h5py
import numpy as np
import pytest

from shared.errors import DataError
from shared.il.datasets import (
    concat_datasets,
    episode_bounds,
    episode_ids,
    episode_returns,
    load_d4rl_hdf5,
    load_minari,
    take_episodes,
    validate_dataset,
    write_d4rl_hdf5,
    write_minari,
)


def toy(n=12, s=3, a=2, seed=0):
    rng = np.random.default_rng(seed)
    term = np.zeros(n, bool)
    tout = np.zeros(n, bool)
    term[3] = True  # episode 0: rows 0-3 (terminal)
    tout[8] = True  # episode 1: rows 4-8 (timeout); episode 2: rows 9-11 (timeout)
    tout[-1] = True
    return {"observations": rng.normal(size=(n, s)).astype(np.float32),
            "actions": rng.uniform(-1, 1, (n, a)).astype(np.float32),
            "rewards": np.arange(n, dtype=np.float32),
            "terminals": term, "timeouts": tout,
            "next_observations": rng.normal(size=(n, s)).astype(np.float32)}


def test_hdf5_round_trip(tmp_path):
    d = toy()
    write_d4rl_hdf5(tmp_path / "x.hdf5", d, {"env_id": "Toy-v0"})
    back, attrs = load_d4rl_hdf5(tmp_path / "x.hdf5")
    assert attrs["env_id"] == "Toy-v0"
    for k, v in d.items():
        np.testing.assert_array_equal(back[k], v)


def test_minari_round_trip(tmp_path):
    d = toy()
    # Minari stores T+1 observations per episode, so next_obs[t] must equal obs[t+1] inside it.
    for s, e in episode_bounds(d):
        d["next_observations"][s:e - 1] = d["observations"][s + 1:e]
    root = write_minari(tmp_path, d, "toy/expert-v0", "Toy-v0", 0.0, 1.0)
    back, meta = load_minari(root)
    assert meta["total_episodes"] == 3 and meta["ref_max_score"] == 1.0
    for k, v in d.items():
        np.testing.assert_array_equal(back[k], v)


@pytest.mark.parametrize("key", ["observations", "timeouts", "next_observations"])
def test_missing_key_is_named(tmp_path, key):
    d = toy()
    with h5py.File(tmp_path / "bad.hdf5", "w") as f:
        for k, v in d.items():
            if k != key:
                f.create_dataset(k, data=v)
    # A file lacking next_observations is still readable (derived from the next row).
    if key == "next_observations":
        back, _ = load_d4rl_hdf5(tmp_path / "bad.hdf5")
        np.testing.assert_array_equal(back["next_observations"][:3], d["observations"][1:4])
        assert len(back["rewards"]) == len(d["rewards"]) - 2  # the two timeout rows dropped
        return
    with pytest.raises(DataError, match=f"'{key}'"):
        load_d4rl_hdf5(tmp_path / "bad.hdf5")


def test_length_mismatch_and_nan_and_rank():
    d = toy()
    d["actions"] = d["actions"][:-1]
    with pytest.raises(DataError, match="'actions' has 11 rows"):
        validate_dataset(d, "f.hdf5")
    d = toy()
    d["rewards"][5] = np.nan
    with pytest.raises(DataError, match="'rewards' has a non-finite value .* row 5"):
        validate_dataset(d)
    d = toy()
    d["observations"] = d["observations"][:, 0]
    with pytest.raises(DataError, match="'observations' must have rank 2"):
        validate_dataset(d)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_d4rl_hdf5(tmp_path / "nope.hdf5")
    (tmp_path / "junk.hdf5").write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError, match="not a readable HDF5"):
        load_d4rl_hdf5(tmp_path / "junk.hdf5")
    with pytest.raises(DataError, match="Minari data file not found"):
        load_minari(tmp_path)


def test_minari_inconsistent_episode(tmp_path):
    root = write_minari(tmp_path, toy(), "toy/x-v0", "Toy-v0")
    with h5py.File(root / "data" / "main_data.hdf5", "a") as f:
        del f["episode_1/rewards"]
        f["episode_1"].create_dataset("rewards", data=np.zeros(2))
    with pytest.raises(DataError, match="episode_1/rewards has 2 rows, expected 5"):
        load_minari(root)


def test_episode_helpers():
    d = toy()
    assert episode_bounds(d) == [(0, 4), (4, 9), (9, 12)]
    np.testing.assert_array_equal(episode_ids(d), [0] * 4 + [1] * 5 + [2] * 3)
    np.testing.assert_allclose(episode_returns(d), [6, 30, 30])
    sub = take_episodes(d, [2, 0])
    np.testing.assert_array_equal(sub["rewards"], [9, 10, 11, 0, 1, 2, 3])
    both = concat_datasets({k: v[:6] for k, v in d.items()}, {k: v[6:] for k, v in d.items()})
    assert both["timeouts"][5]  # the first part's open episode is closed, not merged
    assert len(episode_bounds(both)) == 4
