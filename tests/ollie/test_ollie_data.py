"""Data pieces: the demonstration-scarce subsampling keeps every k-th transition and closes each
episode; p0 samples are episode starts; perturbed dynamics change the model; the package
docstring example runs."""

import doctest

import numpy as np

import ollie
from ollie.data import initial_states, make_perturbed_env, subsample
from shared.il.datasets import episode_bounds


def _episodes(lengths, S=2):
    n = sum(lengths)
    d = {"observations": np.arange(n * S, dtype=np.float32).reshape(n, S),
         "actions": np.zeros((n, 1), np.float32), "rewards": np.ones(n, np.float32),
         "next_observations": np.zeros((n, S), np.float32),
         "terminals": np.zeros(n, bool), "timeouts": np.zeros(n, bool)}
    ends = np.cumsum(lengths) - 1
    d["terminals"][ends[0]] = True  # the first episode falls, the others time out
    d["timeouts"][ends[1:]] = True
    return d


def test_subsample_every_kth_and_episodes_stay_apart():
    d = _episodes([25, 12])
    s = subsample(d, 10)
    # episode 1: rows 0, 10, 20; episode 2 (rows 25..36): 25, 35
    assert s["observations"][:, 0].tolist() == [0, 20, 40, 50, 70]
    assert episode_bounds(s) == [(0, 3), (3, 5)]
    assert not s["terminals"].any()  # the falling row (24) was dropped: its episode times out
    assert subsample(d, 1) is d


def test_initial_states_are_episode_starts():
    d = _episodes([3, 4, 2])
    assert initial_states(d)[:, 0].tolist() == [0, 6, 14]


def test_perturbed_env_scales_masses_and_friction():
    base = make_perturbed_env("Hopper-v5")
    heavy = make_perturbed_env("Hopper-v5", mass_scale=1.5, friction_scale=0.5)
    mb, mh = base.unwrapped.model, heavy.unwrapped.model
    np.testing.assert_allclose(mh.body_mass, 1.5 * mb.body_mass, rtol=1e-6)
    np.testing.assert_allclose(mh.geom_friction[:, 0], 0.5 * mb.geom_friction[:, 0], rtol=1e-6)


def test_package_docstring_example_runs():
    res = doctest.testmod(ollie, verbose=False)
    assert res.attempted >= 3 and res.failed == 0
