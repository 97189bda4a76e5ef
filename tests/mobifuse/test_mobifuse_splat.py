"""The ToF splatting's surface rule (`geometry.reproject_tof(surface_tol=...)`)."""

import numpy as np
import pytest

from mobifuse.config import DEIConfig
from mobifuse.data import dei_key
from mobifuse.geometry import backproject, reproject_tof
from mobifuse.simulator import intrinsics


def _reference(depth, K_tof, K_left, shape, tol):
    """Pixel by pixel: every splatted sample that lands there (footprint as reproject_tof's),
    the nearest depth, the samples within (1 + tol) of it, the one projected nearest wins."""
    H, W = shape
    pts = backproject(depth, K_tof, np.ones(depth.shape, bool))
    z = pts[:, 2]
    u = K_left[0, 0] * pts[:, 0] / z + K_left[0, 2]
    v = K_left[1, 1] * pts[:, 1] / z + K_left[1, 2]
    r = max(int(np.ceil(K_left[0, 0] / K_tof[0, 0])) - 1, 0)
    offs = range(-(r // 2), r - r // 2 + 1) if r > 0 else range(1)
    land: dict = {}
    for i in range(len(z)):
        for dy in offs:
            for dx in offs:
                px, py = int(np.round(u[i])) + dx, int(np.round(v[i])) + dy
                if 0 <= px < W and 0 <= py < H:
                    land.setdefault((py, px), []).append(
                        (z[i], (u[i] - px) ** 2 + (v[i] - py) ** 2))
    out = np.zeros(shape)
    for (py, px), samples in land.items():
        zmin = min(s[0] for s in samples)
        same = [s for s in samples if s[0] <= np.float32(zmin) * (1 + tol)] if tol > 0 else \
            [s for s in samples if s[0] == zmin]
        out[py, px] = min(same, key=lambda s: s[1])[0]
    return out


@pytest.mark.parametrize("tol", [0.0, 0.1])
def test_surface_rule_matches_a_pixel_by_pixel_reference(tol):
    rng = np.random.default_rng(3)
    K_tof, K_left = intrinsics(10, 8, 10.0), intrinsics(15, 12, 15.0)  # 1.5 px per ToF px
    depth = 2.0 + rng.normal(0, 0.05, (8, 10))
    depth[2:5, 3:6] = 1.0 + rng.normal(0, 0.02, (3, 3))  # a nearer box
    got = reproject_tof(depth, np.ones((8, 10), bool), K_tof, K_left, np.eye(4), (12, 15),
                        surface_tol=tol)["depth"]
    np.testing.assert_allclose(got, _reference(depth, K_tof, K_left, (12, 15), tol),
                               rtol=1e-6)


def test_overlapping_footprints_read_near_unless_the_surface_rule_picks():
    """A wall at 2 m with 5 cm noise, 1.5 view pixels per ToF pixel: the nearest sample reads
    near by a share of the noise; the surface rule (one surface, nearest centre) does not."""
    rng = np.random.default_rng(0)
    K_tof, K_left = intrinsics(60, 45, 60.0), intrinsics(90, 68, 90.0)
    depth = 2.0 + rng.normal(0, 0.05, (45, 60))
    bias = {}
    for tol in (0.0, 0.1):
        out = reproject_tof(depth, np.ones((45, 60), bool), K_tof, K_left, np.eye(4), (68, 90),
                            surface_tol=tol)
        bias[tol] = float(np.median(out["depth"][out["valid"]] - 2.0))
    own = float(np.median(depth - 2.0))  # the draw's own median (-0.3 cm here)
    assert bias[0.0] < own - 0.01 and abs(bias[0.1] - own) < 0.001


def test_the_surface_rule_keeps_occlusion():
    """A box 1 m nearer than the wall: wherever its samples land, the wall never shows."""
    K_tof, K_left = intrinsics(30, 24, 30.0), intrinsics(45, 36, 45.0)
    depth = np.full((24, 30), 3.0)
    depth[8:16, 10:20] = 2.0
    T = np.eye(4)
    T[0, 3] = 0.05  # a shifted view: the box hides some wall
    a = reproject_tof(depth, np.ones((24, 30), bool), K_tof, K_left, T, (36, 45))["depth"]
    b = reproject_tof(depth, np.ones((24, 30), bool), K_tof, K_left, T, (36, 45),
                      surface_tol=0.1)["depth"]
    np.testing.assert_array_equal(a == 2.0, b == 2.0)


def test_the_tolerance_keeps_old_cache_keys():
    assert "tof_surface_tol" not in dei_key(DEIConfig())
    assert dei_key(DEIConfig(tof_surface_tol=0.1))["tof_surface_tol"] == 0.1
