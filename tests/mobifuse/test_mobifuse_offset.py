"""Scene-wide stereo offset: the median against a sort-based reference, its gates, the convex
guard it keeps, and per-frame offsets on stacked frames."""

import numpy as np
import pytest

from mobifuse.offset import scene_offset, stereo_offset


def _frame(rng, shape=(24, 32), bias=0.03):
    """A slanted plane; the net's depth is `bias` nearer than the truth, the stereo exact on a
    random 60 % of the pixels with 20 % gross mismatches, the ToF on 80 %."""
    gt = 2.0 + 0.01 * np.arange(shape[1])[None] + 0.005 * np.arange(shape[0])[:, None]
    depth = gt - bias + rng.normal(0, 0.002, shape)
    sv = rng.random(shape) < 0.6
    st = gt + np.where(rng.random(shape) < 0.2, rng.uniform(-1, 1, shape), 0.0)
    tv = rng.random(shape) < 0.8
    tof = gt + rng.normal(0, 0.02, shape)
    return gt, depth, tof, tv, st, sv


def _median_ref(depth, tv, st, sv):
    diffs = sorted(float(s) - float(d) for d, t, s, v in
                   zip(depth.ravel(), tv.ravel(), st.ravel(), sv.ravel()) if t and v)
    n = len(diffs)
    return diffs[n // 2] if n % 2 else 0.5 * (diffs[n // 2 - 1] + diffs[n // 2])


def test_scene_offset_is_the_median_over_pixels_both_sensors_measured():
    rng = np.random.default_rng(0)
    gt, depth, tof, tv, st, sv = _frame(rng)
    s_t, s_s = np.full(gt.shape, 0.05), np.full(gt.shape, 0.02)
    o = scene_offset(depth, tv, st, sv, s_t, s_s)
    assert o == pytest.approx(_median_ref(depth, tv, st, sv), abs=1e-12)
    assert o == pytest.approx(0.03, abs=0.003)  # the mismatches do not move the median


def test_stereo_offset_removes_the_bias_and_stays_in_the_guard():
    rng = np.random.default_rng(1)
    gt, depth, tof, tv, st, sv = _frame(rng)
    s_t, s_s = np.full(gt.shape, 0.05), np.full(gt.shape, 0.02)
    st_dense = np.where(sv, st, gt)  # the dense SGBM input the guard sees
    out, o = stereo_offset(depth, tof, tv, st_dense, sv, s_t, s_s)
    assert o.shape == () and float(o) == pytest.approx(0.03, abs=0.003)
    assert np.abs(out - gt).mean() < 0.3 * np.abs(depth - gt).mean()
    pad = lambda a: np.pad(a, 2, mode="edge")  # noqa: E731
    lo = np.minimum(pad(tof), pad(st_dense))
    hi = np.maximum(pad(tof), pad(st_dense))
    win = np.lib.stride_tricks.sliding_window_view
    lo, hi = win(lo, (5, 5)).min(axis=(-2, -1)), win(hi, (5, 5)).max(axis=(-2, -1))
    assert np.all((out >= lo - 1e-5) & (out <= hi + 1e-5))  # a convex mix of measured depths


def test_gates_leave_the_depth_as_it_came():
    rng = np.random.default_rng(2)
    gt, depth, tof, tv, st, sv = _frame(rng)
    d32 = depth.astype(np.float32)
    s_t = np.full(gt.shape, 0.05)
    noisy = np.full(gt.shape, 0.06)  # stereo less precise than the ToF by its DEI: no offset
    out, o = stereo_offset(depth, tof, tv, st, sv, s_t, noisy)
    assert float(o) == 0 and np.array_equal(out, d32)
    out, o = stereo_offset(depth, tof, tv, st, sv, s_t, noisy, gate=1.5)  # a looser gate: yes
    assert float(o) != 0
    few = np.zeros(gt.shape, bool)
    few[0, :10] = True  # 10 of 768 pixels: under 3 % of the frame
    out, o = stereo_offset(depth, tof, tv, st, few, s_t, s_t / 2)
    assert float(o) == 0 and np.array_equal(out, d32)
    out, o = stereo_offset(depth, tof, tv, st, sv, s_t, s_t / 2, gate=0)  # off
    assert float(o) == 0 and np.array_equal(out, d32)
    with pytest.raises(ValueError, match="gate must be >= 0"):
        stereo_offset(depth, tof, tv, st, sv, s_t, s_t, gate=-1)
    with pytest.raises(ValueError, match="min_share in"):
        stereo_offset(depth, tof, tv, st, sv, s_t, s_t, min_share=2)


def test_stacked_frames_get_their_own_offsets_and_no_guard_without_tof():
    rng = np.random.default_rng(3)
    frames = [_frame(rng, bias=b) for b in (0.03, -0.02)]
    stack = [np.stack(a) for a in zip(*frames)]
    gt, depth, tof, tv, st, sv = stack
    s_t, s_s = np.full(gt.shape, 0.05), np.full(gt.shape, 0.02)
    out, o = stereo_offset(depth, None, tv, st, sv, s_t, s_s)
    assert o.shape == (2,)
    np.testing.assert_allclose(o, [0.03, -0.02], atol=0.003)
    for i in range(2):  # unclipped: exactly depth + o
        np.testing.assert_allclose(out[i], depth[i].astype(np.float32) + np.float32(o[i]),
                                   rtol=1e-6)
