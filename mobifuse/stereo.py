"""Stereo depth from a rectified pair with OpenCV SGBM, plus the cues the stereo DEI needs.
Depth Z = f B / (d + doffs) (`Calibration`), so the depth error grows as
f B sigma_disp / (d + doffs)^2.

- `disparity_search`: the disparity range the rig needs, from the calibration and the depth
  range (the calibration's, else the ToF depths', else `StereoConfig.depth_range`), rounded to
  SGBM's constraints (numDisparities a multiple of 16); a warning when it must be clipped.
- `sgbm_params`: OpenCV's recommended settings for the image size: block 3/5/7 by width
  (reconstructed from OpenCV's samples, which use 3 at VGA), P1 = 8 cn block^2,
  P2 = 32 cn block^2, uniqueness 10 %, speckle window 100, speckle range 2, preFilterCap 63.
- `sgbm_disparity`: `cv2.StereoSGBM` (3-way mode); OpenCV returns int16 disparity x16
  (`DISP_SCALE`), so we divide by 16 and mark values below `minDisparity` invalid (NaN).
- `left_right_check`: the right view's disparity from the mirrored pair; the per-pixel
  inconsistency |d_L(x) - d_R(x - d_L(x))| (px).
- `cost_volume`, `matching_uniqueness`, `matching_evidence`: SGBM does not expose its cost
  curve, so a box-SAD cost volume (one array op per disparity) gives the margin between the best
  and second-best non-adjacent cost in [0, 1] (0 = ambiguous: textureless, repetitive) and the
  cost curvature at SGBM's disparity (flat = poorly localised).
- `stereo_depth`: Z = f B / (d + doffs) for valid disparities.

Shapes: images (H, W) or (H, W, 3) uint8; outputs (H, W) float32 / bool.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np

from mobifuse.config import StereoConfig
from mobifuse.threads import pool, wait_all
from shared.errors import DataError

__all__ = ["to_gray", "sgbm_params", "disparity_search", "sgbm_disparity", "right_disparity",
           "left_right_check",
           "cost_volume", "matching_uniqueness", "matching_evidence", "cost_margin",
           "cost_curvature", "stereo_depth",
           "run_stereo"]


def to_gray(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB or (H, W) -> (H, W) uint8."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_RGB2GRAY)
    if img.ndim != 2:
        raise DataError(f"expected an (H, W) or (H, W, 3) image, got shape {img.shape}")
    return img.astype(np.uint8)


def sgbm_params(cfg: StereoConfig, width: int) -> dict:
    """Block size and P1/P2: the config's, or OpenCV's recommended values for this width."""
    bs = cfg.block_size or (3 if width < 500 else 5 if width <= 1000 else 7)
    cn = 3 if cfg.color else 1
    p1 = cfg.p1 or 8 * cn * bs * bs
    p2 = cfg.p2 or 32 * cn * bs * bs
    return {"block_size": bs, "p1": p1, "p2": max(p2, p1 + 1), "channels": cn}


def disparity_search(calib, width: int, cfg: StereoConfig,
                     tof_depths: np.ndarray | None = None) -> dict:
    """{min_disp, num_disp, needed: (lo, hi) px, depth_range, clipped, message}.

    `calib` is a validated `Calibration`. With `cfg.num_disparities` > 0 the config's range is
    used as is. Else the depth range is the calibration's, else [0.5th percentile / 1.2,
    2 x 99.5th percentile] of the valid ToF depths (a wrapped far wall reads near, so the far end
    is generous), else `cfg.depth_range`; then d = f B / Z - doffs at both ends, +-2 px."""
    bs = sgbm_params(cfg, width)["block_size"]
    room = max(16, (width - bs) // 16 * 16)  # SGBM needs the search to fit the image
    if cfg.num_disparities:
        return {"min_disp": cfg.min_disparity, "num_disp": min(cfg.num_disparities, room),
                "needed": None, "depth_range": None, "clipped": cfg.num_disparities > room,
                "message": ""}
    if calib.depth_range is not None:
        near, far = calib.depth_range
    elif tof_depths is not None and np.size(tof_depths) >= 16:
        z = np.asarray(tof_depths, dtype=np.float64)
        near, far = np.percentile(z, 0.5) / 1.2, 2.0 * np.percentile(z, 99.5)
    else:
        near, far = cfg.depth_range
    lo = float(calib.disparity_from_depth(far)) - 2
    hi = float(calib.disparity_from_depth(near)) + 2
    min_disp = int(np.floor(lo))
    need = int(np.ceil(hi)) - min_disp
    num = -(-need // 16) * 16
    cap = min(cfg.max_disparities, room)
    out = {"min_disp": min_disp, "num_disp": min(num, cap), "needed": (lo, hi),
           "depth_range": (float(near), float(far)), "clipped": num > cap, "message": ""}
    if num > cap:
        z_near = calib.fb / (min_disp + cap + calib.doffs) if min_disp + cap + calib.doffs > 0 \
            else float("inf")
        out["message"] = (f"stereo search clipped: depths {near:.2f}-{far:.2f} m need "
                          f"disparities {lo:.0f}..{hi:.0f} px ({num}), searching {min_disp}.."
                          f"{min_disp + cap} (max_disparities={cfg.max_disparities}, width "
                          f"{width}); stereo is blind nearer than {z_near:.2f} m")
    return out


def _matcher(cfg: StereoConfig, width: int, min_disp: int, num_disp: int) -> cv2.StereoSGBM:
    p = sgbm_params(cfg, width)
    return cv2.StereoSGBM_create(
        minDisparity=int(min_disp), numDisparities=int(num_disp), blockSize=p["block_size"],
        P1=p["p1"], P2=p["p2"], disp12MaxDiff=-1, preFilterCap=cfg.pre_filter_cap,
        uniquenessRatio=cfg.uniqueness_ratio, speckleWindowSize=cfg.speckle_window,
        speckleRange=cfg.speckle_range, mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY)


def _inputs(left: np.ndarray, right: np.ndarray, cfg: StereoConfig):
    if cfg.color and np.ndim(left) == 3:
        gl, gr = np.ascontiguousarray(left, np.uint8), np.ascontiguousarray(right, np.uint8)
    else:
        gl, gr = to_gray(left), to_gray(right)
    if gl.shape != gr.shape:
        raise DataError(f"left image shape {gl.shape} != right image shape {gr.shape}")
    return gl, gr


def _search(cfg: StereoConfig, width: int, search) -> tuple[int, int]:
    if search is not None:
        return int(search[0]), int(search[1])
    bs = sgbm_params(cfg, width)["block_size"]
    room = max(16, (width - bs) // 16 * 16)
    return cfg.min_disparity, min(cfg.num_disparities or 64, room)


def sgbm_disparity(left: np.ndarray, right: np.ndarray, cfg: StereoConfig,
                   search: tuple[int, int] | None = None) -> np.ndarray:
    """Left-view disparity (H, W) float32 in pixels; NaN where SGBM found no match.
    `search` = (min_disp, num_disp); default: the config's (64 disparities from 0 if 0)."""
    gl, gr = _inputs(left, right, cfg)
    min_d, num_d = _search(cfg, gl.shape[1], search)
    raw = _matcher(cfg, gl.shape[1], min_d, num_d).compute(gl, gr)
    disp = raw.astype(np.float32) / 16.0  # OpenCV's fixed-point DISP_SCALE
    disp[raw < min_d * 16] = np.nan  # OpenCV marks no-match as (minDisparity - 1) x 16
    return disp


def right_disparity(left: np.ndarray, right: np.ndarray, cfg: StereoConfig,
                    search: tuple[int, int] | None = None) -> np.ndarray:
    """The right view's disparity: SGBM on the mirrored pair (right becomes the reference; the
    disparity keeps its sign and range)."""
    gl, gr = _inputs(left, right, cfg)
    return sgbm_disparity(gr[:, ::-1].copy(), gl[:, ::-1].copy(), cfg, search)[:, ::-1]


def left_right_check(left: np.ndarray, right: np.ndarray, disp_left: np.ndarray,
                     cfg: StereoConfig, search: tuple[int, int] | None = None,
                     disp_right: np.ndarray | None = None) -> np.ndarray:
    """|d_L(x) - d_R(x - d_L(x))| (H, W) in px; +inf where either side is invalid."""
    if disp_right is None:
        disp_right = right_disparity(left, right, cfg, search)
    h, w = disp_left.shape
    xs = np.arange(w)[None, :] - np.nan_to_num(disp_left, nan=0.0)
    xi = np.clip(np.round(xs).astype(np.int64), 0, w - 1)
    dr = disp_right[np.arange(h)[:, None], xi]
    err = np.abs(disp_left - dr)
    return np.where(np.isfinite(err), err, np.inf).astype(np.float32)


def cost_volume(left: np.ndarray, right: np.ndarray, min_disp: int, num_disp: int,
                block: int = 5) -> np.ndarray:
    """Box-SAD matching cost (num_disp, H, W) float32 of disparities min_disp + k; inf where
    the hypothesis leaves the right image."""
    gl = to_gray(left).astype(np.float32)
    gr = to_gray(right).astype(np.float32)
    h, w = gl.shape
    cost = np.full((num_disp, h, w), np.inf, dtype=np.float32)
    for k in range(num_disp):  # one array op per disparity hypothesis
        d = min_disp + k
        diff = np.full((h, w), 255.0, dtype=np.float32)
        if 0 <= d < w:
            diff[:, d:] = np.abs(gl[:, d:] - gr[:, : w - d])
        elif -w < d < 0:
            diff[:, :d] = np.abs(gl[:, :d] - gr[:, -d:])
        cost[k] = cv2.boxFilter(diff, -1, (block, block), normalize=True)
        if d >= 0:
            cost[k, :, : min(w, d + block // 2)] = np.inf
        else:
            cost[k, :, max(0, w + d - block // 2):] = np.inf
    return cost


def _margin(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    best = cost.argmin(axis=0)
    c1 = np.take_along_axis(cost, best[None], 0)[0]
    masked = cost.copy()
    for o in (-1, 0, 1):  # the best cost and its neighbours are not a second minimum
        np.put_along_axis(masked, np.clip(best + o, 0, len(cost) - 1)[None], np.inf, 0)
    c2 = masked.min(axis=0)
    with np.errstate(invalid="ignore"):
        margin = (c2 - c1) / (c2 + 1e-3)
    return np.where(np.isfinite(margin), np.clip(margin, 0, 1), 0.0).astype(np.float32), best


def matching_uniqueness(left: np.ndarray, right: np.ndarray, max_disp: int,
                        block: int = 5, min_disp: int = 0) -> np.ndarray:
    """Margin (c2 - c1) / (c2 + eps) between the best and second-best (non-adjacent) box-SAD
    costs over disparities min_disp .. min_disp + max_disp - 1, (H, W) in [0, 1]."""
    return _margin(cost_volume(left, right, min_disp, max_disp, block))[0]


def matching_evidence(left: np.ndarray, right: np.ndarray, disp: np.ndarray, min_disp: int,
                      num_disp: int, block: int = 5) -> dict:
    """The cost curve's evidence about the disparity `disp` (H, W) (NaN = none):
    'uniqueness' margin in [0, 1] and 'curvature' c(d-1) + c(d+1) - 2 c(d) of the cost at the
    rounded disparity, per grey level (0 where flat, unknown or at the search edge)."""
    return cost_curvature(*cost_margin(left, right, min_disp, num_disp, block), disp, min_disp)


def cost_margin(left: np.ndarray, right: np.ndarray, min_disp: int, num_disp: int,
                block: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The part of `matching_evidence` that does not need SGBM's disparity (so it can run
    beside SGBM): the cost volume and its uniqueness margin."""
    cost = cost_volume(left, right, min_disp, num_disp, block)
    return cost, _margin(cost)[0]


def cost_curvature(cost: np.ndarray, margin: np.ndarray, disp: np.ndarray,
                   min_disp: int) -> dict:
    """`matching_evidence`'s dict from `cost_margin`'s output and the disparity `disp`."""
    num_disp = len(cost)
    k = np.round(np.nan_to_num(disp, nan=-1e6) - min_disp).astype(np.int64)
    inside = (k >= 1) & (k <= num_disp - 2)
    kc = np.clip(k, 1, num_disp - 2)
    take = lambda o: np.take_along_axis(cost, (kc + o)[None], 0)[0]  # noqa: E731
    with np.errstate(invalid="ignore"):
        curv = take(-1) + take(1) - 2 * take(0)
    curv = np.where(inside & np.isfinite(curv), np.maximum(curv, 0), 0.0)
    return {"uniqueness": margin, "curvature": curv.astype(np.float32)}


def stereo_depth(disp: np.ndarray, focal_px: float, baseline_m: float, doffs: float = 0.0,
                 min_disp: float = 0.5) -> np.ndarray:
    """Z = f B / (d + doffs) (H, W) float32; NaN where d is invalid or d + doffs < `min_disp`."""
    dd = np.asarray(disp, dtype=np.float64) + doffs
    with np.errstate(divide="ignore", invalid="ignore"):
        z = focal_px * baseline_m / dd
    return np.where(np.isfinite(dd) & (dd >= min_disp), z, np.nan).astype(np.float32)


def run_stereo(left: np.ndarray, right: np.ndarray, calib, cfg: StereoConfig, s: int = 1,
               tof_depths: np.ndarray | None = None) -> dict:
    """SGBM over the rig's disparity search and its evidence.

    Full resolution (H, W): depth (NaN = invalid), disparity, lr_error (px), valid (after the
    left-right check). Work resolution (every `s`-th pixel): 'uniqueness', 'curvature' from a
    cost volume of the `s`-times smaller pair. Plus 'search' (`disparity_search`'s dict)."""
    gl, gr = _inputs(left, right, cfg)
    H, W = gl.shape[:2]
    search = disparity_search(calib, W, cfg, tof_depths)
    if search["clipped"] and search["message"]:
        warnings.warn(search["message"], UserWarning, stacklevel=2)
    rng = (search["min_disp"], search["num_disp"])
    g1, g2 = to_gray(left), to_gray(right)
    if s > 1:  # evidence on the s-times smaller pair: s^3 fewer cost entries
        w_s, h_s = -(-W // s), -(-H // s)
        g1 = cv2.resize(g1, (w_s, h_s), interpolation=cv2.INTER_AREA)
        g2 = cv2.resize(g2, (w_s, h_s), interpolation=cv2.INTER_AREA)
    lo = int(np.floor(rng[0] / s))
    n = max(3, int(np.ceil((rng[0] + rng[1]) / s)) - lo)
    # OpenCV and numpy's array loops release the GIL: both views and the cost volume at once
    fut = pool().submit(right_disparity, left, right, cfg, rng)
    cost = pool().submit(cost_margin, g1, g2, lo, n, 5 if s == 1 else 3)
    try:
        disp = sgbm_disparity(left, right, cfg, rng)
        lr = left_right_check(left, right, disp, cfg, rng, fut.result())
        ev = cost_curvature(*cost.result(), disp[::s, ::s] / s, lo)
    finally:
        wait_all([fut, cost])
    depth = stereo_depth(disp, calib.K_left[0, 0], calib.baseline_m, calib.doffs)
    # a disparity at either end of the search is a clipped match, not a measurement
    inside = (disp > rng[0] + 0.5) & (disp < rng[0] + rng[1] - 1.5)
    valid = np.isfinite(depth) & (lr <= cfg.lr_max_diff) & inside
    return {"depth": depth, "disparity": disp, "lr_error": lr, "valid": valid,
            "uniqueness": ev["uniqueness"], "curvature": ev["curvature"], "search": search}
