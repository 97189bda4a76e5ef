"""From raw sensor frames to the fusion inputs: SGBM, ToF reprojection, densification, DEI.

`prepare_frame` is the one path both the simulator's data and real captures (`mobifuse.api`)
go through. Any image size works: everything it returns lives on the left camera's grid
subsampled by `downsample` (work pixel (i, j) = image pixel (s i, s j)), shapes
(h, w) = (ceil(H / s), ceil(W / s)):

- tof (densified, m; multipath-compensated and splatted by surface where the DEI config says),
  tof_sensor (the sensor's depth densified without those two steps; else tof itself),
  tof_valid (a sample landed), st (SGBM depth, nearest-filled),
  st_valid (SGBM + left-right check), gray (0..1), sigma_tof, sigma_st (DEI, m),
  dei (len(DEI_CHANNELS), h, w), plus diagnostics (tof_sparse, texture, ...), 'search'
  (the stereo disparity search) and 'warnings' (list of str).
"""

from __future__ import annotations

import cv2
import numpy as np

from mobifuse.calibration import Calibration, as_calibration
from mobifuse.config import DEIConfig, StereoConfig
from mobifuse.dei import dei_channels, stereo_dei, texture_strength, tof_dei
from mobifuse.geometry import densify_many, nearest_fill, reproject_tof
from mobifuse.multipath import compensate_multipath
from mobifuse.simulator import work_shape
from mobifuse.stereo import run_stereo, sgbm_params, to_gray
from mobifuse.threads import pool, wait_all
from shared.errors import DataError
from shared.validate import finite_array

__all__ = ["Calibration", "prepare_frame", "check_array"]


def check_array(name: str, x, ndim: tuple[int, ...], allow_nan: bool = False) -> np.ndarray:
    """Array `x` with one of the allowed ranks, finite unless `allow_nan`; else a DataError."""
    a = np.asarray(x)
    if a.ndim not in ndim:
        raise DataError(f"'{name}' must have {' or '.join(map(str, ndim))} dims, got {a.shape}")
    if a.dtype.kind == "f" and not allow_nan and not np.all(np.isfinite(a)):
        raise DataError(f"'{name}' contains NaN or inf values")
    return a


def _work_K(K: np.ndarray, s: int) -> np.ndarray:
    Kw = K.astype(np.float64) / s
    Kw[2, 2] = 1.0
    return Kw


def _tof_branch(tof_depth, tof_valid, tof_amplitude, tof_ambient, calib: Calibration,
                Kw: np.ndarray, shape: tuple[int, int], dei_cfg: DEIConfig, left: np.ndarray,
                s: int, amplitude_given: bool):
    """The ToF (multipath-compensated where the DEI config says) warped into the left view at
    the work resolution, densified, and its DEI, plus the left image's cues that the stereo DEI
    needs: (reproject_tof's dict, dense depth, tof_dei's dict, (grey image, texture and
    brightness on the work grid), the sensor's own depth densified without the ToF
    preprocessing (the dense depth itself without any))."""
    sensor_depth = tof_depth
    if dei_cfg.tof_mpi_gain > 0:  # every ToF use below sees the multipath-compensated depth
        tof_depth = compensate_multipath(tof_depth, tof_valid,
                                         tof_amplitude if amplitude_given else None,
                                         calib.K_tof, calib.mod_freq_hz, calib.tof_power,
                                         dei_cfg.tof_mpi_gain)
    gray_full = to_gray(left)
    texture = texture_strength(gray_full)[::s, ::s]
    bright = cv2.blur(gray_full.astype(np.float32), (7, 7),  # = ndimage.uniform_filter(., 7)
                      borderType=cv2.BORDER_REFLECT)[::s, ::s]
    warped = reproject_tof(tof_depth, tof_valid, calib.K_tof, Kw, calib.T_left_tof, shape,
                           {"amplitude": np.asarray(tof_amplitude, dtype=np.float64),
                            "ambient": np.asarray(tof_ambient, dtype=np.float64)},
                           dei_cfg.tof_surface_tol)
    if not warped["valid"].any():
        raise DataError("no ToF sample lands in the left view (check the extrinsics)")
    tof_dense, amp, amb = densify_many([warped["depth"], warped["amplitude"],
                                        warped["ambient"]], warped["valid"])
    # no sample within 1.5 px (distance transform > 1.5) = none in the 3x3 neighbourhood
    hole = cv2.dilate(warped["valid"].astype(np.uint8), np.ones((3, 3), np.uint8)) == 0
    dt = tof_dei(tof_dense, amp, amb, hole, Kw[0, 0], calib.mod_freq_hz, calib.tof_read_noise,
                 dei_cfg)
    tof_sensor = tof_dense
    if dei_cfg.tof_mpi_gain > 0 or dei_cfg.tof_surface_tol > 0:  # the sensor's own, as before
        w0 = reproject_tof(sensor_depth, tof_valid, calib.K_tof, Kw, calib.T_left_tof, shape)
        tof_sensor = densify_many([w0["depth"]], w0["valid"])[0]
    return warped, tof_dense, dt, (gray_full, texture, bright), tof_sensor


def prepare_frame(left, right, tof_depth, tof_valid, calib: Calibration | dict,
                  tof_amplitude=None, tof_ambient=None, downsample: int = 2,
                  stereo_cfg: StereoConfig | None = None,
                  dei_cfg: DEIConfig | None = None) -> dict:
    """Run SGBM over the rig's disparity search at the RGB resolution, warp the ToF into the
    left view at the work resolution, densify both, compute each sensor's DEI from its own
    evidence. Without amplitude, a 1/r^2 proxy is used (see README)."""
    stereo_cfg = stereo_cfg or StereoConfig()
    dei_cfg = dei_cfg or DEIConfig()
    calib = as_calibration(calib)
    left = check_array("left", left, (2, 3))
    right = check_array("right", right, (2, 3))
    if left.shape != right.shape:
        raise DataError(f"left image shape {left.shape} != right image shape {right.shape}")
    if left.dtype != np.uint8 or right.dtype != np.uint8:
        raise DataError(f"'left' and 'right' must be uint8 images, got {left.dtype} and "
                        f"{right.dtype}")
    tof_depth = check_array("tof_depth", tof_depth, (2,), allow_nan=True).astype(np.float64)
    if tof_valid is None:
        tof_valid = np.isfinite(tof_depth) & (tof_depth > 0)
    tof_valid = np.asarray(tof_valid, dtype=bool)
    if tof_valid.shape != tof_depth.shape:
        raise DataError(f"tof_valid shape {tof_valid.shape} != tof_depth shape {tof_depth.shape}")
    tof_valid = tof_valid & np.isfinite(tof_depth) & (tof_depth > 0)
    if not tof_valid.any():
        raise DataError("the ToF frame has no valid pixel (all-invalid depth)")
    tof_depth = np.where(tof_valid, tof_depth, 0.0)
    amplitude_given = tof_amplitude is not None
    if tof_amplitude is None:  # proxy: albedo 0.5, normal incidence
        tof_amplitude = 0.5 * calib.tof_power / np.maximum(tof_depth, 0.1) ** 2
    if tof_ambient is None:
        tof_ambient = np.zeros_like(tof_depth)
    for name, arr in (("tof_amplitude", tof_amplitude), ("tof_ambient", tof_ambient)):
        if np.shape(arr) != tof_depth.shape:
            raise DataError(f"'{name}' shape {np.shape(arr)} != tof_depth shape {tof_depth.shape}")
        a = finite_array(arr, f"'{name}'")
        if (a < 0).any():
            raise DataError(f"'{name}' has negative values (electrons are >= 0)")
    s = downsample
    if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
        raise DataError(f"downsample must be a positive integer, got {s!r}")
    H, W = left.shape[:2]
    bs = sgbm_params(stereo_cfg, W)["block_size"]
    if W < 16 + bs or H < bs or min(H, W) < 2 * s:
        raise DataError(f"image size {W}x{H} is too small for stereo matching (at least "
                        f"{16 + bs}x{bs}: 16 disparities + block_size wide)")
    h, w = work_shape(H, W, s)
    Kw = _work_K(calib.K_left, s)
    f_full = float(calib.K_left[0, 0])

    # the ToF branch (its multipath compensation included) needs nothing from the stereo one:
    # it runs beside SGBM (OpenCV, numpy and scipy release the GIL in their array loops); the
    # stereo search reads the sensor's own depths
    tof_fut = pool().submit(_tof_branch, tof_depth, tof_valid, tof_amplitude, tof_ambient,
                            calib, Kw, (h, w), dei_cfg, left, s, amplitude_given)
    try:
        st = run_stereo(left, right, calib, stereo_cfg, s, tof_depth[tof_valid])
    finally:
        wait_all([tof_fut])
    warped, tof_dense, dt, (gray_full, texture, bright), tof_sensor = tof_fut.result()
    warnings = [st["search"]["message"]] if st["search"]["clipped"] else []
    if dei_cfg.tof_mpi_gain > 0 and not amplitude_given:
        warnings.append("ToF multipath compensation without a ToF amplitude: every surface "
                        "taken as IR albedo 0.5 (pass the amplitude, or tof_mpi_gain=0)")
    st_depth = st["depth"][::s, ::s]
    st_valid = st["valid"][::s, ::s]
    if st_valid.any():
        st_dense = nearest_fill(np.where(st_valid, st_depth, 0), st_valid)
    else:  # no stereo at all: a constant far guess, flagged by the DEI hole term
        st_dense = np.full((h, w), 5.0, dtype=np.float32)
        warnings.append("stereo matched no pixel (left-right check): stereo depth is a "
                        "constant guess, its DEI says so")
    st_dense = np.clip(st_dense, 0.05, 50.0).astype(np.float32)

    # each sensor's DEI from its own evidence: the stereo error from the stereo depth
    ds = stereo_dei(st_dense, st_valid, texture, st["lr_error"][::s, ::s], st["uniqueness"],
                    bright, f_full, calib.baseline_m, dei_cfg, st["curvature"])
    return {
        "tof": tof_dense, "tof_valid": warped["valid"], "tof_sparse": warped["depth"],
        "tof_sensor": tof_sensor,
        "st": st_dense, "st_valid": st_valid, "gray": (gray_full[::s, ::s] / 255.0)
        .astype(np.float32), "sigma_tof": dt["sigma"], "sigma_st": ds["sigma"],
        "dei": dei_channels(dt, ds, st["uniqueness"]), "texture": texture,
        "K_work": Kw, "search": st["search"], "warnings": warnings, "calib": calib,
    }
