"""The DEI is monotone in each physical factor it models, and zero-concavity on planes."""

import numpy as np

from mobifuse.config import DEIConfig
from mobifuse.dei import concavity, stereo_dei, texture_strength, tof_dei

CFG = DEIConfig()


def _tof(depth=2.0, amp=2000.0, amb=1000.0, hole=False, shape=(16, 16)):
    f = lambda v: np.full(shape, v, dtype=np.float64)  # noqa: E731
    return tof_dei(f(depth), f(amp), f(amb), np.full(shape, hole), 140.0, 30e6, 20.0, CFG)


def _st(depth=1.5, texture=100.0, lr=0.0, uniq=0.5, bright=100.0, valid=True, shape=(8, 8)):
    f = lambda v: np.full(shape, v, dtype=np.float64)  # noqa: E731
    return stereo_dei(f(depth), np.full(shape, valid), f(texture), f(lr), f(uniq), f(bright),
                      280.0, 0.015, CFG)


def _sig(d):
    return float(d["sigma"][8 if d["sigma"].shape[0] > 8 else 4, 4])


def test_tof_dei_monotone_in_amplitude_ambient_range_and_holes():
    assert _sig(_tof(amp=500)) > _sig(_tof(amp=2000)) > _sig(_tof(amp=8000))
    assert _sig(_tof(amb=1e5)) > _sig(_tof(amb=1e4)) > _sig(_tof(amb=0))
    assert _sig(_tof(depth=4.8)) > _sig(_tof(depth=2.0))  # near the wrap range
    assert _sig(_tof(hole=True)) > _sig(_tof(hole=False))


def test_concavity_zero_on_planes_positive_in_corners_and_mpi_term_grows():
    v, u = np.mgrid[0:24, 0:40]
    plane = 1.0 / (0.3 + 0.004 * u + 0.002 * v)  # inverse depth linear in pixels
    assert np.abs(concavity(plane, 140.0)[8:-8, 8:-8]).max() < 1e-6  # away from borders
    x = np.arange(40, dtype=np.float64)
    inv = 0.3 + 0.01 * np.abs(x - 20)  # farthest at the corner column: concave (V in 1/Z)
    corner = np.tile(1 / inv, (24, 1))
    c = concavity(corner, 140.0)
    assert c[12, 20] > 0.01 and c[12, 5] < 1e-6
    convex = np.tile(1 / (0.5 - 0.01 * np.abs(x - 20)), (24, 1))  # nearest at the ridge
    assert concavity(convex, 140.0)[12, 20] == 0
    amp, amb = np.full(corner.shape, 3000.0), np.zeros(corner.shape)
    hole = np.zeros(corner.shape, bool)
    d_c = tof_dei(corner, amp, amb, hole, 140.0, 30e6, 20.0, CFG)
    assert d_c["mpi"][12, 20] > d_c["mpi"][12, 5]


def test_tof_dei_edge_term_grows_with_depth_jump():
    small = np.full((16, 16), 2.0)
    small[:, 8:] = 2.05
    big = np.full((16, 16), 2.0)
    big[:, 8:] = 3.0
    args = (np.full((16, 16), 3000.0), np.zeros((16, 16)), np.zeros((16, 16), bool), 140.0,
            30e6, 20.0, CFG)
    assert tof_dei(big, *args)["sigma"][8, 8] > tof_dei(small, *args)["sigma"][8, 8]
    assert tof_dei(big, *args)["sigma"][8, 8] > tof_dei(big, *args)["sigma"][8, 2]


def test_stereo_dei_monotone_in_depth_texture_lr_uniqueness_brightness():
    assert _sig(_st(depth=3.0)) > _sig(_st(depth=1.5)) > _sig(_st(depth=0.5))
    # quadratic in depth: doubling Z quadruples sigma (far from the floor term)
    assert _sig(_st(depth=3.0)) / _sig(_st(depth=1.5)) == np.float32(4.0) or \
        abs(_sig(_st(depth=3.0)) / _sig(_st(depth=1.5)) - 4.0) < 0.05
    assert _sig(_st(texture=1.0)) > _sig(_st(texture=100.0)) > _sig(_st(texture=1e4))
    assert _sig(_st(lr=3.0)) > _sig(_st(lr=0.0))
    assert _sig(_st(uniq=0.0)) > _sig(_st(uniq=0.9))
    assert _sig(_st(bright=5.0)) > _sig(_st(bright=200.0))
    assert _sig(_st(valid=False)) > _sig(_st(valid=True))


def test_texture_strength_zero_on_flat_image():
    assert texture_strength(np.full((16, 16), 90, np.uint8)).max() == 0
    rng = np.random.default_rng(0)
    assert texture_strength(rng.integers(0, 255, (16, 16)).astype(np.uint8)).mean() > 100
