"""`fuse(left, right, tof, intrinsics, extrinsics)`: MobiFuse on your own arrays.

    >>> out = fuse(left, right, tof_depth,
    ...            intrinsics={"left": K_left, "tof": K_tof, "baseline_m": 0.015},
    ...            extrinsics=T_left_tof, model="runs/mobifuse/train-.../model.safetensors")
    >>> out["depth"]          # (H / downsample, W / downsample) fused depth, metres

left/right: rectified (H, W, 3) RGB or (H, W) grey uint8; tof: (h_t, w_t) depth in metres (0 or
NaN = invalid); intrinsics: 3x3 K of the left camera (at the RGB resolution) and of the ToF,
plus the stereo baseline; extrinsics: 4x4 transform of ToF-frame points into the left frame.
Without `model` the DEI-weighted inverse-variance fusion is returned (no learned weights).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mobifuse.baselines import inverse_variance_fusion
from mobifuse.models import TwoStageFusionNet, load_model
from mobifuse.pipeline import Calibration, check_array, prepare_frame
from shared.errors import DataError

__all__ = ["fuse"]


def fuse(left, right, tof, intrinsics: dict, extrinsics, model=None, tof_amplitude=None,
         tof_ambient=None, mod_freq_hz: float = 30e6, downsample: int = 2) -> dict:
    """Fused depth plus every intermediate: tof, stereo, sigma_tof, sigma_st (DEI), K_work."""
    if not isinstance(intrinsics, dict):
        raise DataError("intrinsics must be a dict with keys 'left', 'tof', 'baseline_m'")
    for key in ("left", "tof", "baseline_m"):
        if key not in intrinsics:
            raise DataError(f"intrinsics: missing key '{key}' (missing calibration)")
    if extrinsics is None:
        raise DataError("extrinsics: missing ToF-to-left 4x4 transform (missing calibration)")
    tof = check_array("tof", tof, (2,), allow_nan=True).astype(np.float64)
    if np.isinf(tof).any():
        raise DataError("'tof' contains inf depth values")
    # values go in as given: Calibration.validate (in prepare_frame) checks types and ranges
    calib = Calibration(K_left=intrinsics["left"], K_tof=intrinsics["tof"],
                        T_left_tof=extrinsics, baseline_m=intrinsics["baseline_m"],
                        mod_freq_hz=mod_freq_hz)
    valid = np.isfinite(tof) & (tof > 0)
    fr = prepare_frame(left, right, np.nan_to_num(tof, nan=0.0), valid, calib, tof_amplitude,
                       tof_ambient, downsample)
    if model is None:
        depth = inverse_variance_fusion(fr["tof"], fr["sigma_tof"], fr["st"], fr["sigma_st"])
    else:
        if isinstance(model, (str, Path)):
            model = load_model(model)
        if not isinstance(model, TwoStageFusionNet):
            raise DataError(f"model must be a TwoStageFusionNet or a path, got {type(model)}")
        geom = np.stack([fr["tof"], fr["tof_valid"], fr["st"], fr["st_valid"]])[None]
        err = np.concatenate([fr["gray"][None], fr["dei"]])[None]
        h, w = geom.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8  # the net halves the resolution three times
        g = torch.from_numpy(np.pad(geom, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="edge"))
        e = torch.from_numpy(np.pad(err, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="edge"))
        model.eval()
        with torch.inference_mode():
            depth = model(g.float(), e.float())["depth"][0, 0, :h, :w].numpy()
    return {"depth": depth.astype(np.float32), "tof": fr["tof"], "stereo": fr["st"],
            "sigma_tof": fr["sigma_tof"], "sigma_st": fr["sigma_st"], "K_work": fr["K_work"]}
