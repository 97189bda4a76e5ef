"""Client sampling: which clients train in a round."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shared.errors import ConfigError

__all__ = ["sample_clients"]


def sample_clients(available: Sequence[int], fraction: float, rng: np.random.Generator,
                   min_clients: int = 1) -> list[int]:
    """Sample `max(min_clients, round(fraction * len(available)))` distinct clients, sorted.

    `available` excludes clients the server has banned. Returns [] when none are available.
    """
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"client fraction must be in (0, 1], got {fraction}")
    pool = np.asarray(sorted(available), dtype=np.int64)
    if pool.size == 0:
        return []
    n = min(pool.size, max(min_clients, int(round(fraction * pool.size))))
    return sorted(int(c) for c in rng.choice(pool, size=n, replace=False))
