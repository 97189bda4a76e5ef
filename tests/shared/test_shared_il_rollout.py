"""shared.il rollouts and policies: determinism per seed, episode flags, policy file errors."""

import numpy as np
import pytest
import torch

from shared.errors import DataError
from shared.il.datasets import episode_bounds, validate_dataset
from shared.il.generate import policy_path, reference_returns
from shared.il.policy import GaussianPolicy, load_policy, save_policy
from shared.il.rollout import evaluate_policy, rollout


def test_random_rollout_deterministic_and_well_formed():
    a = rollout("Hopper-v5", 4, seed=3, kind="random", batch=2)
    b = rollout("Hopper-v5", 4, seed=3, kind="random", batch=3)  # batching must not matter
    c = rollout("Hopper-v5", 4, seed=4, kind="random", batch=2)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["actions"], c["actions"])
    validate_dataset(a)
    ends = a["terminals"] | a["timeouts"]
    bounds = episode_bounds(a)
    assert len(bounds) == 4 and ends.sum() == 4
    for s, e in bounds[:-1]:  # within an episode, s' of step t is s of step t+1
        np.testing.assert_array_equal(a["next_observations"][s:e - 1], a["observations"][s + 1:e])


def test_expert_and_noisy_rollouts_deterministic():
    pol, info = load_policy(policy_path("Hopper-v5", "expert"))
    assert info["env_id"] == "Hopper-v5"
    x = rollout("Hopper-v5", 2, seed=0, kind="expert", policy=pol, max_steps=30)
    y = rollout("Hopper-v5", 2, seed=0, kind="expert", policy=pol, max_steps=30)
    np.testing.assert_array_equal(x["actions"], y["actions"])
    assert x["timeouts"].sum() == 2 and len(x["rewards"]) == 60  # capped at 30 steps each
    n = rollout("Hopper-v5", 3, seed=0, kind="noisy_expert", policy=pol, max_steps=20,
                noise_levels=(0.0, 1.0))
    assert set(np.unique(n["infos/noise_std"])) <= {0.0, 1.0}


def test_evaluate_policy_seeded():
    pol, _ = load_policy(policy_path("Hopper-v5", "medium"))
    r1 = evaluate_policy(lambda o: pol.act(o), "Hopper-v5", 2, seed=5)
    r2 = evaluate_policy(lambda o: pol.act(o), "Hopper-v5", 2, seed=5)
    np.testing.assert_array_equal(r1, r2)


def test_committed_references_present():
    from shared.il.generate import ENVS

    assert set(ENVS) == {"Hopper-v5", "HalfCheetah-v5", "Walker2d-v5"}
    for env in ENVS:
        ref = reference_returns(env)
        assert ref["expert"] > ref["medium"] > ref["random"]
        assert ref["d4rl_expert"] > 3000
        # every committed expert loads and names its environment
        pol, info = load_policy(policy_path(env, "expert"))
        assert info["env_id"] == env
    # the Walker2d expert's target (sampled actions, 100 episodes)
    assert reference_returns("Walker2d-v5")["expert"] >= 4000


def test_policy_file_round_trip_and_errors(tmp_path):
    pol = GaussianPolicy(4, 2, hidden=8, depth=2)
    save_policy(tmp_path / "p.pt", "Toy-v0", pol.net.state_dict(), 4, 2, 8, 2, [-1, -1], [1, 1],
                level="expert")
    back, info = load_policy(tmp_path / "p.pt")
    obs = np.random.default_rng(0).normal(size=(5, 4))
    np.testing.assert_allclose(back.act(obs), pol.act(obs), atol=1e-6)
    assert info["meta"]["level"] == "expert"
    torch.save({"format": "shared.il.policy/1"}, tmp_path / "bad.pt")
    with pytest.raises(DataError, match="lacks key 'env_id'"):
        load_policy(tmp_path / "bad.pt")
    with pytest.raises(DataError, match="not found"):
        load_policy(tmp_path / "missing.pt")
