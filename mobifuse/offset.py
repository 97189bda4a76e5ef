"""Scene-wide stereo offset of the fused depth (our addition before the stereo-agreement step;
not in the paper).

A ToF camera's depth carries a bias that is not local: light scattered between the surfaces of
a room (multipath interreflection) adds to every return an indirect component whose length and
phase depend on the whole scene (`simulator._multipath`: one bounce from every patch in view),
so each pixel's depth is shifted, mostly farther, by an amount set by the scene. A fusion net
trained on phone rigs, whose stereo cannot see a centimetre, corrects it by its training
average, so on a given scene its output keeps a scene-wide offset of a few centimetres. Pixel
by pixel that offset is well inside the ToF's noise, and no local rule finds it. A rig whose
stereo is more precise than its ToF does see it: over the n pixels that both sensors measured,

    o = median(D_st - D),

with D the net's depth and D_st the SGBM depth. o pools thousands of pixels, so it is precise
even where single stereo pixels are not, and the median ignores the mismatches. On a phone
rig stereo is decimetres off and its offset says nothing about the net's. The step therefore
applies o only when the stereo's DEI says it is at least as precise as the ToF's over those
pixels (median sigma_st <= `gate` x median sigma_tof) and they cover at least `min_share` of
the frame; elsewhere o = 0. The shifted depth is clipped to the convex guard's interval of both
inputs (`models.convex_guard`), so the output is still a convex combination of measured
depths and a broken sensor is never amplified.

`gate` = 1 and `min_share` = 0.03 were chosen for the bench's cross-rig net on validation scenes
only (48 unseen-family scenes with their own seeds, scenes of rigs between the families and of
the training rigs; results/mobifuse/NOTES.md, "A scene-wide stereo offset"); for the shipped
default model the same rule kept it off. `gate` = 0 switches it off. Pixels whose stereo depth
or sigmas are not finite do not count; a frame with no pixels is returned as it came.

Shapes: every map (H, W) or (N, H, W) (one offset per frame), depths and sigmas in metres.
"""

from __future__ import annotations

import numpy as np

from mobifuse.models import guard_clip

__all__ = ["OFFSET_GATE", "MIN_SHARE", "scene_offset", "stereo_offset"]

OFFSET_GATE = 1.0
MIN_SHARE = 0.03


def scene_offset(depth: np.ndarray, tof_valid: np.ndarray, st: np.ndarray,
                 st_valid: np.ndarray, sigma_tof: np.ndarray, sigma_st: np.ndarray,
                 gate: float = OFFSET_GATE, min_share: float = MIN_SHARE) -> float:
    """o = median(st - depth) over the pixels both sensors measured, or 0 where the gate or the
    share fails (module docstring). One frame, (H, W) maps."""
    st = np.asarray(st, dtype=np.float64)
    sigma_tof, sigma_st = np.asarray(sigma_tof), np.asarray(sigma_st)
    both = ((np.asarray(tof_valid) > 0.5) & (np.asarray(st_valid) > 0.5) & np.isfinite(depth)
            & np.isfinite(st) & np.isfinite(sigma_tof) & np.isfinite(sigma_st))
    n = int(both.sum())
    if gate == 0 or n == 0 or n < min_share * both.size:
        return 0.0
    if not np.median(sigma_st[both]) <= gate * np.median(sigma_tof[both]):
        return 0.0
    return float(np.median(st[both] - depth[both]))


def stereo_offset(depth: np.ndarray, d_tof: np.ndarray | None, tof_valid: np.ndarray,
                  st: np.ndarray, st_valid: np.ndarray, sigma_tof: np.ndarray, sigma_st: np.ndarray,
                  gate: float = OFFSET_GATE, min_share: float = MIN_SHARE,
                  guard_radius: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(`depth` + o per frame, clipped to the convex guard's interval of the dense inputs `d_tof`
    and `st` over the (2 guard_radius + 1)^2 window (`d_tof` None: not clipped, for a net
    without the guard); the offsets o, shape (N,) or ()). A frame with o = 0 is returned as it
    came. float32."""
    if not gate >= 0 or not 0 <= min_share <= 1:
        raise ValueError(f"offset gate must be >= 0 and min_share in [0, 1], got gate={gate}, "
                         f"min_share={min_share}")
    d = np.asarray(depth, dtype=np.float32)
    shape = d.shape
    if d.size == 0 or gate == 0:
        return d.copy(), np.zeros(shape[:-2])
    flat = d.reshape(-1, *shape[-2:])

    def frames(a):
        return np.broadcast_to(np.asarray(a, dtype=np.float32), shape).reshape(flat.shape)

    tv, s, sv = frames(tof_valid), frames(st), frames(st_valid)
    sig_t, sig_s = frames(sigma_tof), frames(sigma_st)
    dt = None if d_tof is None else frames(d_tof)
    offs = np.array([scene_offset(x, tv[i], s[i], sv[i], sig_t[i], sig_s[i], gate, min_share)
                     for i, x in enumerate(flat)])
    out = flat.copy()
    for i in np.flatnonzero(offs):
        out[i] = flat[i] + np.float32(offs[i])
        if dt is not None:
            out[i] = guard_clip(out[i], dt[i], s[i], guard_radius)
    return out.reshape(shape), offs.reshape(shape[:-2])
