"""Depth metrics, per-region breakdowns, DEI validation and the downstream Chamfer distance
(the paper reports MAE/RMSE and gains in 3D reconstruction).

Shapes: predictions and ground truth (N, h, w) or (h, w) in metres; masks boolean, same shape.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from mobifuse.geometry import backproject, chamfer_distance
from shared.errors import DataError
from shared.metrics import absrel, delta_accuracy, mae, rmse

__all__ = ["depth_metrics", "region_metrics", "dei_spearman", "mean_chamfer"]


def depth_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """MAE / RMSE (m), AbsRel, delta < 1.25^k, bad-5cm (%) over valid GT (and `mask`)."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise DataError(f"prediction shape {pred.shape} != ground truth shape {gt.shape}")
    if not np.all(np.isfinite(pred)):
        raise DataError("prediction contains NaN or inf depth")
    m = np.isfinite(gt) & (gt > 0)
    if mask is not None:
        m &= mask
    p = np.maximum(pred, 1e-3)
    return {"mae": mae(p, gt, m), "rmse": rmse(p, gt, m), "absrel": absrel(p, gt, m),
            "d1": delta_accuracy(p, gt, 1.25, m), "d2": delta_accuracy(p, gt, 1.25**2, m),
            "d3": delta_accuracy(p, gt, 1.25**3, m),
            "bad5cm": float(100 * np.mean(np.abs(p - gt)[m] > 0.05))}


def region_metrics(pred: np.ndarray, gt: np.ndarray, masks: dict[str, np.ndarray]) -> dict:
    """MAE per region mask (regions with no pixel are skipped)."""
    out = {}
    for name, m in masks.items():
        if np.any(m):
            out[f"mae_{name}"] = mae(pred, gt, m)
    return out


def dei_spearman(sigma: np.ndarray, pred: np.ndarray, gt: np.ndarray, max_n: int = 200_000,
                 seed: int = 0) -> float:
    """Spearman rank correlation between a sensor's DEI sigma and its true |error|."""
    err = np.abs(np.asarray(pred, np.float64) - gt).ravel()
    s = np.asarray(sigma, np.float64).ravel()
    idx = np.random.default_rng(seed).permutation(len(err))[:max_n]
    return float(spearmanr(s[idx], err[idx]).statistic)


def mean_chamfer(preds: np.ndarray, gts: np.ndarray, K: np.ndarray, max_points: int = 4000,
                 max_depth: float = 6.0) -> float:
    """Mean over frames of the Chamfer distance (m) between back-projected clouds."""
    vals = []
    for i, (p, g) in enumerate(zip(preds, gts)):  # per frame; the KD-tree work is vectorised
        a = backproject(np.clip(p, 0.05, max_depth), K)
        b = backproject(g, K)
        vals.append(chamfer_distance(a, b, max_points=max_points, seed=i))
    return float(np.mean(vals))
