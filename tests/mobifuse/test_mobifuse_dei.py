"""The DEI is monotone in each physical factor it models, and zero-concavity on planes."""

import cv2
import numpy as np
import pytest

from mobifuse.config import DEIConfig
from mobifuse.dei import concavity, stereo_dei, stereo_depth_reference, texture_strength, tof_dei

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


def test_stereo_dei_grows_as_the_cost_curvature_flattens():
    flat = stereo_dei(*_args_st(), CFG, curvature=np.zeros((8, 8)))
    sharp = stereo_dei(*_args_st(), CFG, curvature=np.full((8, 8), 50.0))
    assert flat["sigma"][4, 4] > sharp["sigma"][4, 4]


def _args_st():
    f = lambda v: np.full((8, 8), v, dtype=np.float64)  # noqa: E731
    return (f(1.5), np.full((8, 8), True), f(100.0), f(0.0), f(0.5), f(100.0), 280.0, 0.015)


def test_each_sensors_dei_ignores_the_other_sensors_depth():
    """sigma_st comes from the stereo's own evidence: replacing the ToF frame (depth and
    amplitude) leaves it bit-identical, and replacing the right image leaves sigma_tof so."""
    from mobifuse.config import SimConfig
    from mobifuse.data import sim_calibration
    from mobifuse.pipeline import prepare_frame
    from mobifuse.simulator import simulate_scene

    sim = SimConfig(width=96, height=64, focal_px=84.0, tof_width=48, tof_height=32,
                    tof_focal_px=42.0)
    raw = simulate_scene(5, sim)
    c = sim_calibration(sim)
    c.depth_range = (0.3, 6.0)  # a fixed stereo search: the ToF must not set it here
    a = prepare_frame(raw["left"], raw["right"], raw["tof_depth"], raw["tof_valid"], c,
                      raw["tof_amplitude"])
    b = prepare_frame(raw["left"], raw["right"], raw["tof_depth"] * 1.7 + 0.3,
                      raw["tof_valid"], c, raw["tof_amplitude"] * 0.1)
    np.testing.assert_array_equal(a["sigma_st"], b["sigma_st"])
    assert not np.array_equal(a["sigma_tof"], b["sigma_tof"])
    noisy = np.clip(raw["right"].astype(int) + 40, 0, 255).astype(np.uint8)
    d = prepare_frame(raw["left"], noisy, raw["tof_depth"], raw["tof_valid"], c,
                      raw["tof_amplitude"])
    np.testing.assert_array_equal(a["sigma_tof"], d["sigma_tof"])


def test_calibrate_scale_recovers_gaussian_quantile_and_coverage():
    from mobifuse.dei import calibrate_scale, coverage

    rng = np.random.default_rng(0)
    sigma = rng.uniform(0.01, 0.1, 200_000)
    err = rng.normal(size=sigma.shape) * sigma * 3.0  # the DEI underestimates 3x
    c = calibrate_scale([sigma[:1000], sigma[1000:]], [err[:1000], err[1000:]], 0.95)
    assert c == pytest.approx(3.0 * 1.96 / 2, rel=0.02)  # 95 % two-sided: 1.96 sigma
    assert coverage(c * sigma, err) == pytest.approx(0.95, abs=0.002)
    assert coverage(sigma, err) == pytest.approx(0.495, abs=0.01)  # P(|z| <= 2/3)


@pytest.mark.parametrize("shape", [(48, 64), (5, 7), (2, 9)])
def test_opencv_filters_equal_the_scipy_definitions(shape):
    """The DEI's filters run on OpenCV; each equals its scipy.ndimage definition (mirrored
    borders, Gaussian truncated at 4 sigma) to float rounding, at any size."""
    from scipy import ndimage

    from mobifuse.dei import edge_strength
    from mobifuse.geometry import gaussian_blur

    rng = np.random.default_rng(5)
    z = rng.uniform(0.5, 4.0, shape)
    for sigma in (1.0, 1.5):
        np.testing.assert_allclose(gaussian_blur(z, sigma), ndimage.gaussian_filter(z, sigma),
                                   rtol=1e-12, atol=1e-12)
    gy, gx = np.gradient(z)
    np.testing.assert_allclose(edge_strength(z), ndimage.maximum_filter(np.hypot(gx, gy), 3),
                               rtol=1e-6)
    inv = ndimage.gaussian_filter(1.0 / z, 1.5)
    ref = np.maximum(ndimage.laplace(inv) * 50.0 * z, 0)
    np.testing.assert_allclose(concavity(z, 50.0), ref, rtol=1e-5, atol=1e-6)
    g = rng.integers(0, 255, shape).astype(np.float32)
    sx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / 8
    sy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / 8
    np.testing.assert_allclose(texture_strength(g.astype(np.uint8)),
                               ndimage.gaussian_filter(sx * sx + sy * sy, 1.5), rtol=1e-4,
                               atol=1e-3)


def _slow_local_quantile(z, q, k):
    """max(z, the element of rank int(q k^2) of each k x k window), mirror-padded borders."""
    r = k // 2
    p = np.pad(z, r, mode="symmetric")  # = scipy's mode="reflect"
    out = np.empty_like(z)
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            w = np.sort(p[i:i + k, j:j + k].ravel())
            out[i, j] = w[min(int(q * w.size), w.size - 1)]
    return np.maximum(z, out)


def test_stereo_depth_reference_equals_slow_windowed_quantile():
    z = np.random.default_rng(3).uniform(0.3, 5.0, (20, 30)).astype(np.float32)
    # 30 columns < 2 x 40: no subsampling; window round(0.4 x 30) = 12 -> 13 px (odd)
    got = stereo_depth_reference(z, 0.75, 0.4, cols=40)
    np.testing.assert_allclose(got, _slow_local_quantile(z, 0.75, 13), rtol=1e-6)
    assert (got >= z).all()


def test_local_quantile_reference_flags_a_near_reading_mismatch():
    """A gross mismatch reads near (too large a disparity) inside a far wall: with the stereo's
    own depth it gets the smallest sigma of the frame; with the local quantile, at least the
    wall's sigma."""
    depth = np.full((40, 60), 4.0)
    depth[18:22, 28:32] = 0.5  # a 4 x 4 near-reading blob
    args = (depth, np.full(depth.shape, True), np.full(depth.shape, 100.0), np.zeros(depth.shape),
            np.full(depth.shape, 0.5), np.full(depth.shape, 100.0), 280.0, 0.015)
    own_cfg = DEIConfig(st_depth_ref="own")  # the same factors, to compare the depth reference
    own = stereo_dei(*args, own_cfg)["sigma"]
    lq = stereo_dei(*args, DEIConfig(st_depth_ref="local_quantile"))["sigma"]
    assert own[20, 30] < own[5, 5] / 10
    assert lq[20, 30] >= lq[5, 5] * (1 - 1e-6)
    # on a plane the reference is the plane: identical to the own-depth sigma
    flat = (np.full((40, 60), 2.0),) + args[1:]
    np.testing.assert_array_equal(stereo_dei(*flat, own_cfg)["sigma"],
                                  stereo_dei(*flat, DEIConfig(st_depth_ref="local_quantile"))
                                  ["sigma"])


def test_st_hole_scale_scales_only_the_hole_term_and_never_the_nets_input():
    depth = np.full((8, 8), 2.0)
    valid = np.full((8, 8), True)
    valid[:, :4] = False
    args = (depth, valid) + _args_st()[2:]
    a = stereo_dei(*args, DEIConfig(st_scale=0.5, st_hole_scale=1.0))
    b = stereo_dei(*args, DEIConfig(st_scale=0.5, st_hole_scale=3.0))
    np.testing.assert_array_equal(a["raw"], b["raw"])
    np.testing.assert_array_equal(a["sigma"][valid], b["sigma"][valid])
    # closed form on a hole pixel: 0.5 (sqrt(sigma_z^2 + (3 (hole_sigma + hole_rel Z))^2) + 1e-3)
    sz = 2.0**2 / (280.0 * 0.015) * float(a["sigma_disp"][0, 0])
    h = CFG.hole_sigma + CFG.hole_rel * 2.0
    assert b["sigma"][0, 0] == pytest.approx(0.5 * (np.hypot(sz, 3 * h) + 1e-3), rel=1e-6)


def test_unknown_stereo_depth_reference_is_refused():
    from shared.config import ConfigError, from_dict

    with pytest.raises(ConfigError, match="st_depth_ref"):
        from_dict(DEIConfig, {"st_depth_ref": "tof"})
    with pytest.raises(ValueError, match="st_depth_ref"):
        stereo_dei(*_args_st(), DEIConfig(st_depth_ref="tof"))


def test_split_stereo_scales_recover_each_pixel_class_factor():
    """Matched pixels err at 3x their sigma_z, holes at 0.5x their hole term: the split fit
    returns 3 x 1.96 / 2 and (0.5 / 3) for the hole factor over it, and covers 95 %."""
    from mobifuse.experiments.calibrate_dei import split_stereo_scales

    rng = np.random.default_rng(1)
    cfg, frames = DEIConfig(st_depth_ref="own"), []  # hole term from the frame depth itself
    for _ in range(4):
        z = rng.uniform(0.5, 4.0, (60, 80))
        valid = rng.random(z.shape) < 0.6
        sz = rng.uniform(0.01, 0.2, z.shape)
        h = (cfg.hole_sigma + cfg.hole_rel * z) * ~valid
        err = rng.normal(size=z.shape) * np.where(valid, 3.0 * sz, 0.5 * h)
        frames.append({"geom": np.stack([z, z, z, valid]), "gt": z + err,
                       "sigma_st": np.sqrt(sz**2 * valid + h**2) + 1e-3})
    out = split_stereo_scales(frames, cfg)
    assert out["st_scale_split"] == pytest.approx(3.0 * 1.96 / 2, rel=0.03)
    assert out["st_hole_scale"] == pytest.approx(0.5 / 3.0, rel=0.04)
    assert out["st_coverage_split"] == pytest.approx(0.95, abs=0.01)
