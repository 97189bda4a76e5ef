"""`fuse(left, right, tof, calib)`: MobiFuse on your own arrays.

    >>> out = fuse(left, right, tof_depth, calib)      # calib: Calibration or a dict of it
    >>> out["depth"]          # (ceil(H / downsample), ceil(W / downsample)) fused depth, metres
    >>> out["depth_full"]     # (H, W): the same, interpolated back onto the caller's grid

left/right: rectified (H, W, 3) RGB or (H, W) grey uint8 of any size; tof: (h_t, w_t) depth in
metres (0 or NaN = invalid); calib: a `mobifuse.Calibration` (or a dict of its fields: K_left,
K_right or doffs, baseline_m, K_tof, T_left_tof, mod_freq_hz, optional depth_range), e.g. the
one `load_middlebury_scene` or `load_capture` returns.

model: "default" (or None) is the fusion net shipped in `mobifuse/weights/` (trained across
simulated rigs); "inverse_variance" is the DEI-weighted inverse-variance fusion (no learned
weights); or a path / `TwoStageFusionNet`. Every net's output passes the convex guard
(`models.convex_guard`), the stereo-agreement refinement (`agreement`, a convex mix with the
measured stereo where the two agree), the DEI bilateral denoising (`denoise`) and the
background fill of disocclusion holes (`disocclusion`: at pixels neither sensor measured, the
fused depth of a measured pixel of the same row); inverse-variance is convex by construction.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import torch

from mobifuse.agreement import AGREE_K, MAX_RATIO, stereo_agreement
from mobifuse.baselines import inverse_variance_fusion
from mobifuse.config import DEIConfig, StereoConfig
from mobifuse.denoise import DENOISE_C, dei_bilateral
from mobifuse.disocclusion import WIDTH_FACTOR, background_fill, tof_shift
from mobifuse.models import TwoStageFusionNet, camera_maps, load_model, n_err
from mobifuse.offset import stereo_offset
from mobifuse.pipeline import check_array, prepare_frame
from shared.config import from_dict
from shared.errors import ConfigError, DataError

__all__ = ["fuse", "default_model", "DEFAULT_MODEL", "net_inputs", "run_net",
           "model_offset_gate", "post_steps", "trained_dei_config"]

DEFAULT_MODEL = Path(__file__).resolve().parent / "weights" / "mobifuse-default.safetensors"


def model_offset_gate(net: TwoStageFusionNet | None) -> float:
    """The scene-wide stereo offset's gate a net was chosen with (its metadata's
    `offset_gate`, `offset.stereo_offset`); 0 (off) for a net that names none, the shipped
    default model among them."""
    gate = getattr(net, "meta", {}).get("offset_gate", 0.0)
    if isinstance(gate, bool) or not isinstance(gate, (int, float)) or not gate >= 0:
        raise DataError(f"model metadata: offset_gate must be a number >= 0, got {gate!r}")
    return float(gate)


@functools.lru_cache(maxsize=1)
def default_model() -> TwoStageFusionNet:
    """The shipped fusion net (refresh: `python -m mobifuse.experiments.ship_weights`)."""
    return load_model(DEFAULT_MODEL)


def net_inputs(fr: dict) -> tuple[np.ndarray, np.ndarray]:
    """(geom (4, h, w), err (1 + D, h, w)) float32 from `prepare_frame`'s output."""
    geom = np.stack([fr["tof"], fr["tof_valid"], fr["st"], fr["st_valid"]]).astype(np.float32)
    err = np.concatenate([fr["gray"][None], fr["dei"]]).astype(np.float32)
    return geom, err


class _Depth(torch.nn.Module):
    def __init__(self, net: TwoStageFusionNet):
        super().__init__()
        self.net = net

    def forward(self, g, e):
        return self.net(g, e)["depth"]


_TRACED: dict = {}


def _traced(model: TwoStageFusionNet, g: torch.Tensor, e: torch.Tensor):
    """The net traced and frozen by TorchScript for one input shape (about 1.8x faster on a
    CPU than eager mode); the last 4 (model, shape) pairs are kept."""
    key = (id(model), tuple(g.shape), tuple(e.shape))
    if key not in _TRACED:
        if len(_TRACED) >= 4:
            _TRACED.pop(next(iter(_TRACED)))
        with torch.inference_mode(False), torch.no_grad():
            _TRACED[key] = (model, torch.jit.freeze(torch.jit.trace(_Depth(model).eval(),
                                                                    (g, e))))
    return _TRACED[key][1]


def run_net(model: TwoStageFusionNet, geom: np.ndarray, err: np.ndarray,
            jit: bool = False) -> np.ndarray:
    """Fused depth (h, w) of one frame of any size (edge-padded to a multiple of 8, cropped);
    `jit`: run a TorchScript-frozen copy traced for this shape (same result, faster when
    frames of one size repeat)."""
    if err.shape[0] != n_err(model.cfg):
        raise DataError(f"the net takes {n_err(model.cfg)} err channels (grey, DEI"
                        f"{', rays' if model.cfg.ray_channels else ''}"
                        f"{', FOV' if model.cfg.fov_channels else ''}), got {err.shape[0]}")
    h, w = geom.shape[-2:]
    ph, pw = (-h) % 8, (-w) % 8  # the net halves the resolution three times
    g = torch.from_numpy(np.pad(geom, ((0, 0), (0, ph), (0, pw)), mode="edge")[None]).float()
    e = torch.from_numpy(np.pad(err, ((0, 0), (0, ph), (0, pw)), mode="edge")[None]).float()
    model.eval()
    if jit:
        fn = _traced(model, g, e)
        with torch.no_grad():
            return fn(g, e)[0, 0, :h, :w].numpy()
    with torch.inference_mode():
        return model(g, e)["depth"][0, 0, :h, :w].numpy()


def _model(model) -> TwoStageFusionNet | None:
    if model is None or (isinstance(model, str) and model == "default"):
        return default_model()
    if isinstance(model, str) and model == "inverse_variance":
        return None
    if isinstance(model, (str, Path)):
        return load_model(model)
    if not isinstance(model, TwoStageFusionNet):
        raise DataError(f"model must be 'default', 'inverse_variance', a path or a "
                        f"TwoStageFusionNet, got {type(model).__name__}")
    return model


def trained_dei_config(net: TwoStageFusionNet | None,
                       dei: DEIConfig | None) -> DEIConfig:
    """The DEI config the net was trained with (its file says), unless one is given; the
    calibration factors are the package's (they never change the net's inputs), unless the net
    was trained with another stereo depth reference (then its file's)."""
    if dei is not None:
        return dei
    if net is not None and isinstance(net.meta.get("dei"), dict):
        try:
            trained = from_dict(DEIConfig, net.meta["dei"])
        except ConfigError as e:
            raise DataError(f"model metadata: DEI config {e}") from None
        ref = DEIConfig()
        if trained.st_depth_ref != ref.st_depth_ref:  # another stereo DEI: its own factors
            return trained
        return dataclasses.replace(trained, tof_scale=ref.tof_scale, st_scale=ref.st_scale,
                                   st_hole_scale=ref.st_hole_scale)
    return DEIConfig()


def _linear_taps(n_out: int, n_in: int, s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Output pixel x reads input x / s, clamped to [0, n_in - 1]: (lower index, upper index,
    weight of the upper one)."""
    c = np.minimum(np.arange(n_out, dtype=np.float64) / s, n_in - 1)
    i0 = np.floor(c).astype(np.intp)
    return i0, np.minimum(i0 + 1, n_in - 1), c - i0


def post_steps(depth: np.ndarray, tof: np.ndarray, tof_valid: np.ndarray, st: np.ndarray,
               st_valid: np.ndarray, sigma_tof: np.ndarray, sigma_st: np.ndarray,
               gray: np.ndarray, shift: float, offset_gate: float = 0.0,
               agree_k: float = AGREE_K, max_ratio: float = MAX_RATIO,
               denoise_c: float = DENOISE_C, guard_radius: int = 2, guard: bool = True,
               fill_width: float = WIDTH_FACTOR) -> np.ndarray:
    """The closed-form steps after the net, in `fuse()`'s order, frame (h, w) or stacked
    (N, h, w): the scene-wide stereo offset (`offset.stereo_offset`, `offset_gate`), the
    stereo-agreement refinement (`agreement.stereo_agreement`), the DEI bilateral denoising
    (`denoise.dei_bilateral`) and the background fill of disocclusion holes
    (`disocclusion.background_fill`, `shift` = f t_x of the ToF on the work grid). `tof`,
    `st`: the dense inputs; with `guard` the offset and the denoising are clipped to their
    (2 guard_radius + 1)^2 hull (the net's convex guard)."""
    hull = tof if guard else None
    d, _ = stereo_offset(depth, hull, tof_valid, st, st_valid, sigma_tof, sigma_st, offset_gate,
                         guard_radius=guard_radius)
    d = stereo_agreement(d, sigma_tof, st, st_valid, sigma_st, agree_k, max_ratio)
    d = dei_bilateral(d, sigma_tof, hull, st, denoise_c, guard_radius=guard_radius)
    measured = (np.asarray(tof_valid) > 0.5) | (np.asarray(st_valid) > 0.5)
    return background_fill(d, measured, gray, shift, width_factor=fill_width)


def to_full(depth: np.ndarray, shape: tuple[int, int], s: int) -> np.ndarray:
    """Work-grid map (h, w) -> the caller's (H, W) grid (image pixel x <-> work pixel x / s):
    bilinear, edges held (= `scipy.ndimage.map_coordinates(order=1, mode="nearest")` at
    (v / s, u / s), done as two separable 1-D passes)."""
    if s == 1:
        return depth.astype(np.float32)
    d = np.asarray(depth, dtype=np.float64)
    r0, r1, fy = _linear_taps(shape[0], d.shape[0], s)
    c0, c1, fx = _linear_taps(shape[1], d.shape[1], s)
    rows = d[r0] * (1.0 - fy)[:, None] + d[r1] * fy[:, None]  # (H, w)
    return (rows[:, c0] * (1.0 - fx) + rows[:, c1] * fx).astype(np.float32)


def fuse(left, right, tof, calib, model="default", tof_amplitude=None, tof_ambient=None,
         downsample: int = 2, stereo: StereoConfig | None = None,
         dei: DEIConfig | None = None, jit: bool = True, agree_k: float = AGREE_K,
         denoise_c: float = DENOISE_C, fill_width: float = WIDTH_FACTOR,
         offset_gate: float | None = None) -> dict:
    """Fused depth plus every intermediate: depth (work grid), depth_full (caller's grid), tof,
    stereo, sigma_tof, sigma_st (DEI, m), tof_valid / stereo_valid (measured, not filled),
    K_work, search (the disparity search), warnings. `jit`: run the net TorchScript-frozen
    (traced once per frame size, then about 1.8x faster on a CPU). The net's output is first
    shifted by the scene-wide offset the stereo measures where median sigma_st <= `offset_gate`
    x median sigma_ToF over the pixels both measured (`offset.stereo_offset`; 0: off; None:
    the net's own gate from its metadata, none for the shipped default model). `agree_k`:
    it is then refined where the measured stereo agrees with it
    (`agreement.stereo_agreement`; 0: off), then denoised by the DEI bilateral filter with
    range kernel `denoise_c` sigma_ToF (`denoise.dei_bilateral`, inside the convex guard;
    0: off); then pixels neither sensor measured in a disocclusion strip take the background
    side's fused depth (`disocclusion.background_fill`, strips up to `fill_width` x the
    geometric width; 0: off; off too when the ToF has no sideways offset)."""
    net = _model(model)
    tof = check_array("tof", tof, (2,), allow_nan=True).astype(np.float64)
    if np.isinf(tof).any():
        raise DataError("'tof' contains inf depth values")
    valid = np.isfinite(tof) & (tof > 0)
    fr = prepare_frame(left, right, np.nan_to_num(tof, nan=0.0), valid, calib, tof_amplitude,
                       tof_ambient, downsample, stereo, trained_dei_config(net, dei))
    H, W = np.shape(left)[:2]
    if net is None:
        depth = inverse_variance_fusion(fr["tof"], fr["sigma_tof"], fr["st"], fr["sigma_st"])
    else:
        gate = model_offset_gate(net) if offset_gate is None else offset_gate
        geom, err = net_inputs(fr)
        if net.cfg.ray_channels or net.cfg.fov_channels:  # the calibration's camera, centred
            K = fr["calib"].K_left                          # as in training
            err = np.concatenate([err, camera_maps(net.cfg, *err.shape[-2:], K[0, 0], W, H,
                                                   K[1, 1])])
        depth = post_steps(  # the guard re-clip only for a net that has one
            run_net(net, geom, err, jit=jit), fr["tof"], fr["tof_valid"], fr["st"],
            fr["st_valid"], fr["sigma_tof"], fr["sigma_st"], fr["gray"],
            tof_shift(fr["K_work"][0, 0], fr["calib"].T_left_tof), gate, agree_k,
            denoise_c=denoise_c, guard_radius=net.cfg.guard_radius,
            guard=net.cfg.guard_radius > 0, fill_width=fill_width)
    return {"depth": depth.astype(np.float32), "depth_full": to_full(depth, (H, W), downsample),
            "tof": fr["tof"], "tof_sensor": fr["tof_sensor"], "stereo": fr["st"],
            "sigma_tof": fr["sigma_tof"],
            "sigma_st": fr["sigma_st"], "K_work": fr["K_work"], "search": fr["search"],
            "tof_valid": fr["tof_valid"], "stereo_valid": fr["st_valid"],
            "warnings": fr["warnings"]}
