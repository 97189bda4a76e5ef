"""From raw sensor frames to the fusion inputs: SGBM, ToF reprojection, densification, DEI.

`prepare_frame` is the one path both the simulator's data and real captures (`mobifuse.api`)
go through. Everything it returns lives on the left camera's grid at the *work* resolution
(RGB resolution / `downsample`), shapes (h, w):

- tof (densified, m), tof_valid (a sample landed), st (SGBM depth, nearest-filled),
  st_valid (SGBM + left-right check), gray (0..1), sigma_tof, sigma_st (DEI, m),
  dei (len(DEI_CHANNELS), h, w), plus diagnostics (tof_sparse, texture, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mobifuse.config import DEIConfig, StereoConfig
from mobifuse.dei import dei_channels, stereo_dei, texture_strength, tof_dei
from mobifuse.geometry import densify, nearest_fill, reproject_tof
from mobifuse.stereo import run_stereo, to_gray
from shared.errors import DataError
from shared.validate import finite_array, finite_number

__all__ = ["Calibration", "prepare_frame", "check_array"]


@dataclass
class Calibration:
    """Intrinsics and extrinsics of a rectified RGB pair + ToF rig.

    K_left (3, 3) at the RGB resolution; K_tof (3, 3) at the ToF resolution; T_left_tof (4, 4)
    maps ToF-frame points into the left frame; baseline in metres; the ToF modulation frequency
    and read noise (electrons) feed the DEI.
    """

    K_left: np.ndarray
    K_tof: np.ndarray
    T_left_tof: np.ndarray
    baseline_m: float
    mod_freq_hz: float = 30e6
    tof_read_noise: float = 20.0

    def validate(self) -> None:
        for name, shape in (("K_left", (3, 3)), ("K_tof", (3, 3)), ("T_left_tof", (4, 4))):
            v = finite_array(getattr(self, name), f"calibration '{name}'", shape)
            setattr(self, name, v)
        for name in ("K_left", "K_tof"):
            K = getattr(self, name)
            if not (K[0, 0] > 0 and K[1, 1] > 0):
                raise DataError(f"calibration '{name}': focal lengths must be positive, got "
                                f"{K[0, 0]}, {K[1, 1]}")
        self.baseline_m = finite_number(self.baseline_m, "calibration 'baseline_m'", positive=True)
        self.mod_freq_hz = finite_number(self.mod_freq_hz, "calibration 'mod_freq_hz'",
                                         positive=True)
        self.tof_read_noise = finite_number(self.tof_read_noise, "calibration 'tof_read_noise'",
                                            nonnegative=True)


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


def prepare_frame(left, right, tof_depth, tof_valid, calib: Calibration,
                  tof_amplitude=None, tof_ambient=None, downsample: int = 2,
                  stereo_cfg: StereoConfig | None = None,
                  dei_cfg: DEIConfig | None = None) -> dict:
    """Run SGBM at the RGB resolution, warp the ToF into the left view at the work resolution,
    densify both, compute the DEI. Without amplitude, a 1/r^2 proxy is used (see README)."""
    stereo_cfg = stereo_cfg or StereoConfig()
    dei_cfg = dei_cfg or DEIConfig()
    calib.validate()
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
    if tof_amplitude is None:  # proxy: albedo 0.5, normal incidence, the simulator's power
        tof_amplitude = 3.0e4 / np.maximum(tof_depth, 0.1) ** 2
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
    need_w = stereo_cfg.num_disparities + stereo_cfg.block_size
    if W < need_w or H < stereo_cfg.block_size:
        raise DataError(f"image size {W}x{H} is too small for stereo matching (at least "
                        f"{need_w}x{stereo_cfg.block_size}: num_disparities + block_size wide)")
    if H % s or W % s:
        raise DataError(f"image size {W}x{H} is not divisible by downsample={s}")
    h, w = H // s, W // s
    Kw = _work_K(calib.K_left, s)
    f_full = float(calib.K_left[0, 0])

    st = run_stereo(left, right, f_full, calib.baseline_m, stereo_cfg)
    gray_full = to_gray(left)
    texture = texture_strength(gray_full)[::s, ::s]
    bright = ndimage.uniform_filter(gray_full.astype(np.float32), 7)[::s, ::s]
    st_depth = st["depth"][::s, ::s]
    st_valid = st["valid"][::s, ::s]
    if st_valid.any():
        st_dense = nearest_fill(np.where(st_valid, st_depth, 0), st_valid)
    else:  # no stereo at all: a constant far guess, flagged by the DEI hole term
        st_dense = np.full((h, w), 5.0, dtype=np.float32)
    st_dense = np.clip(st_dense, 0.1, 10.0).astype(np.float32)

    warped = reproject_tof(tof_depth, tof_valid, calib.K_tof, Kw, calib.T_left_tof, (h, w),
                           {"amplitude": np.asarray(tof_amplitude, dtype=np.float64),
                            "ambient": np.asarray(tof_ambient, dtype=np.float64)})
    if not warped["valid"].any():
        raise DataError("no ToF sample lands in the left view (check the extrinsics)")
    tof_dense = densify(warped["depth"], warped["valid"])
    amp = densify(warped["amplitude"], warped["valid"])
    amb = densify(warped["ambient"], warped["valid"])
    hole_dist = ndimage.distance_transform_edt(~warped["valid"])
    hole = hole_dist > 1.5

    dt = tof_dei(tof_dense, amp, amb, hole, Kw[0, 0], calib.mod_freq_hz, calib.tof_read_noise,
                 dei_cfg)
    # the stereo error scales with the *true* depth squared: take it from the ToF where a ToF
    # sample is near, from SGBM elsewhere
    z_ref = np.where(hole, st_dense, tof_dense)
    ds = stereo_dei(z_ref, st_valid, texture, st["lr_error"][::s, ::s],
                    st["uniqueness"][::s, ::s], bright, f_full, calib.baseline_m, dei_cfg)
    return {
        "tof": tof_dense, "tof_valid": warped["valid"], "tof_sparse": warped["depth"],
        "st": st_dense, "st_valid": st_valid, "gray": (gray_full[::s, ::s] / 255.0)
        .astype(np.float32), "sigma_tof": dt["sigma"], "sigma_st": ds["sigma"],
        "dei": dei_channels(dt, ds, st["uniqueness"][::s, ::s]), "texture": texture,
        "K_work": Kw,
    }
