"""The background fill of disocclusion holes: a synthetic disocclusion rendered and reprojected
through the package's own z-buffer (the filled hole lies on the background plane), a per-row
loop reference of the rule, and its invariants."""

import numpy as np
import pytest

from mobifuse.disocclusion import background_fill, tof_shift
from mobifuse.geometry import nearest_fill, reproject_tof

F, T_X, Z_BG, Z_FG = 100.0, 0.08, 4.0, 1.0  # shifts: f t / Z = 2 px (plane), 8 px (box)


def _scene(h: int = 40, w: int = 80):
    """A frontal plane at Z_BG and a box face at Z_FG covering left-view columns 30-49, rows
    10-29, seen by a ToF camera T_X to the right of the left camera (same intrinsics)."""
    K = np.array([[F, 0, w / 2], [0, F, h / 2], [0, 0, 1.0]])
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    x_left = (u - K[0, 2]) / F + T_X / Z_FG  # a ToF ray's x (left frame) where it meets Z_FG
    u_left_fg = F * x_left + K[0, 2]  # its left-view column
    box = (u_left_fg >= 30) & (u_left_fg < 50) & (v >= 10) & (v < 30)
    tof = np.where(box, Z_FG, Z_BG)
    T = np.eye(4)
    T[0, 3] = T_X
    warped = reproject_tof(tof, np.ones_like(box), K, K, T, (h, w))
    truth = np.full((h, w), Z_BG)
    truth[10:30, 30:50] = Z_FG
    gray = np.where(truth == Z_FG, 0.8, 0.3).astype(np.float32)
    return warped, truth, gray, T


def test_synthetic_disocclusion_is_filled_from_the_plane_behind_the_box():
    warped, truth, gray, T = _scene()
    valid = warped["valid"]
    assert np.array_equal(warped["depth"][valid], truth[valid])  # the z-buffer kept the box
    hole = ~valid[10:30, 22:30]  # left of the box: f t (1/Z_FG - 1/Z_BG) = 6 px of plane
    assert hole.sum() == 20 * 6
    fused = nearest_fill(warped["depth"], valid)  # what an edge-blind fill gives
    assert (fused[~valid] == Z_FG).any()
    out = background_fill(fused, valid, gray, tof_shift(F, T))
    bounded = ~valid & (np.arange(80)[None] > 5)  # the image's left border strip has no bound
    assert np.array_equal(out[bounded], truth[bounded])  # every hole pixel now on the plane
    assert np.array_equal(out[valid], fused[valid])
    border = ~valid & ~bounded
    assert border.any() and np.array_equal(out[border], fused[border])


def test_hole_pixels_coloured_like_the_foreground_keep_the_fused_depth():
    warped, truth, gray, T = _scene()
    valid = warped["valid"]
    fused = nearest_fill(warped["depth"], valid)
    g = gray.copy()
    g[10:30, 28:30] = 0.8  # two hole columns look like the box: the RGB edge is there
    out = background_fill(fused, valid, g, tof_shift(F, T))
    assert np.array_equal(out[10:30, 28:30], fused[10:30, 28:30])
    assert np.all(out[10:30, 24:28] == Z_BG)


def _loop_reference(d, measured, gray, shift, edge_ratio, width_factor):
    """The rule written per pixel with explicit scans along the row."""
    out = d.astype(np.float32).copy()
    h, w = d.shape
    for y in range(h):
        for x in range(w):
            if measured[y, x]:
                continue
            lft = [c for c in range(x, -1, -1) if measured[y, c]]
            rgt = [c for c in range(x, w) if measured[y, c]]
            if not lft or not rgt:
                continue
            bg, fg = (lft[0], rgt[0]) if shift > 0 else (rgt[0], lft[0])
            z_bg, z_fg = d[y, bg], d[y, fg]
            if z_bg <= (1 + edge_ratio) * z_fg:
                continue
            if abs(x - bg) > width_factor * abs(shift) * (1 / z_fg - 1 / z_bg):
                continue
            if abs(gray[y, x] - gray[y, bg]) <= abs(gray[y, x] - gray[y, fg]):
                out[y, x] = z_bg
    return out


@pytest.mark.parametrize("shift", [30.0, -30.0])
def test_background_fill_matches_a_per_pixel_loop(shift):
    rng = np.random.default_rng(3)
    d = rng.uniform(0.5, 6.0, (12, 40)).astype(np.float32)
    measured = rng.random((12, 40)) > 0.45
    gray = rng.random((12, 40)).astype(np.float32)
    out = background_fill(d, measured, gray, shift, 0.15, 2.0)
    ref = _loop_reference(d, measured, gray, shift, 0.15, 2.0)
    assert np.array_equal(out, ref)
    assert (out != d).any()  # the case exercises the fill
    stack = background_fill(np.stack([d, d[::-1]]), np.stack([measured, measured[::-1]]),
                            np.stack([gray, gray[::-1]]), shift)
    assert np.array_equal(stack[0], out) and np.array_equal(
        stack[1], background_fill(d[::-1], measured[::-1], gray[::-1], shift))


def test_background_fill_invariants():
    rng = np.random.default_rng(4)
    d = rng.uniform(0.5, 6.0, (16, 50)).astype(np.float32)
    measured = rng.random((16, 50)) > 0.5
    gray = rng.random((16, 50)).astype(np.float32)
    assert np.array_equal(background_fill(d, measured, gray, 0.0), d)  # no sideways offset
    assert np.array_equal(background_fill(d, measured, gray, 40.0, width_factor=0.0), d)
    out = background_fill(d, measured, gray, 40.0)
    assert np.array_equal(out[measured], d[measured])
    for y in range(16):  # a filled pixel takes a measured depth of its own row
        changed = out[y] != d[y]
        assert np.isin(out[y][changed], d[y][measured[y]]).all()
    with pytest.raises(ValueError):
        background_fill(d, measured, gray, 40.0, edge_ratio=-1.0)
