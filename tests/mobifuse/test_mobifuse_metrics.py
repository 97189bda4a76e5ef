"""Metrics against hand-computed values; bad inputs and configs give clear errors."""

import numpy as np
import pytest

from mobifuse.config import SimConfig
from mobifuse.metrics import dei_spearman, depth_metrics, region_metrics
from shared.config import from_dict
from shared.errors import ConfigError, DataError


def test_depth_metrics_hand_computed():
    gt = np.array([[1.0, 2.0], [4.0, 2.0]])
    pred = np.array([[1.1, 2.0], [4.0, 3.0]])
    m = depth_metrics(pred, gt)
    assert m["mae"] == pytest.approx((0.1 + 1.0) / 4)
    assert m["bad5cm"] == pytest.approx(50.0)
    assert m["d1"] == pytest.approx(0.75)  # 3/2 > 1.25
    r = region_metrics(pred, gt, {"top": np.array([[True, True], [False, False]]),
                                  "empty": np.zeros((2, 2), bool)})
    assert r == {"mae_top": pytest.approx(0.05)}


def test_depth_metrics_reject_nan_and_shape():
    gt = np.ones((2, 2))
    with pytest.raises(DataError, match="NaN"):
        depth_metrics(np.array([[1.0, np.nan], [1.0, 1.0]]), gt)
    with pytest.raises(DataError, match="shape"):
        depth_metrics(np.ones((2, 3)), gt)


def test_spearman_perfect_rank():
    rng = np.random.default_rng(0)
    gt = np.full(500, 2.0)
    err = rng.uniform(0, 1, 500)
    assert dei_spearman(err * 3 + 1, gt + err, gt) == pytest.approx(1.0)


def test_sim_config_validation_names_the_problem():
    assert from_dict(SimConfig, {"width": 321}).width == 321  # any size (odd widths too)
    with pytest.raises(ConfigError, match="tof_offset_m"):
        from_dict(SimConfig, {"tof_offset_m": [0.0, 0.0]})
    with pytest.raises(ConfigError, match="unknown key 'widht'"):
        from_dict(SimConfig, {"widht": 320})
