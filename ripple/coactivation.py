"""Neuron co-activation statistics (Ripple §4.1, Eq. 3).

Per FFN layer, the activation bitmask M (T tokens x n neurons, bool) from real forward passes
gives single counts f(i) = Σ_t M[t, i] and pair counts f(i, j) = (MᵀM)[i, j]. Normalised,
P(ij) = f(i, j) / ΣΣ f and the placement distance is dist(i, j) = 1 - P(ij): sorting pairs by
ascending distance is sorting them by descending pair count, which is what the placement uses.

For large layers the full n x n matrix is never formed: `topk_neighbours` computes C block by
block and keeps each neuron's K most co-activated partners, so memory stays O(nK).
"""

from __future__ import annotations

import numpy as np

from shared.errors import DataError

__all__ = ["check_masks", "activation_counts", "coactivation_counts", "coactivation_distance",
           "topk_neighbours"]


def check_masks(masks, n: int | None = None, name: str = "masks", ndim: int = 2) -> np.ndarray:
    """`masks` as a bool array of `ndim` dims whose last dim is `n` neurons, else DataError."""
    m = np.asarray(masks)
    if m.ndim != ndim:
        raise DataError(f"{name}: expected a {ndim}-D (..., tokens, neurons) mask, "
                        f"got shape {m.shape}")
    if n is not None and m.shape[-1] != n:
        raise DataError(f"{name}: mask has {m.shape[-1]} neurons per layer, expected {n}")
    if m.dtype != bool:
        if m.dtype.kind == "f" and not np.isfinite(m).all():
            raise DataError(f"{name}: mask contains NaN/inf")
        if not np.isin(m, (0, 1)).all():
            raise DataError(f"{name}: mask values must be 0/1 (dtype {m.dtype})")
        m = m.astype(bool)
    if m.shape[-2] < 1 or m.shape[-1] < 2:
        raise DataError(f"{name}: need >= 1 token and >= 2 neurons, got shape {m.shape}")
    return m


def activation_counts(masks: np.ndarray) -> np.ndarray:
    """f (n,) int64: how many tokens activate each neuron. masks: bool (T, n)."""
    return check_masks(masks).sum(axis=0, dtype=np.int64)


def coactivation_counts(masks: np.ndarray) -> np.ndarray:
    """C = MᵀM (n, n) int64, the dense pair-count matrix (diagonal = f). For small n only."""
    m = check_masks(masks).astype(np.float64)
    return np.rint(m.T @ m).astype(np.int64)


def coactivation_distance(masks: np.ndarray) -> np.ndarray:
    """dist (n, n) = 1 - P(ij), P(ij) = f(i,j) / ΣΣ_{i≠j} f(i,j) (Eq. 3); diagonal set to 1."""
    c = coactivation_counts(masks).astype(np.float64)
    np.fill_diagonal(c, 0.0)
    total = c.sum()
    p = c / total if total > 0 else c
    return 1.0 - p


def topk_neighbours(masks: np.ndarray, k: int, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Each neuron's `k` most co-activated partners, without forming the n x n matrix at once.

    masks: bool (T, n). Returns (nbr (n, k') int64, cnt (n, k') int64), k' = min(k, n-1), each
    row sorted by descending count (ties by ascending partner id). Memory O(block·n + nk).
    """
    m = check_masks(masks)
    n = m.shape[1]
    k = min(int(k), n - 1)
    if k < 1:
        raise DataError(f"top_k must be >= 1, got {k}")
    mf = m.astype(np.float32)  # exact: counts <= T < 2**24
    nbr = np.empty((n, k), dtype=np.int64)
    cnt = np.empty((n, k), dtype=np.int64)
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        c = mf[:, lo:hi].T @ mf  # (b, n) pair counts
        c[np.arange(hi - lo), np.arange(lo, hi)] = -1.0  # never your own neighbour
        part = np.argpartition(-c, k - 1, axis=1)[:, :k] if k < n - 1 else \
            np.broadcast_to(np.arange(n), c.shape)
        vals = np.take_along_axis(c, part, axis=1)
        if k == n - 1:  # drop the self entry (the only -1 left) from the full rows
            keep = vals >= 0
            part = part[keep].reshape(hi - lo, k)
            vals = vals[keep].reshape(hi - lo, k)
        order = np.lexsort((part, -vals), axis=1)
        nbr[lo:hi] = np.take_along_axis(part, order, axis=1)
        cnt[lo:hi] = np.rint(np.take_along_axis(vals, order, axis=1)).astype(np.int64)
    return nbr, cnt
