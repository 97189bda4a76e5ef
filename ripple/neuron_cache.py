"""DRAM neuron caches: S3-FIFO with Ripple's linking-aligned admission, and LLM-in-a-flash windows.

`S3FIFO` (Yang et al., SOSP'23, Algorithm 1; the eviction policy every arm shares, §5.2): a small
FIFO S (10% of capacity) that filters one-hit wonders, a main FIFO M with 2-bit frequency and
reinsertion, and a ghost FIFO G of keys recently evicted from S (a ghost hit goes straight to M).
Objects are neuron ids of one layer; capacity is in neurons (cache ratio x n).

`linking_admission` (Ripple §5.2, "linking-aligned cache"): only admission changes. A missed
neuron that sits inside a continuous segment of the current read plan (a run of >= `segment_min`
slots) is admitted with probability `p`, a sporadic one always, so the cache does not punch holes
into runs that flash serves cheaply and spends its space on neurons that cost a whole I/O each.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from ripple.collapse import runs_of

__all__ = ["S3FIFO", "linking_admission"]


class S3FIFO:
    """S3-FIFO over ids 0..n-1 with `capacity` entries. Vectorised hit lookup, per-miss insert."""

    def __init__(self, n: int, capacity: int, small_ratio: float = 0.1, promote_freq: int = 1):
        if capacity < 1:
            raise ValueError(f"cache capacity must be >= 1, got {capacity}")
        self.n, self.capacity = n, capacity
        self.small_cap = max(1, int(round(small_ratio * capacity)))
        self.ghost_cap = max(1, capacity - self.small_cap)
        self.promote_freq = promote_freq
        self.where = np.zeros(n, dtype=np.int8)  # 0 absent, 1 in S, 2 in M
        self.freq = np.zeros(n, dtype=np.int8)
        self.small: deque[int] = deque()
        self.main: deque[int] = deque()
        self.ghost: deque[tuple[int, int]] = deque()  # (id, generation); stale entries skipped
        self.ghost_gen = np.zeros(n, dtype=np.int64)
        self.in_ghost = np.zeros(n, dtype=bool)
        self.ghost_live = 0

    def __len__(self) -> int:
        return len(self.small) + len(self.main)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        return self.where[ids] > 0

    def hit(self, ids: np.ndarray) -> None:
        """Record hits of resident `ids` (2-bit saturating frequency)."""
        self.freq[ids] = np.minimum(self.freq[ids] + 1, 3)

    def _ghost_add(self, i: int) -> None:
        self.ghost_gen[i] += 1
        self.in_ghost[i] = True
        self.ghost.append((i, int(self.ghost_gen[i])))
        self.ghost_live += 1
        while self.ghost_live > self.ghost_cap:
            j, g = self.ghost.popleft()
            if self.in_ghost[j] and self.ghost_gen[j] == g:
                self.in_ghost[j] = False
                self.ghost_live -= 1

    def _evict_small(self) -> None:
        while self.small:
            t = self.small.popleft()
            if self.freq[t] >= self.promote_freq:
                self.where[t] = 2
                self.freq[t] = 0
                self.main.append(t)  # total size unchanged; the caller evicts again
            else:
                self.where[t] = 0
                self._ghost_add(t)
                return

    def _evict_main(self) -> None:
        while self.main:
            t = self.main.popleft()
            if self.freq[t] > 0:
                self.freq[t] -= 1
                self.main.append(t)
            else:
                self.where[t] = 0
                return

    def insert(self, ids: np.ndarray) -> None:
        """Insert missed ids (not resident) in order, evicting as needed."""
        for i in np.asarray(ids).tolist():
            if self.where[i]:
                continue
            while len(self) >= self.capacity:
                if len(self.small) >= self.small_cap or not self.main:
                    self._evict_small()
                else:
                    self._evict_main()
            self.freq[i] = 0
            if self.in_ghost[i]:
                self.in_ghost[i] = False
                self.ghost_live -= 1
                self.where[i] = 2
                self.main.append(i)
            else:
                self.where[i] = 1
                self.small.append(i)


def linking_admission(slots: np.ndarray, segment_min: int, p: float,
                      rng: np.random.Generator) -> np.ndarray:
    """Admission mask (k,) for missed neurons at sorted `slots` (k,) of this token's plan.

    Sporadic (run < segment_min): always admitted; inside a continuous segment: with prob. p.
    """
    _, lengths = runs_of(slots)
    run_len = np.repeat(lengths, lengths)
    return (run_len < segment_min) | (rng.random(len(slots)) < p)
