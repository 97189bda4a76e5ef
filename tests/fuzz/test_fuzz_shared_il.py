"""Fuzz: shared.il loaders (D4RL-layout HDF5, Minari directories, saved policies).

Declared sizes are bounded by the file before anything is read, links leaving the file or
looping are refused, and a policy's declared sizes must describe its stored weights.
"""

import h5py
import numpy as np
import pytest
import torch
from fuzz_harness import (
    Target,
    assert_clean,
    assert_rejects,
    fuzz_settings,
    mutated_files_test,
)
from hypothesis import given
from hypothesis import strategies as st

from shared.il.datasets import D4RL_KEYS, load_d4rl_hdf5, load_minari, write_d4rl_hdf5, write_minari
from shared.il.nets import mlp
from shared.il.policy import load_policy, save_policy


def _data(n=24, s=3, a=2, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, s)).astype(np.float32)
    term = np.zeros(n, bool)
    term[n // 2] = True
    return {"observations": obs, "actions": rng.uniform(-1, 1, (n, a)).astype(np.float32),
            "rewards": rng.normal(size=n).astype(np.float32), "terminals": term,
            "timeouts": np.zeros(n, bool), "next_observations": obs + 0.1}


def _check_dataset(out, d):
    data, meta = out
    n = len(data["observations"])
    assert n > 0 and isinstance(meta, dict)
    for k in D4RL_KEYS:
        assert len(data[k]) == n, k
    for k in ("observations", "actions", "rewards", "next_observations"):
        assert data[k].dtype == np.float32 and np.isfinite(data[k]).all(), k
    assert data["observations"].shape == data["next_observations"].shape


def _seed_d4rl(d):
    write_d4rl_hdf5(d / "data.hdf5", _data(), attrs={"env_id": "Hopper-v5", "n": 3})


def _seed_minari(d):
    write_minari(d, _data(), "ds-v0", "Hopper-v5")


def _seed_policy(d):
    net = mlp(3, 4, 8, 2)
    save_policy(d / "policy.pt", "Hopper-v5", net.state_dict(), 3, 2, 8, 2, [-1, -2], [1, 2],
                steps=10)


def _check_policy(out, d):
    pol, info = out
    act = pol.act(np.zeros((2, pol.obs_dim), np.float32))
    low, high = np.asarray(info["action_low"]), np.asarray(info["action_high"])
    assert act.shape == (2, pol.act_dim) and np.isfinite(act).all()
    assert (act >= low - 1e-5).all() and (act <= high + 1e-5).all()


TARGETS = [
    Target("d4rl-hdf5", _seed_d4rl, lambda d: load_d4rl_hdf5(d / "data.hdf5"), _check_dataset,
           ("data.hdf5",)),
    Target("minari", _seed_minari, lambda d: load_minari(d / "ds-v0"), _check_dataset,
           ("ds-v0/data/main_data.hdf5", "ds-v0/metadata.json")),
    Target("policy", _seed_policy, lambda d: load_policy(d / "policy.pt"), _check_policy,
           ("policy.pt",)),
]
BY_NAME = {t.name: t for t in TARGETS}


test_mutated_files = mutated_files_test(TARGETS, 240, files=4)


# --- structured HDF5: any shapes, dtypes, values, links


COLUMN = st.fixed_dictionaries({
    "rows": st.sampled_from([0, 1, 5, 24]),
    "width": st.sampled_from([None, 0, 1, 3]),
    "dtype": st.sampled_from(["f4", "f8", "i4", "u1", "bool", "S4"]),
    "fill": st.sampled_from([0.0, 1.0, np.nan, np.inf, 2.0, -1.0, 1e39]),
})


@fuzz_settings(240)
@given(cols=st.dictionaries(st.sampled_from(D4RL_KEYS), COLUMN, min_size=3, max_size=6),
       link=st.sampled_from([None, "soft", "soft-loop", "external", "dangling", "group"]),
       huge=st.booleans())
def test_structured_d4rl(tmp_path_factory, cols, link, huge):
    t = BY_NAME["d4rl-hdf5"]
    d = t.fresh(tmp_path_factory.getbasetemp())
    with h5py.File(d / "data.hdf5", "w") as f:
        for k, c in cols.items():
            shape = (c["rows"],) if c["width"] is None else (c["rows"], c["width"])
            if c["dtype"] == "S4":
                f.create_dataset(k, data=np.full(shape, b"ab", dtype="S4"))
            else:
                with np.errstate(invalid="ignore", over="ignore"):
                    f.create_dataset(k, data=np.full(shape, c["fill"]).astype(c["dtype"]))
        _add_link(f, link, d)
        if huge:  # declared 1e9 rows, nothing stored: must not be allocated
            f.create_dataset("rewards_big", shape=(10**9,), dtype="f8", chunks=(1024,),
                             compression="gzip")
            if "rewards" in f:
                del f["rewards"]
            f["rewards"] = h5py.SoftLink("/rewards_big")
    assert_clean(t, d)


def _add_link(f, link, d):
    if link is None:
        return
    if "terminals" in f:
        del f["terminals"]
    if link == "soft":
        f.create_dataset("real_terminals", data=np.zeros(24, bool))
        f["terminals"] = h5py.SoftLink("/real_terminals")
    elif link == "soft-loop":
        f["terminals"] = h5py.SoftLink("/loop_b")
        f["loop_b"] = h5py.SoftLink("/terminals")
    elif link == "external":
        f["terminals"] = h5py.ExternalLink(str(d / "other.hdf5"), "/terminals")
        with h5py.File(d / "other.hdf5", "w") as g:
            g.create_dataset("terminals", data=np.zeros(24, bool))
    elif link == "dangling":
        f["terminals"] = h5py.SoftLink("/nowhere")
    elif link == "group":
        f.create_group("terminals")


@fuzz_settings(180)
@given(names=st.lists(st.sampled_from(["episode_0", "episode_1", "episode_x", "episode_",
                                       "episode_-1", "episode_99999999999", "other"]),
                      min_size=1, max_size=3, unique=True),
       t_steps=st.sampled_from([0, 1, 4]), obs_extra=st.sampled_from([0, 1, -1]),
       widths=st.sampled_from([(3, 3), (3, 4)]), scalar=st.booleans())
def test_structured_minari(tmp_path_factory, names, t_steps, obs_extra, widths, scalar):
    t = BY_NAME["minari"]
    d = t.fresh(tmp_path_factory.getbasetemp())
    with h5py.File(d / "ds-v0" / "data" / "main_data.hdf5", "w") as f:
        for i, name in enumerate(names):
            g = f.create_group(name)
            w = widths[i % 2]
            g.create_dataset("observations", data=np.zeros((max(t_steps + obs_extra, 0), w)))
            g.create_dataset("actions", data=np.zeros((t_steps, 2)))
            g.create_dataset("rewards", data=np.float32(1.0) if scalar else np.zeros(t_steps))
            g.create_dataset("terminations", data=np.zeros(t_steps, bool))
            g.create_dataset("truncations", data=np.ones(t_steps, bool))
    assert_clean(t, d)


# --- structured policy files: the declared sizes against the stored weights

POLICY_EDITS = st.sampled_from([
    ("obs_dim", 10**7), ("obs_dim", 0), ("obs_dim", -3), ("obs_dim", "3"), ("obs_dim", 4),
    ("depth", 10**7), ("depth", 0), ("depth", 3), ("hidden", 10**9), ("hidden", True),
    ("act_dim", 1), ("action_low", [np.nan, 0.0]), ("action_low", [5.0, 5.0]),
    ("action_high", [1.0]), ("format", "other/1"), ("state_dict", {}), ("state_dict", None),
    ("state_dict", "nan"), ("state_dict", "extra"), ("state_dict", "missing"), ("meta", None),
])


@fuzz_settings(240)
@given(edits=st.lists(POLICY_EDITS, min_size=1, max_size=2))
def test_structured_policy(tmp_path_factory, edits):
    t = BY_NAME["policy"]
    d = t.fresh(tmp_path_factory.getbasetemp())
    blob = torch.load(d / "policy.pt", weights_only=True)
    for key, value in edits:
        sd = dict(blob["state_dict"]) if isinstance(blob["state_dict"], dict) else {}
        if value == "nan":
            sd["0.weight"] = torch.full((8, 3), float("nan"))
            value = sd
        elif value == "extra":
            sd["6.weight"] = torch.zeros(2, 2)
            value = sd
        elif value == "missing":
            sd.pop("2.bias", None)
            value = sd
        blob[key] = value
    torch.save(blob, d / "policy.pt")
    assert_clean(t, d)


# --- regressions


def test_d4rl_scalar_rewards_and_huge_declared_rows(tmp_path):
    t = BY_NAME["d4rl-hdf5"]
    d = t.fresh(tmp_path)
    with h5py.File(d / "data.hdf5", "a") as f:
        del f["rewards"]
        f["rewards"] = np.float32(1.0)
    assert_rejects(t, d, "'rewards' must have rank 1")
    with h5py.File(d / "data.hdf5", "a") as f:
        del f["rewards"]
        f.create_dataset("rewards", shape=(10**9,), dtype="f8", chunks=(4096,),
                         compression="gzip")
    assert_rejects(t, d, "'/rewards' declares 8000000000 bytes")


def test_hdf5_links(tmp_path):
    t = BY_NAME["d4rl-hdf5"]
    for link, words in (("soft-loop", "loop"), ("external", "external link"),
                        ("dangling", "dangling")):
        d = t.fresh(tmp_path)
        with h5py.File(d / "data.hdf5", "a") as f:
            _add_link(f, link, d)
        assert_rejects(t, d, words)
    d = t.fresh(tmp_path)
    with h5py.File(d / "data.hdf5", "a") as f:
        _add_link(f, "soft", d)  # a soft link inside the file is followed
    assert_clean(t, d)


def test_minari_bad_episode_name_and_non_utf8_metadata(tmp_path):
    t = BY_NAME["minari"]
    d = t.fresh(tmp_path)
    with h5py.File(d / "ds-v0" / "data" / "main_data.hdf5", "a") as f:
        f.copy("episode_0", "episode_x")
    assert_rejects(t, d, "'episode_x'")
    d = t.fresh(tmp_path)
    (d / "ds-v0" / "metadata.json").write_bytes(b'{"dataset_id": "\xff"}')
    assert_rejects(t, d, "metadata.json:1", "not UTF-8")


@pytest.mark.parametrize("key, value, words", [
    ("obs_dim", 10**7, "'0.weight' has shape"),
    ("depth", 10**7, "'depth' = 10000000"),
    ("hidden", 0, "'hidden' must be a positive integer"),
    ("action_low", [float("nan"), 0.0], "'action_low' contains NaN"),
])
def test_policy_declared_sizes(tmp_path, key, value, words):
    t = BY_NAME["policy"]
    d = t.fresh(tmp_path)
    blob = torch.load(d / "policy.pt", weights_only=True)
    blob[key] = value
    torch.save(blob, d / "policy.pt")
    assert_rejects(t, d, words)
