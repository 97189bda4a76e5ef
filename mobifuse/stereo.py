"""Stereo depth from a rectified pair with OpenCV SGBM, plus the cues the stereo DEI needs
(stereo depth Z = f B / d, so its error grows as Z^2 sigma_disp / (f B)).

- `sgbm_disparity`: `cv2.StereoSGBM` (3-way mode); OpenCV returns int16 disparity x16
  (`DISP_SCALE`), so we divide by 16 and mask values below `minDisparity` (and zero) as invalid.
- `left_right_check`: the right view's disparity from the mirrored pair; the per-pixel
  inconsistency |d_L(x) - d_R(x - d_L(x))| (px).
- `matching_uniqueness`: SGBM does not expose its cost curve, so we compute a box-SAD cost volume
  (one array op per disparity) and the margin between the best and the second-best
  non-adjacent cost, in [0, 1] (0 = ambiguous, e.g. textureless or repetitive).
- `stereo_depth`: Z = f B / d for valid disparities.

Shapes: grey images (H, W) uint8; all outputs (H, W) float32 / bool.
"""

from __future__ import annotations

import cv2
import numpy as np

from mobifuse.config import StereoConfig
from shared.errors import DataError

__all__ = ["to_gray", "sgbm_disparity", "left_right_check", "matching_uniqueness",
           "stereo_depth", "run_stereo"]


def to_gray(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB or (H, W) -> (H, W) uint8."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_RGB2GRAY)
    if img.ndim != 2:
        raise DataError(f"expected an (H, W) or (H, W, 3) image, got shape {img.shape}")
    return img.astype(np.uint8)


def _matcher(cfg: StereoConfig) -> cv2.StereoSGBM:
    bs, cn = cfg.block_size, 1
    return cv2.StereoSGBM_create(
        minDisparity=0, numDisparities=cfg.num_disparities, blockSize=bs,
        P1=8 * cn * bs * bs, P2=32 * cn * bs * bs, disp12MaxDiff=-1,
        uniquenessRatio=cfg.uniqueness_ratio, speckleWindowSize=cfg.speckle_window,
        speckleRange=cfg.speckle_range, mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY)


def sgbm_disparity(left: np.ndarray, right: np.ndarray, cfg: StereoConfig) -> np.ndarray:
    """Left-view disparity (H, W) float32 in pixels; NaN where SGBM found no match."""
    gl, gr = to_gray(left), to_gray(right)
    if gl.shape != gr.shape:
        raise DataError(f"left image shape {gl.shape} != right image shape {gr.shape}")
    raw = _matcher(cfg).compute(gl, gr)
    disp = raw.astype(np.float32) / 16.0  # OpenCV's fixed-point DISP_SCALE
    disp[(raw < 0) | (disp <= 0)] = np.nan  # below minDisparity (=0) or zero: invalid
    return disp


def left_right_check(left: np.ndarray, right: np.ndarray, disp_left: np.ndarray,
                     cfg: StereoConfig) -> np.ndarray:
    """|d_L(x) - d_R(x - d_L(x))| (H, W) in px; +inf where either side is invalid."""
    gl, gr = to_gray(left), to_gray(right)
    # the right view's disparity: match the mirrored pair (right becomes the reference)
    disp_right = sgbm_disparity(gr[:, ::-1].copy(), gl[:, ::-1].copy(), cfg)[:, ::-1]
    h, w = disp_left.shape
    xs = np.arange(w)[None, :] - np.nan_to_num(disp_left, nan=0.0)
    xi = np.clip(np.round(xs).astype(np.int64), 0, w - 1)
    dr = disp_right[np.arange(h)[:, None], xi]
    err = np.abs(disp_left - dr)
    return np.where(np.isfinite(err), err, np.inf).astype(np.float32)


def matching_uniqueness(left: np.ndarray, right: np.ndarray, max_disp: int,
                        block: int = 5) -> np.ndarray:
    """Margin (c2 - c1) / (c2 + eps) between the best and second-best (non-adjacent) box-SAD
    costs over disparities 0..max_disp-1, (H, W) in [0, 1].
    """
    gl = to_gray(left).astype(np.float32)
    gr = to_gray(right).astype(np.float32)
    h, w = gl.shape
    cost = np.full((max_disp, h, w), np.inf, dtype=np.float32)
    for d in range(max_disp):  # one array op per disparity hypothesis
        diff = np.full((h, w), 255.0, dtype=np.float32)
        diff[:, d:] = np.abs(gl[:, d:] - gr[:, : w - d])
        cost[d] = cv2.boxFilter(diff, -1, (block, block), normalize=True)
        cost[d, :, : d + block // 2] = np.inf  # hypothesis leaves the right image
    best = cost.argmin(axis=0)
    c1 = np.take_along_axis(cost, best[None], 0)[0]
    ds = np.arange(max_disp)[:, None, None]
    masked = np.where(np.abs(ds - best[None]) <= 1, np.inf, cost)
    c2 = masked.min(axis=0)
    with np.errstate(invalid="ignore"):
        margin = (c2 - c1) / (c2 + 1e-3)
    return np.where(np.isfinite(margin), np.clip(margin, 0, 1), 0.0).astype(np.float32)


def stereo_depth(disp: np.ndarray, focal_px: float, baseline_m: float,
                 min_disp: float = 0.5) -> np.ndarray:
    """Z = f B / d (H, W) float32; NaN where the disparity is invalid or below `min_disp`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = focal_px * baseline_m / disp
    return np.where(np.isfinite(disp) & (disp >= min_disp), z, np.nan).astype(np.float32)


def run_stereo(left: np.ndarray, right: np.ndarray, focal_px: float, baseline_m: float,
               cfg: StereoConfig) -> dict:
    """SGBM depth and its cues at the input resolution: depth (NaN = invalid), disparity,
    lr_error (px), uniqueness, valid (after the left-right check)."""
    disp = sgbm_disparity(left, right, cfg)
    lr = left_right_check(left, right, disp, cfg)
    depth = stereo_depth(disp, focal_px, baseline_m)
    uniq = matching_uniqueness(left, right, cfg.num_disparities, cfg.block_size)
    valid = np.isfinite(depth) & (lr <= cfg.lr_max_diff)
    return {"depth": depth, "disparity": disp, "lr_error": lr, "uniqueness": uniq,
            "valid": valid}
