"""Gymnasium environment construction for expert training and rollouts, and out-of-family
variants of each task (dynamics outside the data's range: `make_perturbed_env`, `PERTURBATIONS`)."""

from __future__ import annotations

import functools
import warnings

from shared.errors import ConfigError

__all__ = ["make_env", "make_vector_env", "make_perturbed_env", "PERTURBATIONS"]

# Out-of-family dynamics: (body-mass scale, friction scale). Data and experts come from scale 1;
# benches evaluate finished policies here, never train or choose anything on them.
PERTURBATIONS = {"heavy": (1.5, 1.0), "slippery": (1.0, 0.5)}


def make_env(env_id: str):
    """`gymnasium.make(env_id)`; an unknown id is a ConfigError naming it."""
    import gymnasium as gym

    with warnings.catch_warnings():
        # MuJoCo 4 warns about a deprecated compiler attribute in gymnasium's XML files.
        warnings.simplefilter("ignore")
        try:
            return gym.make(env_id)
        except gym.error.Error as e:
            raise ConfigError(f"env_id '{env_id}': {e}") from None


def make_vector_env(env_id: str, n: int, mode: str = "sync"):
    """n copies of `env_id`, autoreset in the same step (`info['final_obs']` holds the last obs).

    mode 'sync' steps them in this process; 'async' gives each its own worker process.
    """
    import gymnasium as gym

    make_env(env_id).close()  # fail here, with a clear message, on a bad id
    fns = [functools.partial(make_env, env_id) for _ in range(n)]
    kw = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
    if mode == "async":
        return gym.vector.AsyncVectorEnv(fns, **kw)
    if mode != "sync":
        raise ConfigError(f"vector: unknown mode '{mode}' (use sync or async)")
    return gym.vector.SyncVectorEnv(fns, **kw)


def make_perturbed_env(env_id: str, mass_scale: float = 1.0, friction_scale: float = 1.0):
    """`env_id` with every body mass scaled by `mass_scale` and every geom's sliding friction by
    `friction_scale` (MuJoCo model arrays, changed in place before the first reset)."""
    env = make_env(env_id)
    model = env.unwrapped.model
    model.body_mass[:] = model.body_mass * mass_scale
    model.geom_friction[:, 0] = model.geom_friction[:, 0] * friction_scale
    return env
