"""Gymnasium environment construction for expert training and rollouts."""

from __future__ import annotations

import functools
import warnings

from shared.errors import ConfigError

__all__ = ["make_env", "make_vector_env"]


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
