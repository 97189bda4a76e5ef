"""Fuzz: offline_il_select's loaders (the typed train config; user dataset files read, checked
against the environment and cut to the configured trajectory counts). Mutated files are either
read as valid (with exactly the trajectories asked for) or refused in one line naming the file."""

import numpy as np
import pytest
from fuzz_harness import Target, mutated_files_test

from offline_il_select.config import DataConfig, TrainConfig
from offline_il_select.data import build_data
from shared.config import load_config, resolve_config
from shared.il.datasets import episode_bounds, write_d4rl_hdf5


def _trajs(lengths, s=11, a=3, seed=0):
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    timeouts = np.zeros(n, bool)
    timeouts[np.cumsum(lengths) - 1] = True
    return {"observations": rng.normal(size=(n, s)), "actions": rng.uniform(-1, 1, (n, a)),
            "rewards": rng.normal(size=n), "terminals": np.zeros(n, bool), "timeouts": timeouts,
            "next_observations": rng.normal(size=(n, s))}


def _seed_config(d):
    (d / "cfg.yaml").write_bytes(resolve_config("configs/offline_il_select/tiny.yaml")
                                 .read_bytes())


def _check_config(cfg, d):
    assert isinstance(cfg, TrainConfig) and cfg.data.n_s >= 1 and cfg.data.n_expert >= 1


def _seed_files(d):
    write_d4rl_hdf5(d / "expert.hdf5", _trajs([6, 7, 8]))
    write_d4rl_hdf5(d / "source.hdf5", _trajs([3, 4, 5, 6], seed=1))


def _cfg(d):
    return DataConfig(env_id="Hopper-v5", expert_file=str(d / "expert.hdf5"),
                      imperfect_file=str(d / "source.hdf5"), n_expert=1, n_s_expert=1, n_s=2)


def _check_data(data, d):
    assert len(episode_bounds(data.expert)) == 1 and len(episode_bounds(data.imperfect)) == 3
    k = int(data.imperfect_is_expert.sum())  # D_b ends with exactly one expert trajectory
    assert k > 0 and data.imperfect_is_expert[-k:].all()
    assert len(episode_bounds({key: v[-k:] for key, v in data.imperfect.items()})) == 1
    for part in (data.expert, data.imperfect):
        assert part["observations"].shape[1:] == (11,) and part["actions"].shape[1:] == (3,)
        assert np.isfinite(part["observations"]).all() and np.isfinite(part["actions"]).all()


TARGETS = [
    Target("ilid-config", _seed_config, lambda d: load_config(str(d / "cfg.yaml"), TrainConfig),
           _check_config, ("cfg.yaml",)),
    Target("ilid-files", _seed_files, lambda d: build_data(_cfg(d)), _check_data,
           ("expert.hdf5", "source.hdf5")),
]


@pytest.fixture(scope="module", autouse=True)
def _warm(tmp_path_factory):
    """Read valid seeds once: the first environment build imports gymnasium's MuJoCo modules,
    which the harness's memory bound (Python allocations of the call) would count."""
    d = tmp_path_factory.mktemp("warm")
    _seed_files(d)
    build_data(_cfg(d))


test_mutated_files = mutated_files_test(TARGETS, 120, files=2)
