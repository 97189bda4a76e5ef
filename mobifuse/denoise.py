"""DEI-guided bilateral denoising of the fused depth (our addition after the stereo-agreement
step; not in the paper).

The fusion net and the agreement step leave sensor noise on large flat surfaces: the net sees
a 64 px crop in training and removes less of it on the larger, wider-baseline frames. A
bilateral filter whose range kernel is set by the ToF's DEI removes more, without blurring
depth edges: at pixel p,

    out(p) = sum_o w_o(p) D(p + o) / sum_o w_o(p),
    w_o(p) = exp(-|o|^2 / (2 (r/2)^2) - (D(p + o) - D(p))^2 / (2 (c sigma_ToF(p))^2)),

over the (2r + 1)^2 window (replicate padding). A neighbour further than a few c sigma_ToF in
depth (another surface) gets no weight, so a jump far above the ToF's noise is kept; on a plane
the weights of o and -o are equal and the plane is kept exactly (away from the border). The
result is a convex mix of fused depths, clipped again to the convex guard's interval of both
inputs (`models.convex_guard`), so the guard still holds. r = 3 and c = 0.5 were picked on
validation scenes only (wide validation rigs of the test family with their own seeds, the
rigs between the families, validation scenes of the training rigs and of the fixed rig: the
setting that lowered the mean and the worst scene on all four; `python -m
mobifuse.experiments.wide_validation`).

Shapes: depth, sigma_tof, d_tof, d_st (H, W) or (N, H, W), metres.
"""

from __future__ import annotations

import numpy as np
import torch

from mobifuse.models import guard_clip
from mobifuse.threads import pool, wait_all

__all__ = ["DENOISE_C", "DENOISE_RADIUS", "dei_bilateral"]

DENOISE_RADIUS = 3
DENOISE_C = 0.5


def _bilateral_2d(d: np.ndarray, sigma: np.ndarray, c: float, radius: int) -> np.ndarray:
    """One (h, w) float32 map: one pass per window offset, in place (about 13 ms at 320 x 240
    on one core; the centre weight is 1, so the sum of weights is >= 1). Row blocks run in
    `torch.get_num_threads()` threads (numpy releases the GIL in its loops); every pixel's
    arithmetic is the same whatever the split, so the result is too."""
    h = d.shape[0]
    pad = np.pad(d, radius, mode="edge")
    inv = (-0.5 / np.maximum(np.square(c * sigma), 1e-12)).astype(np.float32)
    n = max(1, min(torch.get_num_threads(), h // 32))
    if n == 1:
        return _bilateral_rows(pad, d, inv, radius, 0, h)
    cuts = np.linspace(0, h, n + 1).astype(int)
    futs = [pool().submit(_bilateral_rows, pad, d, inv, radius, cuts[i], cuts[i + 1])
            for i in range(1, n)]  # this thread does the first block
    try:
        first = _bilateral_rows(pad, d, inv, radius, 0, cuts[1])
    finally:
        wait_all(futs)
    return np.concatenate([first] + [f.result() for f in futs])


def _bilateral_rows(pad: np.ndarray, full: np.ndarray, inv_full: np.ndarray, radius: int,
                    r0: int, r1: int) -> np.ndarray:
    """Rows r0:r1 of the filtered map (`pad`: the whole map edge-padded by `radius`)."""
    d, inv = full[r0:r1], inv_full[r0:r1]
    h, w = d.shape
    num, den = np.zeros_like(d), np.zeros_like(d)
    tmp, wt = np.empty_like(d), np.empty_like(d)
    two_ss = 2.0 * (radius / 2.0) ** 2
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            q = pad[r0 + radius + dy:r0 + radius + dy + h, radius + dx:radius + dx + w]
            np.subtract(q, d, out=tmp)
            np.square(tmp, out=tmp)
            np.multiply(tmp, inv, out=tmp)
            tmp += np.float32(-(dy * dy + dx * dx) / two_ss)
            np.exp(tmp, out=wt)
            den += wt
            wt *= q
            num += wt
    return num / den


def dei_bilateral(depth: np.ndarray, sigma_tof: np.ndarray, d_tof: np.ndarray | None = None,
                  d_st: np.ndarray | None = None, c: float = DENOISE_C,
                  radius: int = DENOISE_RADIUS, guard_radius: int = 2) -> np.ndarray:
    """`depth` after the DEI bilateral filter (module docstring), then clipped to the convex
    guard's interval of `d_tof` and `d_st` over the (2 guard_radius + 1)^2 window when both are
    given. c = 0 (or radius 0) is the identity. float32, the shape of `depth`."""
    if c < 0 or radius < 0:
        raise ValueError(f"denoising c and radius must be >= 0, got c={c}, radius={radius}")
    d = np.asarray(depth, dtype=np.float32)
    if c == 0 or radius == 0:
        return d.copy()
    shape = d.shape
    flat = d.reshape(-1, *shape[-2:])
    sig = np.broadcast_to(np.asarray(sigma_tof, dtype=np.float32), shape).reshape(flat.shape)
    out = np.stack([_bilateral_2d(x, s, c, radius) for x, s in zip(flat, sig)]).reshape(shape)
    if d_tof is not None and d_st is not None:
        out = guard_clip(out, d_tof, d_st, guard_radius)
    return out.reshape(shape)
