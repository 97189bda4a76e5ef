"""Roll policies out into D4RL-layout datasets; evaluate returns; reference returns.

Dataset kinds (what D4RL calls them, built the same way):
- expert: the expert policy, sampling its own tanh-Gaussian;
- medium: an earlier checkpoint of the same SAC run (about 1/3 of the expert's return);
- random: uniform actions in the action box;
- noisy_expert: the expert's deterministic action plus Gaussian noise whose std is drawn per
  episode from `noise_levels`, so episode quality varies with a known ground truth (the noise
  std is stored per transition in `infos/noise_std`);
- medium_replay: the same with the medium policy. D4RL's medium-replay is the replay buffer of
  the SAC run up to the medium policy (qualities from random to medium); no replay buffer was
  kept here, so this is a reconstruction with the same spread of qualities.

Episodes are rolled out `batch` at a time (one env each, one batched policy forward per step).
Everything is seeded per episode: episode i resets its env with `seed + i` and draws its action
noise from `numpy.random.default_rng([seed, i])`, so a seed fixes the dataset whatever `batch`,
and `first` rolls out a slice of it: episodes first .. first + n - 1 of the same seed. Slices that
start at multiples of `batch`, rolled out apart and concatenated, are the whole dataset: bit for
bit where no network acts ('random') or every episode runs to the cap (HalfCheetah), since their
episodes then run in the same groups of `batch`; where episodes end early the groups can differ,
and a policy's batched forward may round differently.
"""

from __future__ import annotations

import numpy as np

from shared.il.envs import make_env
from shared.il.policy import GaussianPolicy

__all__ = ["rollout", "evaluate_policy", "D4RL_REF_SCORES", "DATASET_KINDS"]

BATCH = 16  # episodes rolled out side by side (one batched policy forward a step)
DATASET_KINDS = ("expert", "medium", "random", "noisy_expert", "medium_replay")
NOISY_KINDS = ("noisy_expert", "medium_replay")  # deterministic action + per-episode noise

# D4RL v2-era reference returns (d4rl/gym_mujoco/__init__.py); only approximate for v5 envs.
D4RL_REF_SCORES = {
    "Hopper": {"random": -20.272305, "expert": 3234.3},
    "HalfCheetah": {"random": -280.178953, "expert": 12135.0},
    "Walker2d": {"random": 1.629008, "expert": 4592.3},
    "Ant": {"random": -325.6, "expert": 3879.7},
}


def rollout(env_id: str, n_episodes: int, seed: int, kind: str = "expert",
            policy: GaussianPolicy | None = None, noise_levels: tuple[float, ...] = (0.1, 0.3, 0.5,
                                                                                         1.0),
            batch: int = BATCH, max_steps: int | None = None, first: int = 0
            ) -> dict[str, np.ndarray]:
    """Collect `n_episodes` episodes -> D4RL-layout dict (+ 'infos/noise_std' for noisy_expert).

    kind: 'expert'/'medium' sample the policy; 'random' ignores it; 'noisy_expert' and
    'medium_replay' add per-episode Gaussian noise to the (expert's / medium's) deterministic
    action. `max_steps` caps an episode (a
    timeout), default the env's own time limit. `first`: the index of the first episode (see
    the module docstring).
    """
    if kind not in DATASET_KINDS:
        raise ValueError(f"unknown dataset kind '{kind}' (use one of {DATASET_KINDS})")
    if kind != "random" and policy is None:
        raise ValueError(f"kind '{kind}' needs a policy")
    envs = [make_env(env_id) for _ in range(min(batch, n_episodes))]
    low, high = envs[0].action_space.low, envs[0].action_space.high
    cap = max_steps or envs[0].spec.max_episode_steps or 1000
    episodes: list[dict[str, np.ndarray] | None] = [None] * n_episodes
    noise = np.zeros(n_episodes, np.float32)
    next_ep = 0
    slots: list[dict] = []  # per active env: episode index, obs, and step lists

    def start(env):
        nonlocal next_ep
        obs, _ = env.reset(seed=seed + first + next_ep)
        rng = np.random.default_rng([seed, first + next_ep])
        if kind in NOISY_KINDS:
            noise[next_ep] = rng.choice(np.asarray(noise_levels, np.float32))
        slot = {"env": env, "ep": next_ep, "obs": obs, "steps": [], "rng": rng}
        next_ep += 1
        return slot

    for env in envs:
        slots.append(start(env))
    while slots:
        obs = np.stack([s["obs"] for s in slots]).astype(np.float32)
        eps = np.stack([s["rng"].standard_normal(len(low)) for s in slots])
        if kind == "random":
            act = np.stack([s["rng"].uniform(low, high) for s in slots])
        elif kind in NOISY_KINDS:
            act = policy.act(obs, deterministic=True)
            act = np.clip(act + noise[[s["ep"] for s in slots]][:, None] * eps, low, high)
        else:
            mean, std = policy.mean_std(obs)
            act = policy.squash(mean + std * eps)
        act = act.astype(np.float32)
        keep = []
        for s, o, a in zip(slots, obs, act):
            nobs, r, term, trunc, _ = s["env"].step(a)
            trunc = trunc or len(s["steps"]) + 1 >= cap
            s["steps"].append((o, a, r, term, trunc and not term, nobs))
            s["obs"] = nobs
            if term or trunc:
                episodes[s["ep"]] = _pack(s["steps"], noise[s["ep"]])
                if next_ep < n_episodes:
                    keep.append(start(s["env"]))
            else:
                keep.append(s)
        slots = keep
    for env in envs:
        env.close()
    out = {k: np.concatenate([e[k] for e in episodes]) for k in episodes[0]}
    if kind not in NOISY_KINDS:
        del out["infos/noise_std"]
    return out


def _pack(steps: list[tuple], noise_std: float) -> dict[str, np.ndarray]:
    o, a, r, te, to, no = zip(*steps)
    n = len(steps)
    return {"observations": np.asarray(o, np.float32), "actions": np.asarray(a, np.float32),
            "rewards": np.asarray(r, np.float32), "terminals": np.asarray(te, bool),
            "timeouts": np.asarray(to, bool), "next_observations": np.asarray(no, np.float32),
            "infos/noise_std": np.full(n, noise_std, np.float32)}


def evaluate_policy(act_fn, env_id: str, n_episodes: int, seed: int, batch: int = 10,
                    make=None) -> np.ndarray:
    """Returns (n_episodes,) of `act_fn(obs (N, S)) -> actions (N, A)`, `batch` envs at a time.

    Episode i resets with `seed + i`; a deterministic act_fn thus gives reproducible returns.
    `make(env_id)` builds the envs (default `make_env`; e.g. one with perturbed dynamics).
    """
    envs = [(make or make_env)(env_id) for _ in range(min(batch, n_episodes))]
    rets = np.zeros(n_episodes)
    next_ep = 0
    slots = []
    for env in envs:
        obs, _ = env.reset(seed=seed + next_ep)
        slots.append([env, next_ep, obs])
        next_ep += 1
    while slots:
        act = np.asarray(act_fn(np.stack([s[2] for s in slots]).astype(np.float32)))
        keep = []
        for s, a in zip(slots, act):
            obs, r, term, trunc, _ = s[0].step(a)
            rets[s[1]] += r
            s[2] = obs
            if term or trunc:
                if next_ep < n_episodes:
                    o, _ = s[0].reset(seed=seed + next_ep)
                    keep.append([s[0], next_ep, o])
                    next_ep += 1
            else:
                keep.append(s)
        slots = keep
    for env in envs:
        env.close()
    return rets
