"""Common metrics on numpy arrays (or anything `np.asarray` accepts). NaN-safe where documented."""

from __future__ import annotations

import numpy as np

from shared.errors import DataError

__all__ = ["mae", "rmse", "absrel", "delta_accuracy", "pearson", "accuracy", "topk_hit",
           "normalized_return"]


def _pair(pred, target, mask=None) -> tuple[np.ndarray, np.ndarray]:
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if p.shape != t.shape:
        raise DataError(f"prediction shape {p.shape} != target shape {t.shape}")
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != p.shape:
            raise DataError(f"mask shape {m.shape} != prediction shape {p.shape}")
        p, t = p[m], t[m]
    if p.size == 0:
        raise DataError("no valid elements to score (empty input or all-false mask)")
    return p, t


def mae(pred, target, mask=None) -> float:
    p, t = _pair(pred, target, mask)
    return float(np.mean(np.abs(p - t)))


def rmse(pred, target, mask=None) -> float:
    p, t = _pair(pred, target, mask)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def absrel(pred, target, mask=None) -> float:
    """Mean |pred - target| / target (depth convention: target > 0)."""
    p, t = _pair(pred, target, mask)
    if np.any(t <= 0):
        raise DataError("absrel needs strictly positive targets")
    return float(np.mean(np.abs(p - t) / t))


def delta_accuracy(pred, target, threshold: float = 1.25, mask=None) -> float:
    """Share of elements with max(pred/target, target/pred) < threshold (depth δ metric)."""
    p, t = _pair(pred, target, mask)
    ratio = np.maximum(p / t, t / p)
    return float(np.mean(ratio < threshold))


def pearson(x, y) -> float:
    """Pearson correlation; NaN when either input is constant."""
    a, b = _pair(x, y)
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def accuracy(pred_labels, labels) -> float:
    p, t = np.asarray(pred_labels), np.asarray(labels)
    if p.shape != t.shape:
        raise DataError(f"prediction shape {p.shape} != label shape {t.shape}")
    if p.size == 0:
        raise DataError("no labels to score")
    return float(np.mean(p == t))


def topk_hit(scores, labels, k: int = 1) -> float:
    """Share of rows whose label is among the k highest scores. scores: (n, c), labels: (n,)."""
    s, y = np.asarray(scores), np.asarray(labels)
    if s.ndim != 2 or y.shape != (s.shape[0],):
        raise DataError(f"topk_hit expects scores (n, c) and labels (n,), got {s.shape}, {y.shape}")
    topk = np.argpartition(-s, kth=min(k, s.shape[1]) - 1, axis=1)[:, :k]
    return float(np.mean(np.any(topk == y[:, None], axis=1)))


def normalized_return(ret, random_return: float, expert_return: float) -> np.ndarray | float:
    """D4RL convention: 100 * (ret - random) / (expert - random)."""
    if expert_return == random_return:
        raise DataError("expert and random reference returns are equal")
    out = 100.0 * (np.asarray(ret, dtype=np.float64) - random_return) / (
        expert_return - random_return)
    return float(out) if out.ndim == 0 else out
