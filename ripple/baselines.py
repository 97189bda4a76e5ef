"""Baselines: llama.cpp-style loading and "LLM in a flash" (Alizadeh et al., arXiv 2312.11514).

- llama.cpp with flash offload: the checkpoint's neuron order (`identity_placement`), one read
  per activated neuron; S3-FIFO cache at the shared ratio (as in Ripple's evaluation).
- LLM in a flash (no public code; re-implemented from the paper as Ripple did): row-column
  bundling (our bundles, §3.2 of that paper), the checkpoint's order, contiguous activated neurons
  read together, and *windowing* (§3.1): the neurons active in the last k tokens stay in DRAM,
  capped at the same DRAM budget as every other arm. `hot_first_placement` (by frequency) is an
  extra placement baseline.
"""

from __future__ import annotations

import numpy as np

from ripple.placement import hot_first_placement, identity_placement

__all__ = ["identity_placement", "hot_first_placement", "WindowCache"]


class WindowCache:
    """LLM-in-a-flash windowing: neurons active in the last `window` tokens, <= `capacity`."""

    def __init__(self, n: int, capacity: int, window: int = 5):
        self.n, self.capacity, self.window = n, capacity, window
        self.last = np.full(n, -(1 << 40), dtype=np.int64)
        self.resident = np.zeros(n, dtype=bool)
        self.t = 0

    def contains(self, ids: np.ndarray) -> np.ndarray:
        return self.resident[ids]

    def step(self, active: np.ndarray) -> None:
        """After token t: active neurons are in DRAM; drop those idle for `window` tokens."""
        self.last[active] = self.t
        res = self.last > self.t - self.window
        if res.sum() > self.capacity:  # keep the most recently active (ties: lower id)
            idx = np.flatnonzero(res)
            keep = idx[np.lexsort((idx, -self.last[idx]))[: self.capacity]]
            res = np.zeros(self.n, dtype=bool)
            res[keep] = True
        self.resident = res
        self.t += 1
