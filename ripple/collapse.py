"""Online IOPS-friendly access collapsing (Ripple §5.1).

After prediction, the activated (and not cached) neurons of a layer are flash slots; sorted, they
form runs of consecutive slots. `runs_of` turns slots into runs, `collapse_runs` merges two runs
when the gap of inactive slots between them is at most `max_gap`, reading the gap too: one I/O
instead of two, at the price of gap bytes. `AccessCollapser` adds the two run-time parts:
- a *bottleneck detector*: when the uncollapsed plan already achieves >= `saturation` of the
  device's bandwidth (reads are large, I/O is byte-bound), merging only adds bytes: it is off;
- *threshold tuning*: every `retune_every` calls the gap threshold is re-chosen among
  `candidates` as the one with the lowest cost of the current plan (`cost_fn`, e.g. the UFS
  model's latency, or a measured latency on a real device).
Runs: (starts (R,), lengths (R,)) int64, in slots; sorted, non-overlapping.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["runs_of", "collapse_runs", "AccessCollapser"]


def runs_of(slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique slots (k,) -> maximal runs of consecutive slots (starts, lengths)."""
    s = np.asarray(slots, dtype=np.int64)
    if s.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    brk = np.flatnonzero(np.diff(s) != 1) + 1
    first = np.concatenate([[0], brk])
    last = np.concatenate([brk, [s.size]])
    return s[first], last - first


def collapse_runs(starts: np.ndarray, lengths: np.ndarray,
                  max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge consecutive runs whose gap (inactive slots between them) is <= max_gap."""
    starts, lengths = np.asarray(starts, np.int64), np.asarray(lengths, np.int64)
    if starts.size < 2 or max_gap <= 0:
        return starts, lengths
    ends = starts + lengths
    gap = starts[1:] - ends[:-1]
    new = np.concatenate([[True], gap > max_gap])
    first = np.flatnonzero(new)
    last = np.concatenate([first[1:], [starts.size]]) - 1
    return starts[first], ends[last] - starts[first]


class AccessCollapser:
    """Per-layer run planner with a bottleneck detector and a run-time-tuned gap threshold.

    cost_fn(lengths_in_slots (R,)) -> seconds. `bandwidth_slots` is the device maximum in slots
    per second (bytes/s over bundle bytes). plan(starts, lengths) -> merged (starts, lengths).
    """

    def __init__(self, cost_fn: Callable[[np.ndarray], float], bandwidth_slots: float,
                 candidates: list[int], retune_every: int = 16, saturation: float = 0.9):
        self.cost_fn, self.bw = cost_fn, bandwidth_slots
        self.candidates = sorted(set(int(c) for c in candidates))
        self.retune_every, self.saturation = retune_every, saturation
        self.threshold = self.candidates[0]
        self.calls = 0
        self.bypassed = 0  # plans left uncollapsed by the bottleneck detector

    def saturated(self, lengths: np.ndarray) -> bool:
        """Bottleneck detector: does the plain plan already reach the device bandwidth?"""
        if lengths.size == 0:
            return True
        t = self.cost_fn(lengths)
        return t > 0 and lengths.sum() / t >= self.saturation * self.bw

    def tune(self, starts: np.ndarray, lengths: np.ndarray) -> int:
        costs = [self.cost_fn(collapse_runs(starts, lengths, g)[1]) for g in self.candidates]
        self.threshold = self.candidates[int(np.argmin(costs))]
        return self.threshold

    def plan(self, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if lengths.size < 2:  # nothing to merge
            return starts, lengths
        self.calls += 1
        if self.saturated(lengths):
            self.bypassed += 1
            return starts, lengths
        if (self.calls - 1) % self.retune_every == 0:
            self.tune(starts, lengths)
        return collapse_runs(starts, lengths, self.threshold)
