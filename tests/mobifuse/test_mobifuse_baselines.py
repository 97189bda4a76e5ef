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


def test_reproject_zbuffer_matches_a_loop_reference_with_overlapping_splats():
    """A 2x lower-resolution ToF, shifted and rotated: every left-view pixel holds the nearest
    of the splats that land on it (and that sample's channel), as an explicit loop finds."""
    from mobifuse.simulator import rot_y

    rng = np.random.default_rng(2)
    K_t, K_l = intrinsics(12, 9, 10.0), intrinsics(24, 18, 20.0)
    depth = rng.uniform(0.5, 3.0, (9, 12))
    valid = rng.random((9, 12)) < 0.9
    amp = rng.uniform(0, 100, (9, 12))
    T = np.eye(4)
    T[:3, :3] = rot_y(2.0)
    T[:3, 3] = (0.05, 0.01, 0.0)
    out = reproject_tof(depth, valid, K_t, K_l, T, (18, 24), {"amp": amp})
    zbuf, abuf = np.full((18, 24), np.inf), np.zeros((18, 24))
    r = int(np.ceil(K_l[0, 0] / K_t[0, 0])) - 1  # the splat footprint, as documented
    for v, u in zip(*np.nonzero(valid)):  # every sample, every footprint pixel
        p = T[:3, :3] @ np.array([(u - K_t[0, 2]) / K_t[0, 0] * depth[v, u],
                                  (v - K_t[1, 2]) / K_t[1, 1] * depth[v, u], depth[v, u]])
        p = p + T[:3, 3]
        uu = int(np.round(K_l[0, 0] * p[0] / p[2] + K_l[0, 2]))
        vv = int(np.round(K_l[1, 1] * p[1] / p[2] + K_l[1, 2]))
        for dy in range(-(r // 2), r - r // 2 + 1):
            for dx in range(-(r // 2), r - r // 2 + 1):
                y, x = vv + dy, uu + dx
                if 0 <= y < 18 and 0 <= x < 24 and p[2] < zbuf[y, x]:
                    zbuf[y, x], abuf[y, x] = p[2], amp[v, u]
    hit = np.isfinite(zbuf)
    np.testing.assert_array_equal(out["valid"], hit)
    np.testing.assert_allclose(out["depth"][hit], zbuf[hit], rtol=1e-6)
    np.testing.assert_allclose(out["amp"][hit], abuf[hit], rtol=1e-6)
