"""Depth Error Indication (DEI): per-pixel expected depth error of each sensor from physics
(MobiFuse §"DEI modality"; the formulas are our reconstruction from standard ToF and stereo
sensor models, since the paper's own are unpublished).

ToF, sigma_tof (m) = sqrt(shot^2 + mpi^2 + edge^2 + wrap^2 + hole^2):
- shot: c / (4 pi f) * sqrt((A + B) / 2 + read^2) / A  -- amplitude A and ambient offset B in
  electrons (grows with distance, low IR albedo, grazing angles, ambient light);
- mpi: multipath proxy = mpi_coef * Z * clip(concavity / 0.05, 0, 1), concavity being the
  positive Laplacian of inverse depth (zero on planes, > 0 in concave corners) x f x Z;
- edge: flying-pixel proxy = edge_coef * max_3x3 |grad Z| (m per px);
- wrap: risk near the unambiguous range c / (2 f);
- hole: `hole_sigma` + `hole_rel` Z where no ToF sample landed (dropouts, reprojection holes).

Stereo, sigma_st (m) = f B / (d + doffs)^2 * sigma_disp = Z^2 / (f B) * sigma_disp with Z from
the *stereo's own* depth, sigma_disp (px) = floor + texture_coef / sqrt(eps + structure-tensor
trace) + lr_coef * LR inconsistency + uniq_coef * (1 - matching margin)
+ curv_coef / (1 + cost curvature) + dark_coef / (brightness + 10); `hole_sigma` + `hole_rel` Z
where SGBM gave nothing (or hit the end of its search). With `st_depth_ref="local_quantile"`
(the default) the Z of the depth factor and of the hole term is max(Z_st, Q), Q the 75 %
quantile of Z_st over a window 0.4 x the width wide (`stereo_depth_reference`): SGBM's gross
mismatches mostly land at too-large disparities, so they read *near* and Z_st^2 alone ("own")
would call them the most reliable.

Each sensor's sigma uses that sensor's own evidence only, never the other sensor's depth, and
is multiplied by a calibration factor (`DEIConfig.tof_scale`, `st_scale`) fitted by
`calibrate_scale` so that |error| <= 2 sigma on 95 % of the pixels of held-out training-rig
scenes (`python -m mobifuse.experiments.calibrate_dei`). `st_hole_scale` scales the stereo
hole term apart: the "local_quantile" depth reference inflates the matched-pixel term on phone
rigs, and one factor fitted there would leave the hole term too small on other rigs.

Every map is (H, W) float32. `dei_channels` stacks the network's error-branch input (C, H, W).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from mobifuse.config import DEIConfig
from mobifuse.geometry import gaussian_blur
from mobifuse.simulator import C_LIGHT, unambiguous_range

__all__ = ["concavity", "edge_strength", "texture_strength", "tof_dei", "stereo_dei",
           "stereo_depth_reference", "dei_channels", "DEI_CHANNELS", "calibrate_scale", "coverage"]

DEI_CHANNELS = ("log_sigma_tof", "log_sigma_st", "log_shot", "mpi", "log_edge", "tof_hole",
                "log_sigma_disp", "lr_error", "uniqueness", "wrap_risk", "log_curvature",
                "st_hole")


def concavity(depth: np.ndarray, focal_px: float) -> np.ndarray:
    """Positive Laplacian of (smoothed) inverse depth x f x Z: 0 on planes and convex shapes,
    > 0 where surfaces meet in a concave corner (the multipath-prone geometry)."""
    z = np.maximum(depth, 1e-3)
    inv = gaussian_blur(1.0 / z, 1.5)
    lap = cv2.Laplacian(inv, -1, ksize=1, borderType=cv2.BORDER_REFLECT)  # = ndimage.laplace
    return np.maximum(lap * focal_px * z, 0).astype(np.float32)


def edge_strength(depth: np.ndarray) -> np.ndarray:
    """max over a 3x3 window of |grad Z| (m per px): large at depth discontinuities."""
    gy, gx = np.gradient(depth.astype(np.float64))
    return cv2.dilate(np.hypot(gx, gy), np.ones((3, 3), np.uint8),  # = 3x3 maximum_filter
                      borderType=cv2.BORDER_REFLECT).astype(np.float32)


def texture_strength(gray: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Trace of the structure tensor (grey levels^2 per px^2), smoothed over `sigma` px."""
    g = gray.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / 8
    return gaussian_blur(gx * gx + gy * gy, sigma).astype(np.float32)


def tof_dei(depth: np.ndarray, amplitude: np.ndarray, ambient: np.ndarray,
            hole: np.ndarray, focal_px: float, mod_freq_hz: float, read_noise: float,
            cfg: DEIConfig) -> dict:
    """ToF expected error (m) and its components; inputs (H, W) in the left view."""
    a = np.maximum(amplitude.astype(np.float64), 1.0)
    b = np.maximum(ambient.astype(np.float64), 0.0)
    shot = C_LIGHT / (4 * np.pi * mod_freq_hz) * np.sqrt((a + b) / 2 + read_noise**2) / a
    conc = concavity(depth, focal_px)
    mpi = cfg.mpi_coef * depth * np.clip(conc / 0.05, 0, 1)
    edge_g = edge_strength(depth)
    edge = cfg.edge_coef * edge_g
    r_u = unambiguous_range(mod_freq_hz)
    wrap = cfg.hole_sigma / (1 + np.exp(-(depth - (1 - cfg.wrap_margin) * r_u) / (0.03 * r_u)))
    hole_s = (cfg.hole_sigma + cfg.hole_rel * depth) * hole.astype(np.float64)
    sigma = cfg.tof_scale * (np.sqrt(shot**2 + mpi**2 + edge**2 + wrap**2 + hole_s**2) + 1e-3)
    f32 = np.float32
    return {"sigma": sigma.astype(f32), "raw": (sigma / cfg.tof_scale).astype(f32),
            "shot": shot.astype(f32), "mpi": mpi.astype(f32),
            "concavity": conc, "edge": edge_g, "wrap": wrap.astype(f32), "hole": hole.astype(f32)}


def stereo_depth_reference(depth: np.ndarray, quantile: float = 0.75, window: float = 0.4,
                           cols: int = 40) -> np.ndarray:
    """max(Z, local `quantile` of Z over a square window `window` x the width wide) (H, W).

    The quantile is taken on a grid of about `cols` columns (every `W // cols`-th pixel) and
    bilinearly resized back, so it costs a few ms at any resolution."""
    z = np.asarray(depth, np.float32)
    h, w = z.shape
    step = max(1, w // cols)
    zs = z[::step, ::step]
    k = max(1, int(round(window * zs.shape[1])) | 1)
    q = ndimage.percentile_filter(zs, 100 * quantile, size=k, mode="reflect")
    q = cv2.resize(q, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.maximum(z, q)


def stereo_dei(depth: np.ndarray, valid: np.ndarray, texture: np.ndarray, lr_error: np.ndarray,
               uniqueness: np.ndarray, brightness: np.ndarray, focal_px: float,
               baseline_m: float, cfg: DEIConfig, curvature: np.ndarray | None = None) -> dict:
    """Stereo expected error (m) and sigma_disp (px) from the stereo's own evidence; `depth` is
    the (hole-filled) stereo depth, `focal_px` at the disparity's resolution."""
    lr = np.minimum(np.nan_to_num(lr_error, nan=5.0, posinf=5.0), 5.0)
    curv = np.zeros_like(lr) if curvature is None else np.maximum(curvature, 0)
    sigma_disp = (cfg.disp_noise_px + cfg.texture_coef / np.sqrt(cfg.texture_eps + texture)
                  + cfg.lr_coef * lr + cfg.uniq_coef * (1 - uniqueness)
                  + cfg.curv_coef / (1.0 + curv) + cfg.dark_coef / (brightness + 10.0))
    z = np.maximum(depth.astype(np.float64), 0.05)
    if cfg.st_depth_ref == "local_quantile":
        z = stereo_depth_reference(z, cfg.st_ref_quantile, cfg.st_ref_window).astype(np.float64)
    elif cfg.st_depth_ref != "own":
        raise ValueError(f"st_depth_ref must be 'own' or 'local_quantile', "
                         f"got {cfg.st_depth_ref!r}")
    sigma_z = z**2 / (focal_px * baseline_m) * sigma_disp
    hole = ~valid
    hole_s = (cfg.hole_sigma + cfg.hole_rel * z) * hole
    sigma = cfg.st_scale * (np.sqrt(sigma_z**2 + hole_s**2) + 1e-3)
    raw = sigma / cfg.st_scale  # the net's input: no calibration factor
    if cfg.st_hole_scale != 1.0:  # matched pixels and holes calibrated apart
        sigma = cfg.st_scale * (np.sqrt(sigma_z**2 + (cfg.st_hole_scale * hole_s)**2) + 1e-3)
    return {"sigma": sigma.astype(np.float32), "raw": raw.astype(np.float32),
            "sigma_disp": sigma_disp.astype(np.float32),
            "lr": lr.astype(np.float32), "hole": hole.astype(np.float32),
            "curvature": curv.astype(np.float32)}


def dei_channels(tof: dict, st: dict, uniqueness: np.ndarray) -> np.ndarray:
    """The error branch's DEI input (len(DEI_CHANNELS), H, W), roughly unit-scaled; the sigmas
    enter before their calibration factor, so calibrating never changes the net's inputs."""
    ch = [np.log(tof["raw"]), np.log(st["raw"]), np.log(tof["shot"] + 1e-4),
          np.clip(tof["concavity"] / 0.05, 0, 3), np.log(tof["edge"] + 1e-3), tof["hole"],
          np.log(st["sigma_disp"]), st["lr"] / 5.0, uniqueness, tof["wrap"],
          np.log1p(st["curvature"]), st["hole"]]
    return np.stack(ch).astype(np.float32)


def coverage(sigma: np.ndarray, err: np.ndarray, k: float = 2.0) -> float:
    """Fraction of pixels with |err| <= k sigma (finite errors only)."""
    e = np.abs(np.asarray(err, np.float64))
    m = np.isfinite(e)
    return float(np.mean(e[m] <= k * np.asarray(sigma, np.float64)[m]))


def calibrate_scale(sigmas, errors, target: float = 0.95, k: float = 2.0) -> float:
    """The factor c with |err| <= k c sigma on a `target` fraction of the pooled pixels: the
    `target` quantile of |err| / (k sigma). sigmas, errors: arrays or lists of arrays (frames
    may differ in size)."""
    r = np.concatenate([(np.abs(np.asarray(e, np.float64)) / (k * np.asarray(s, np.float64)))
                        .ravel() for s, e in zip(list(sigmas), list(errors))])
    return float(np.quantile(r[np.isfinite(r)], target))
