"""Background fill of disocclusion holes (our addition after the DEI bilateral denoising; not in
the paper).

A ToF camera offset sideways from the left camera by t_x (its centre in the left frame, metres)
cannot see a strip of background next to each foreground object: in the left view the strip
lies on the side of the object *away* from the ToF (its left side when t_x > 0, as a stereo
occlusion of the left view lies left of the object), and it is at most

    w = f t_x (1 / Z_near - 1 / Z_far)   px wide

(f the focal length on the work grid; Z_near, Z_far the two surfaces). Where the stereo did not
measure either, the dense inputs are nearest-filled from both sides, and the net and the convex
guard interpolate across the depth edge, mostly from the foreground. The standard rule for
reprojection disocclusions is to fill from the farther neighbour. Here, along each row, a pixel
that neither sensor measured takes the fused depth of the nearest measured pixel on the
background side (left when t_x > 0) when

- the run of unmeasured pixels is bounded on both sides by measured pixels (not an image
  border), and the two bounding depths form a depth edge: Z_far > (1 + `edge_ratio`) Z_near,
  with the farther one on the background side;
- the pixel lies within `width_factor` × w of the background-side bound (geometry: a wider
  run is a dropout, not a disocclusion);
- its grey value is at least as close to the background bound's as to the foreground bound's
  (the depth edge inside the run follows the RGB edge: pixels of the foreground object that the
  ToF's splat also missed keep the fused depth).

Elsewhere the fused depth is kept. A filled pixel takes the fused depth of a measured pixel of
its row (itself inside its own convex-guard interval), so a broken sensor is still never
amplified; it is the explicit fallback the guard allows at pixels neither sensor measured (the
5 x 5 interval of the nearest-filled inputs there holds only the foreground). `edge_ratio` =
0.15 and `width_factor` = 2 were chosen on validation scenes only (`python -m
mobifuse.experiments.wide_validation`): the setting that lowered the mean and the worst scene
on the wide validation rigs, the rigs between the families and the training rigs' validation
scenes, with the fixed rig's validation scenes unchanged. t_x = 0 (e.g. identity extrinsics)
switches it off. The vertical ToF offset is not used (rows only).

Shapes: depth, measured, gray (H, W) or (N, H, W); `shift` = f t_x in px·m (work grid).
"""

from __future__ import annotations

import numpy as np

__all__ = ["EDGE_RATIO", "WIDTH_FACTOR", "background_fill", "frame_shift", "tof_shift"]

EDGE_RATIO = 0.15
WIDTH_FACTOR = 2.0


def tof_shift(focal_work_px: float, T_left_tof: np.ndarray) -> float:
    """f t_x (px·m): the ToF's sideways offset in the left frame times the work-grid focal."""
    return float(focal_work_px) * float(np.asarray(T_left_tof)[0, 3])


def frame_shift(sim, focal_px: float | None = None) -> float:
    """f t_x (px·m) of the simulated ToF on the work grid (`sim`: a `SimConfig`): the rig's RGB
    focal length (a rig frame's `rig[1]`, else the config's) over the work downsampling, times
    the ToF's sideways offset in the left frame."""
    return float(focal_px or sim.focal_px) / sim.work_downsample * float(sim.tof_offset_m[0])


def _nearest_measured(measured: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the column of the nearest measured pixel at or left of it (-1: none) and at
    or right of it (w: none), along its row."""
    w = measured.shape[1]
    cols = np.arange(w)[None]
    left = np.maximum.accumulate(np.where(measured, cols, -1), axis=1)
    right = np.minimum.accumulate(np.where(measured, cols, w)[:, ::-1], axis=1)[:, ::-1]
    return left, right


def _fill_2d(d: np.ndarray, measured: np.ndarray, gray: np.ndarray, shift: float,
             edge_ratio: float, width_factor: float) -> np.ndarray:
    h, w = d.shape
    if shift < 0:  # background on the right: mirror, fill, mirror back
        return _fill_2d(d[:, ::-1], measured[:, ::-1], gray[:, ::-1], -shift, edge_ratio,
                        width_factor)[:, ::-1].copy()
    li, ri = _nearest_measured(measured)
    rows = np.arange(h)[:, None]
    lc, rc = np.clip(li, 0, w - 1), np.clip(ri, 0, w - 1)
    z_bg, z_fg = d[rows, lc], d[rows, rc]
    width = width_factor * shift * (1.0 / np.maximum(z_fg, 1e-6) - 1.0 / np.maximum(z_bg, 1e-6))
    g_bg, g_fg = gray[rows, lc], gray[rows, rc]
    fill = (~measured & (li >= 0) & (ri < w) & (z_bg > (1.0 + edge_ratio) * z_fg)
            & (np.arange(w)[None] - li <= width)
            & (np.abs(gray - g_bg) <= np.abs(gray - g_fg)))
    return np.where(fill, z_bg, d)


def background_fill(depth: np.ndarray, measured: np.ndarray, gray: np.ndarray, shift: float,
                    edge_ratio: float = EDGE_RATIO, width_factor: float = WIDTH_FACTOR
                    ) -> np.ndarray:
    """`depth` with the disocclusion holes filled from the background side (module docstring).
    `measured`: a sensor measured the pixel (ToF sample or stereo match); `gray`: the left image
    on the same grid; `shift` = 0 (or width_factor 0) is the identity. float32."""
    if edge_ratio < 0 or width_factor < 0:
        raise ValueError(f"edge_ratio and width_factor must be >= 0, got {edge_ratio}, "
                         f"{width_factor}")
    d = np.asarray(depth, dtype=np.float32)
    if shift == 0 or width_factor == 0:
        return d.copy()
    shape = d.shape
    flat = d.reshape(-1, *shape[-2:])
    m = np.broadcast_to(np.asarray(measured) > 0.5, shape).reshape(flat.shape)
    g = np.broadcast_to(np.asarray(gray, dtype=np.float32), shape).reshape(flat.shape)
    out = [_fill_2d(x, mi, gi, float(shift), edge_ratio, width_factor)
           for x, mi, gi in zip(flat, m, g)]
    return np.stack(out).reshape(shape).astype(np.float32)
