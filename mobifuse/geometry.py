"""Camera geometry shared by the pipeline, baselines and downstream metrics.

- `reproject_tof`: z-buffered forward warp of a ToF depth map (and per-pixel channels such as
  amplitude) into the left view (this is where ToF reprojection holes and occlusions arise);
- `densify`: normalised-convolution upsampling of a sparse map, nearest fill of the rest;
- `backproject` / `chamfer_distance`: point clouds and their symmetric Chamfer distance
  (the paper's downstream 3D-reconstruction task).

Shapes: depth maps (H, W); intrinsics K (3, 3); `T_left_tof` (4, 4) maps ToF-frame points into
the left camera frame.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from shared.errors import DataError

__all__ = ["backproject", "reproject_tof", "densify", "densify_many", "nearest_fill",
           "chamfer_distance", "gaussian_blur"]


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """`scipy.ndimage.gaussian_filter(x, sigma)` (truncated at 4 sigma, mirrored borders) of a
    float32 / float64 (H, W) map, computed by OpenCV's separable filter (several times faster;
    equal to float rounding)."""
    k = 2 * int(4.0 * sigma + 0.5) + 1
    return cv2.GaussianBlur(x, (k, k), sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def backproject(depth: np.ndarray, K: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Points (N, 3) in the camera frame from depth (H, W); `mask` selects pixels."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w]
    m = np.isfinite(depth) & (depth > 0)
    if mask is not None:
        m &= mask
    z = depth[m]
    x = (u[m] - K[0, 2]) / K[0, 0] * z
    y = (v[m] - K[1, 2]) / K[1, 1] * z
    return np.stack([x, y, z], axis=1)


def reproject_tof(depth: np.ndarray, valid: np.ndarray, K_tof: np.ndarray, K_left: np.ndarray,
                  T_left_tof: np.ndarray, out_shape: tuple[int, int],
                  channels: dict[str, np.ndarray] | None = None,
                  surface_tol: float = 0.0) -> dict:
    """Warp ToF samples into the left view with a z-buffer (nearest surface wins).

    Each ToF pixel is splatted as a square footprint sized by the focal-length ratio, so a
    lower-resolution sensor covers the higher-resolution view without background samples
    bleeding through foreground ones. Where footprints overlap (a non-integer ratio, e.g. 1.5
    view pixels per ToF pixel under a 2 x 2 footprint), the nearest of several noisy samples of
    one surface reads near by a share of the noise. `surface_tol` > 0: the samples within
    (1 + surface_tol) x the nearest depth count as one surface, and of those the sample whose
    projected centre lies nearest the pixel's centre wins (0: the nearest sample, as before).
    Returns 'depth' (out_shape, 0 = hole), 'valid', and every extra channel warped alongside
    (0 where no sample landed).
    """
    if depth.shape != valid.shape:
        raise DataError(f"ToF depth shape {depth.shape} != valid mask shape {valid.shape}")
    H, W = out_shape
    m = valid & np.isfinite(depth) & (depth > 0)
    pts = backproject(np.where(m, depth, 0.0), K_tof, m)
    pts = pts @ T_left_tof[:3, :3].T + T_left_tof[:3, 3]
    z = pts[:, 2]
    front = z > 1e-3
    pts, z = pts[front], z[front]
    u = K_left[0, 0] * pts[:, 0] / z + K_left[0, 2]
    v = K_left[1, 1] * pts[:, 1] / z + K_left[1, 2]
    src = {k: np.asarray(c)[m][front] for k, c in (channels or {}).items()}
    ratio = K_left[0, 0] / K_tof[0, 0]
    r = max(int(np.ceil(ratio)) - 1, 0)
    offs = [(dy, dx) for dy in range(-(r // 2), r - r // 2 + 1)
            for dx in range(-(r // 2), r - r // 2 + 1)] if r > 0 else [(0, 0)]
    us = np.concatenate([np.round(u).astype(np.int64) + dx for _, dx in offs])
    vs = np.concatenate([np.round(v).astype(np.int64) + dy for dy, _ in offs])
    zs = np.tile(z, len(offs))
    idx_src = np.tile(np.arange(len(z)), len(offs))
    inside = (us >= 0) & (us < W) & (vs >= 0) & (vs < H)
    pix = vs[inside] * W + us[inside]
    zs, idx_src = zs[inside], idx_src[inside]
    # by pixel, then nearest first: one stable sort of (pixel << 32 | the float32 depth's bits;
    # positive floats order as their bit patterns), twice as fast as np.lexsort((zs, pix))
    zbits = zs.astype(np.float32).view(np.int32).astype(np.int64)
    order = np.argsort((pix.astype(np.int64) << 32) | zbits, kind="stable")
    pix_sorted = pix[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = pix_sorted[1:] != pix_sorted[:-1]
    win = order[first]
    if surface_tol > 0 and len(order):
        # the nearest depth of each entry's pixel, then (pixel, off the surface, distance of
        # the sample's centre to the pixel's centre): the first entry per pixel wins
        z_front = np.zeros(H * W)
        z_front[pix[win]] = zs[win]
        off = zs > z_front[pix] * (1.0 + surface_tol)
        dist = (u[idx_src] - us[inside]) ** 2 + (v[idx_src] - vs[inside]) ** 2
        order = np.lexsort((dist, off, pix))
        pix_sorted = pix[order]
        first[1:] = pix_sorted[1:] != pix_sorted[:-1]
        win = order[first]
    out_depth = np.zeros(H * W, dtype=np.float32)
    out_depth[pix[win]] = zs[win]
    out = {"depth": out_depth.reshape(H, W), "valid": (out_depth > 0).reshape(H, W)}
    for k, c in src.items():
        o = np.zeros(H * W, dtype=np.float32)
        o[pix[win]] = c[idx_src[win]]
        out[k] = o.reshape(H, W)
    return out


def nearest_fill(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Copy the nearest valid value into every invalid pixel (a hole-filling fallback)."""
    if not valid.any():
        raise DataError("cannot fill a map with no valid pixel (all-invalid input)")
    _, (iy, ix) = ndimage.distance_transform_edt(~valid, return_indices=True)
    return x[iy, ix]


def densify(sparse: np.ndarray, valid: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Normalised convolution (Gaussian, `sigma` px) of the valid samples; nearest fill beyond."""
    return densify_many([sparse], valid, sigma)[0]


def densify_many(maps: list[np.ndarray], valid: np.ndarray, sigma: float = 1.0
                 ) -> list[np.ndarray]:
    """`densify` of several maps sharing one valid mask (one weight map, one fill index)."""
    den = gaussian_blur(valid.astype(np.float64), sigma)
    ok = den > 0.05
    if not ok.any():
        raise DataError("cannot fill a map with no valid pixel (all-invalid input)")
    _, (iy, ix) = ndimage.distance_transform_edt(~ok, return_indices=True)
    out = []
    for sparse in maps:
        num = gaussian_blur(np.where(valid, sparse, 0.0).astype(np.float64), sigma)
        dense = np.where(ok, num / np.maximum(den, 1e-12), 0.0)
        out.append(dense[iy, ix].astype(np.float32))
    return out


def chamfer_distance(a: np.ndarray, b: np.ndarray, max_points: int | None = None,
                     seed: int = 0) -> float:
    """Symmetric Chamfer distance (m): mean nearest-neighbour distance a->b plus b->a, / 2."""
    if len(a) == 0 or len(b) == 0:
        raise DataError("Chamfer distance of an empty point cloud")
    rng = np.random.default_rng(seed)
    if max_points is not None:
        a = a[rng.permutation(len(a))[:max_points]]
        b = b[rng.permutation(len(b))[:max_points]]
    da, _ = cKDTree(b).query(a)
    db, _ = cKDTree(a).query(b)
    return float((da.mean() + db.mean()) / 2)
