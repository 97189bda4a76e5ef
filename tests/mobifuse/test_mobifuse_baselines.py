"""Baselines and geometry against closed forms and properties."""

import numpy as np
import pytest

from mobifuse.baselines import inverse_variance_fusion, joint_bilateral_upsample, oracle_selection
from mobifuse.geometry import backproject, chamfer_distance, densify, nearest_fill, reproject_tof
from mobifuse.simulator import intrinsics
from shared.errors import DataError


def test_inverse_variance_closed_form():
    dt, ds = np.full((4, 4), 2.0), np.full((4, 4), 3.0)
    out = inverse_variance_fusion(dt, np.full((4, 4), 0.1), ds, np.full((4, 4), 0.1))
    np.testing.assert_allclose(out, 2.5, rtol=1e-6)
    out = inverse_variance_fusion(dt, np.full((4, 4), 0.1), ds, np.full((4, 4), 0.2))
    np.testing.assert_allclose(out, (2 / 0.01 + 3 / 0.04) / (1 / 0.01 + 1 / 0.04), rtol=1e-6)
    out = inverse_variance_fusion(dt, np.full((4, 4), 1e-4), ds, np.full((4, 4), 10.0))
    np.testing.assert_allclose(out, 2.0, atol=1e-6)


def test_oracle_never_worse_than_either_sensor():
    rng = np.random.default_rng(0)
    gt = rng.uniform(1, 3, (8, 8))
    a, b = gt + rng.normal(0, 0.1, gt.shape), gt + rng.normal(0, 0.1, gt.shape)
    o = oracle_selection(a, b, gt)
    assert np.all(np.abs(o - gt) <= np.minimum(np.abs(a - gt), np.abs(b - gt)) + 1e-6)


def test_joint_bilateral_respects_guide_edges():
    h, w = 20, 20
    guide = np.zeros((h, w))
    guide[:, 10:] = 1.0
    depth = np.where(guide > 0, 3.0, 1.0)
    valid = np.zeros((h, w), bool)
    valid[::2, ::2] = True
    jbu = joint_bilateral_upsample(depth, valid, guide, radius=3)
    plain = densify(depth, valid, sigma=1.5)
    assert np.abs(jbu - depth).max() < 1e-3  # range weights stop mixing across the edge
    assert np.abs(plain - depth).max() > 0.1  # without the guide, the edge blurs
    np.testing.assert_allclose(joint_bilateral_upsample(np.full((h, w), 2.0), valid, guide),
                               2.0, rtol=1e-6)


def test_reproject_identity_and_zbuffer():
    K = intrinsics(16, 12, 20.0)
    depth = np.full((12, 16), 2.0)
    out = reproject_tof(depth, np.ones((12, 16), bool), K, K, np.eye(4), (12, 16))
    np.testing.assert_allclose(out["depth"], 2.0, rtol=1e-6)
    # a nearer sample landing on the same pixel wins the z-buffer
    depth2 = depth.copy()
    depth2[6, 8] = 1.0
    T = np.eye(4)
    out = reproject_tof(depth2, np.ones((12, 16), bool), K, K, T, (12, 16),
                        {"amp": np.arange(192.0).reshape(12, 16)})
    assert out["depth"][6, 8] == pytest.approx(1.0)
    assert out["amp"][6, 8] == pytest.approx(6 * 16 + 8)


def test_reproject_rejects_mismatched_mask():
    K = intrinsics(16, 12, 20.0)
    with pytest.raises(DataError, match="shape"):
        reproject_tof(np.ones((12, 16)), np.ones((12, 15), bool), K, K, np.eye(4), (12, 16))


def test_nearest_fill_all_invalid_raises():
    with pytest.raises(DataError, match="no valid"):
        nearest_fill(np.zeros((4, 4)), np.zeros((4, 4), bool))


def test_chamfer_distance_closed_form():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (500, 3))
    assert chamfer_distance(a, a) == 0.0
    grid = np.stack(np.meshgrid(*[np.arange(5) * 0.1] * 3), -1).reshape(-1, 3)
    assert chamfer_distance(grid, grid + [0, 0, 0.01]) == pytest.approx(0.01)  # spacing >> shift
    K = intrinsics(8, 6, 10.0)
    pts = backproject(np.full((6, 8), 2.0), K)
    assert pts.shape == (48, 3) and np.allclose(pts[:, 2], 2.0)
