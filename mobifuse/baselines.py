"""Baselines run beside MobiFuse in the same benchmark.

All take and return work-resolution maps (h, w) in metres:
- `tof_only`: the reprojected ToF, upsampled by normalised convolution, holes nearest-filled;
- `sgbm_only`: SGBM depth, invalid pixels nearest-filled;
- `joint_bilateral_upsample`: RGB-guided joint bilateral upsampling of the sparse ToF samples
  (Kopf et al. 2007): weights exp(-|p-q|^2 / 2 s^2) * exp(-(I_p - I_q)^2 / 2 r^2), one array
  op per window offset;
- `inverse_variance_fusion`: (D_t / s_t^2 + D_s / s_s^2) / (1 / s_t^2 + 1 / s_s^2) with the DEI
  sigmas;
- `oracle_selection`: per pixel, whichever of ToF-only / SGBM-only is closer to the truth (the
  ceiling of any per-pixel sensor selection).
The learned no-DEI fusion is `TwoStageFusionNet(use_dei=False)` in `mobifuse.models`.
"""

from __future__ import annotations

import numpy as np

from mobifuse.geometry import nearest_fill

__all__ = ["tof_only", "sgbm_only", "joint_bilateral_upsample", "inverse_variance_fusion",
           "oracle_selection"]


def tof_only(tof_dense: np.ndarray) -> np.ndarray:
    return tof_dense.astype(np.float32)


def sgbm_only(st_dense: np.ndarray) -> np.ndarray:
    return st_dense.astype(np.float32)


def joint_bilateral_upsample(sparse: np.ndarray, valid: np.ndarray, guide: np.ndarray,
                             radius: int = 3, sigma_s: float = 2.0,
                             sigma_r: float = 0.08) -> np.ndarray:
    """Sparse depth (h, w) + valid mask + guide image (h, w) in [0, 1] -> dense depth."""
    h, w = sparse.shape
    pad = radius
    d = np.pad(np.where(valid, sparse, 0.0), pad)
    m = np.pad(valid.astype(np.float64), pad)
    g = np.pad(guide.astype(np.float64), pad, mode="edge")
    num = np.zeros((h, w))
    den = np.zeros((h, w))
    for dy in range(-radius, radius + 1):  # window offsets, each a whole-image array op
        for dx in range(-radius, radius + 1):
            sl = (slice(pad + dy, pad + dy + h), slice(pad + dx, pad + dx + w))
            wr = np.exp(-((g[sl] - guide) ** 2) / (2 * sigma_r**2))
            wt = np.exp(-(dy * dy + dx * dx) / (2 * sigma_s**2)) * wr * m[sl]
            num += wt * d[sl]
            den += wt
    ok = den > 1e-6
    out = np.where(ok, num / np.maximum(den, 1e-12), 0.0)
    return nearest_fill(out, ok).astype(np.float32)


def inverse_variance_fusion(d_tof: np.ndarray, s_tof: np.ndarray, d_st: np.ndarray,
                            s_st: np.ndarray) -> np.ndarray:
    wt, ws = 1.0 / np.square(s_tof.astype(np.float64)), 1.0 / np.square(s_st.astype(np.float64))
    return ((d_tof * wt + d_st * ws) / (wt + ws)).astype(np.float32)


def oracle_selection(d_tof: np.ndarray, d_st: np.ndarray, gt: np.ndarray) -> np.ndarray:
    return np.where(np.abs(d_tof - gt) <= np.abs(d_st - gt), d_tof, d_st).astype(np.float32)
