"""SGBM scale and validity, the rig-derived disparity search, OpenCV's recommended settings,
left-right consistency, the matching-uniqueness margin and the cost curvature."""

import numpy as np
import pytest

from mobifuse.calibration import as_calibration
from mobifuse.config import StereoConfig
from mobifuse.stereo import (
    disparity_search,
    left_right_check,
    matching_evidence,
    matching_uniqueness,
    run_stereo,
    sgbm_disparity,
    sgbm_params,
    stereo_depth,
)
from shared.errors import DataError


def _calib(f=280.0, B=0.015, doffs=0.0, depth_range=None):
    K = np.array([[f, 0, 47.5], [0, f, 31.5], [0, 0, 1]])
    return as_calibration({"K_left": K, "K_tof": K, "T_left_tof": np.eye(4), "baseline_m": B,
                           "doffs": doffs, "depth_range": depth_range})


def _pair(shift=5, h=64, w=96, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h, w // 4 + 8)).astype(np.uint8)
    big = np.repeat(np.repeat(base, 4, axis=1), 1, axis=0)[:, : w + 32]  # 4-px blocks along x
    big = (big.astype(float) * 0.7 + rng.integers(0, 60, big.shape)).clip(0, 255)
    left = big[:, 16: 16 + w].astype(np.uint8)
    right = big[:, 16 + shift: 16 + shift + w].astype(np.uint8)  # x_R = x_L - shift
    return left, right


def test_sgbm_disparity_is_divided_by_16():
    left, right = _pair(shift=6)
    d = sgbm_disparity(left, right, StereoConfig(num_disparities=16))
    inner = d[8:-8, 24:-8]
    assert np.nanmedian(inner) == pytest.approx(6.0, abs=0.25)  # not 96 = 6 x 16


def test_invalid_disparity_is_nan_and_depth_follows_fb_over_d():
    left, right = _pair(shift=6)
    d = sgbm_disparity(left, right, StereoConfig(num_disparities=16))
    assert np.isnan(d[:, :10]).mean() > 0.9  # the left band has no match candidates
    z = stereo_depth(np.array([[4.0, 0.2, np.nan]]), focal_px=280.0, baseline_m=0.015)
    assert z[0, 0] == pytest.approx(280 * 0.015 / 4)
    assert np.isnan(z[0, 1]) and np.isnan(z[0, 2])
    z = stereo_depth(np.array([[4.0, -3.0]]), 280.0, 0.015, doffs=6.0)  # f B / (d + doffs)
    assert z[0, 0] == pytest.approx(280 * 0.015 / 10) and z[0, 1] == pytest.approx(4.2 / 3)


def test_disparity_search_closed_form_rounding_and_clip_message():
    cfg = StereoConfig()
    c = _calib(f=1000.0, B=0.1, doffs=20.0, depth_range=(1.0, 5.0))
    s = disparity_search(c, 640, cfg)
    # d = f B / Z - doffs: 100 - 20 = 80 px at 1 m, 20 - 20 = 0 px at 5 m; +-2 px margin
    assert s["needed"] == pytest.approx((-2.0, 82.0))
    assert s["min_disp"] == -2 and s["num_disp"] == 96 and s["num_disp"] % 16 == 0
    assert not s["clipped"]
    s = disparity_search(_calib(f=1000.0, B=0.1, depth_range=(0.2, 5.0)), 640, cfg)
    assert s["clipped"] and s["num_disp"] == cfg.max_disparities
    assert "clipped" in s["message"] and "0.2" in s["message"]
    s = disparity_search(_calib(f=1000.0, B=0.1, depth_range=(0.2, 5.0)), 100, cfg)
    assert s["num_disp"] <= 100 - 3  # fits the image
    tof = np.full(100, 2.0)  # no calibrated range: from the ToF depths
    s = disparity_search(_calib(f=1000.0, B=0.1), 640, cfg, tof)
    assert s["depth_range"] == pytest.approx((2.0 / 1.2, 4.0))
    assert disparity_search(_calib(), 640, StereoConfig(num_disparities=32,
                                                        min_disparity=-4))["min_disp"] == -4


def test_sgbm_params_follow_opencv_recommendations():
    p = sgbm_params(StereoConfig(), 320)
    assert p == {"block_size": 3, "p1": 8 * 9, "p2": 32 * 9, "channels": 1}
    p = sgbm_params(StereoConfig(color=True), 741)
    assert p["block_size"] == 5 and p["p1"] == 8 * 3 * 25 and p["p2"] == 32 * 3 * 25
    assert sgbm_params(StereoConfig(), 1280)["block_size"] == 7
    assert sgbm_params(StereoConfig(block_size=9, p1=10, p2=50), 320)["p2"] == 50


def test_negative_disparity_search_finds_a_shift_to_the_right():
    left, right = _pair(shift=6)
    # right image shifted the other way: x_R = x_L + 6 (doffs > disparity), d = -6
    d = sgbm_disparity(right, left, StereoConfig(), (-16, 32))
    assert np.nanmedian(d[8:-8, 8:-24]) == pytest.approx(-6.0, abs=0.25)


def test_left_right_check_small_on_consistent_pair():
    left, right = _pair(shift=6)
    cfg = StereoConfig(num_disparities=16)
    d = sgbm_disparity(left, right, cfg)
    lr = left_right_check(left, right, d, cfg)
    assert np.median(lr[8:-8, 24:-8][np.isfinite(lr[8:-8, 24:-8])]) < 0.5


def test_uniqueness_low_on_textureless_high_on_texture():
    flat = np.full((32, 64), 120, dtype=np.uint8)
    assert matching_uniqueness(flat, flat, 16).max() < 1e-3
    left, right = _pair(shift=6, h=32, w=64)
    assert np.median(matching_uniqueness(left, right, 16)[:, 20:]) > 0.3


def test_cost_curvature_zero_when_flat_positive_at_a_true_match():
    flat = np.full((32, 64), 120, dtype=np.uint8)
    ev = matching_evidence(flat, flat, np.full((32, 64), 6.0), 0, 16)
    assert ev["curvature"].max() == 0
    left, right = _pair(shift=6, h=32, w=64)
    ev = matching_evidence(left, right, np.full((32, 64), 6.0), 0, 16)
    # the SAD cost at the true shift is a sharp minimum: c(5) + c(7) - 2 c(6) > 0
    assert np.median(ev["curvature"][4:-4, 24:]) > 5


def test_cost_margin_equals_the_argmin_and_masked_second_minimum():
    """cost_margin's margin against the definition written out per pixel: best = first
    argmin, second = min over disparities further than one step from it; and
    matching_evidence = cost_curvature(cost_margin(...))."""
    from mobifuse.stereo import cost_curvature, cost_margin, cost_volume

    left, right = _pair(shift=5, h=20, w=40)
    cost, margin = cost_margin(left, right, 0, 12, 3)
    np.testing.assert_array_equal(cost, cost_volume(left, right, 0, 12, 3))
    for y in range(0, 20, 3):
        for x in range(0, 40, 3):
            c = cost[:, y, x].astype(np.float64)
            b = int(np.argmin(c))
            c2 = min([c[k] for k in range(12) if abs(k - b) > 1], default=np.inf)
            with np.errstate(invalid="ignore"):
                want = (c2 - c[b]) / (c2 + 1e-3)
            want = want if np.isfinite(want) else 0.0  # no finite second minimum: ambiguous
            assert margin[y, x] == pytest.approx(np.clip(want, 0, 1), abs=1e-6)
    disp = np.full((20, 40), 5.0)
    ev = matching_evidence(left, right, disp, 0, 12, 3)
    ev2 = cost_curvature(cost, margin, disp, 0)
    for k in ev:
        np.testing.assert_array_equal(ev[k], ev2[k])


def test_mismatched_shapes_raise():
    left, right = _pair()
    with pytest.raises(DataError, match="shape"):
        run_stereo(left, right[:, :-2], _calib(), StereoConfig())
    with pytest.raises(DataError, match="image"):
        sgbm_disparity(np.zeros((2, 3, 4, 5)), right, StereoConfig())
