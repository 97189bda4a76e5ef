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


def test_the_gate_reads_the_overlap_only_and_opens_at_equality():
    """The sigma medians are taken over the pixels both sensors measured, not the frame; a
    ratio exactly at the gate opens it."""
    rng = np.random.default_rng(4)
    gt, depth, tof, tv, st, sv = _frame(rng)
    both = tv & sv
    s_t = np.where(both, 0.05, 0.01)  # the ToF looks precise off the overlap only
    s_s = np.where(both, 0.05, 0.5)  # the stereo looks noisy off the overlap only
    _, o = stereo_offset(depth, tof, tv, st, sv, s_t, s_s)
    assert float(o) != 0  # over the overlap: equal medians, ratio 1 = the gate
    _, o = stereo_offset(depth, tof, tv, st, sv, s_t, s_s * 1.01)
    assert float(o) == 0


def test_non_finite_stereo_or_sigma_neither_opens_the_gate_nor_poisons_the_frame():
    rng = np.random.default_rng(5)
    gt, depth, tof, tv, st, sv = _frame(rng)
    both = np.argwhere(tv & sv)
    s_t = np.full(gt.shape, 0.05)
    noisy = np.full(gt.shape, 10.0)  # gate shut
    noisy[tuple(both[0])] = np.nan
    _, o = stereo_offset(depth, tof, tv, st, sv, s_t, noisy)
    assert float(o) == 0  # one NaN sigma does not open a shut gate
    st_nan = st.copy()
    st_nan[tuple(both[1])] = np.nan
    out, o = stereo_offset(depth, None, tv, st_nan, sv, s_t, s_t / 2)
    assert np.isfinite(float(o)) and float(o) == pytest.approx(0.03, abs=0.003)
    assert np.all(np.isfinite(out))
    for bad in (np.nan, -1.0):
        with pytest.raises(ValueError, match="gate must be >= 0"):
            stereo_offset(depth, tof, tv, st, sv, s_t, s_t, gate=bad)
    empty, o = stereo_offset(np.zeros((0, 5)), None, np.zeros((0, 5)), np.zeros((0, 5)),
                             np.zeros((0, 5)), np.zeros((0, 5)), np.zeros((0, 5)))
    assert empty.shape == (0, 5) and o.shape == ()


def test_the_guard_clip_binds_where_the_offset_leaves_the_inputs_hull():
    """Inputs that agree within 1 cm; the net's depth 10 cm near except on a block where it is
    right. The offset (10.5 cm, set by the majority) pushes the block 10 cm beyond both inputs,
    and the guard clips it back to the top of their 5 x 5 hull; elsewhere depth + o = 2.005."""
    shape = (20, 20)
    depth = np.full(shape, 1.90)
    depth[5:12, 5:12] = 2.0
    tof, st = np.full(shape, 1.995), np.full(shape, 2.005)
    ones = np.ones(shape, bool)
    s = np.full(shape, 0.02)
    out, o = stereo_offset(depth, tof, ones, st, ones, s, s)
    assert float(o) == pytest.approx(0.105, abs=1e-6)
    np.testing.assert_allclose(out, 2.005, rtol=1e-6)  # the block clipped from 2.105
    unclipped, _ = stereo_offset(depth, None, ones, st, ones, s, s)
    np.testing.assert_allclose(unclipped[5:12, 5:12], 2.105, rtol=1e-6)


def test_refined_and_fuse_pass_each_map_to_its_argument(monkeypatch):
    """`bench.refined` and `api.fuse` hand `stereo_offset` the ToF, its mask, the stereo, its
    mask and the two sigmas in that order (a swap would still run)."""
    import mobifuse.api as api
    import mobifuse.bench as bench

    rng = np.random.default_rng(6)
    geom = rng.random((4, 6, 7)).astype(np.float32)
    f = {"geom": geom, "sigma_tof": rng.random((6, 7)), "sigma_st": rng.random((6, 7)),
         "err": rng.random((3, 6, 7))}
    seen = {}

    def spy(depth, d_tof, tof_valid, st, st_valid, sigma_tof, sigma_st, gate=1.0, *a, **k):
        seen.update(d_tof=d_tof, tof_valid=tof_valid, st=st, st_valid=st_valid,
                    sigma_tof=sigma_tof, sigma_st=sigma_st, gate=gate)
        return np.asarray(depth, np.float32), np.zeros(())

    monkeypatch.setattr(api, "stereo_offset", spy)  # `post_steps`, which both call
    bench.refined(rng.random((6, 7)), f, 0.0, denoise_c=0.0, offset_gate=0.5)
    for key, ref in (("d_tof", geom[0]), ("tof_valid", geom[1]), ("st", geom[2]),
                     ("st_valid", geom[3]), ("sigma_tof", f["sigma_tof"]),
                     ("sigma_st", f["sigma_st"])):
        np.testing.assert_array_equal(seen[key], ref)
    assert seen["gate"] == 0.5

    from mobifuse.config import NetConfig, SimConfig
    from mobifuse.data import sim_calibration
    from mobifuse.models import TwoStageFusionNet
    from mobifuse.simulator import simulate_scene

    sim = SimConfig(width=64, height=48, focal_px=56.0, tof_width=32, tof_height=24,
                    tof_focal_px=28.0)
    raw = simulate_scene(2, sim)
    tof = np.where(raw["tof_valid"], raw["tof_depth"], np.nan)
    net = TwoStageFusionNet(NetConfig(widths=(4, 8, 8)))
    out = api.fuse(raw["left"], raw["right"], tof, sim_calibration(sim), model=net, jit=False)
    for key, ref in (("d_tof", out["tof"]), ("tof_valid", out["tof_valid"]),
                     ("st", out["stereo"]), ("st_valid", out["stereo_valid"]),
                     ("sigma_tof", out["sigma_tof"]), ("sigma_st", out["sigma_st"])):
        np.testing.assert_array_equal(seen[key], ref)
    assert seen["gate"] == 0.0  # a net that names no gate: off
    net.meta = {"offset_gate": 1.5}
    api.fuse(raw["left"], raw["right"], tof, sim_calibration(sim), model=net, jit=False)
    assert seen["gate"] == 1.5
    net.meta = {"offset_gate": "wide"}
    from shared.errors import DataError
    with pytest.raises(DataError, match="offset_gate must be a number"):
        api.fuse(raw["left"], raw["right"], tof, sim_calibration(sim), model=net, jit=False)
