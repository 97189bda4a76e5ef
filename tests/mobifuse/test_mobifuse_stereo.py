"""SGBM scale and validity, left-right consistency and the matching-uniqueness margin."""

import numpy as np
import pytest

from mobifuse.config import StereoConfig
from mobifuse.stereo import (
    left_right_check,
    matching_uniqueness,
    run_stereo,
    sgbm_disparity,
    stereo_depth,
)
from shared.errors import DataError


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


def test_mismatched_shapes_raise():
    left, right = _pair()
    with pytest.raises(DataError, match="shape"):
        run_stereo(left, right[:, :-2], 280.0, 0.015, StereoConfig())
    with pytest.raises(DataError, match="image"):
        sgbm_disparity(np.zeros((2, 3, 4, 5)), right, StereoConfig())
