"""Resultant-state selection (ILID Sec. 4, Eq. (6); the code's `select_data`).

A state s is expert-like when d(s) >= sigma. A transition (s_t, a_t) of the imperfect data D_b is
selected into D_s when any of its resultant states s_{t+1}, ..., s_{t+K} **in the same episode**
is expert-like: the action leads (back) into the expert's state distribution within K steps.

Vectorised: with f_u = [d(s_{u+1}) >= sigma] (the next state of transition u), transition t is
selected iff the first u >= t with f_u lies in t's episode and u - t <= K - 1. "First u >= t" is a
reverse running minimum over the whole array; a hit from a later episode is rejected by the
episode-end test, so windows never cross terminals or timeouts.

Shapes: N transitions; expert_like_next (N,) bool; episode ends (N,) bool -> selected (N,) bool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ResultantStateSelector", "select_resultant", "select_resultant_reference",
           "beta_gate"]


def _episode_end_index(ends: np.ndarray) -> np.ndarray:
    """(N,) exclusive index of the end of each transition's episode (the last row closes one)."""
    ends = np.asarray(ends, bool).copy()
    ends[-1] = True
    stop = np.flatnonzero(ends) + 1  # exclusive episode ends, ascending
    return stop[np.searchsorted(stop, np.arange(len(ends)), side="right")]


def select_resultant(expert_like_next: np.ndarray, episode_ends: np.ndarray, k: int) -> np.ndarray:
    """(N,) bool: transition t selected iff some f_u, t <= u <= t+K-1, same episode, is True."""
    f = np.asarray(expert_like_next, bool)
    n = len(f)
    if n == 0:
        return np.zeros(0, bool)
    idx = np.where(f, np.arange(n), n + k)  # n + k: "no expert-like state ahead"
    first = np.minimum.accumulate(idx[::-1])[::-1]  # first u >= t with f_u
    t = np.arange(n)
    return (first - t <= k - 1) & (first < _episode_end_index(episode_ends))


def select_resultant_reference(expert_like_next, episode_ends, k: int) -> np.ndarray:
    """Slow, obviously-correct version for tests: walk forward from t until its episode ends."""
    f = np.asarray(expert_like_next, bool)
    ends = np.asarray(episode_ends, bool)
    out = np.zeros(len(f), bool)
    for t in range(len(f)):
        for u in range(t, min(t + k, len(f))):
            if f[u]:
                out[t] = True
                break
            if ends[u]:
                break
    return out


def beta_gate(d_state: np.ndarray, sigma: float) -> np.ndarray:
    """beta(s) = 1[d(s) <= sigma]: imitate selected actions only in non-expert-like states."""
    return (np.asarray(d_state) <= sigma).astype(np.float32)


@dataclass
class ResultantStateSelector:
    """Selects D_s from D_b given d(s) of every next state (`sigma` = paper's bar, `k` = K)."""

    sigma: float = 0.4
    k: int = 20

    def __call__(self, d_next: np.ndarray, terminals: np.ndarray, timeouts: np.ndarray
                 ) -> np.ndarray:
        """d_next (N,) = d(s_{t+1}); terminals, timeouts (N,) -> selected mask (N,) bool."""
        ends = np.asarray(terminals, bool) | np.asarray(timeouts, bool)
        return select_resultant(np.asarray(d_next) >= self.sigma, ends, self.k)
