"""The ToF's radiometric one-bounce multipath estimate (`mobifuse.multipath`) and its use."""

import dataclasses
import warnings

import numpy as np
import pytest

from mobifuse.api import trained_dei_config
from mobifuse.calibration import Calibration, as_calibration
from mobifuse.config import DEIConfig, RigFamily, SimConfig, StereoConfig
from mobifuse.data import dei_key, sim_calibration
from mobifuse.multipath import (
    MAX_CORRECTION,
    compensate_multipath,
    indirect_ratio,
    multipath_error,
)
from mobifuse.pipeline import prepare_frame
from mobifuse.simulator import (
    C_LIGHT,
    intrinsics,
    render_rgb_pair,
    render_tof,
    sample_rig,
    sample_scene,
    simulate_scene,
)
from shared.errors import DataError

TRAIN_RIGS = RigFamily(baseline_m=(0.01, 0.05), focal_px=(250.0, 600.0), width=(256, 480))


def test_indirect_ratio_matches_a_pair_by_pair_sum():
    """The vectorised sum against the formula written out for each (receiver, patch) pair."""
    rng = np.random.default_rng(0)
    P, Q, k, omega = 5, 7, 4 * np.pi * 30e6 / C_LIGHT, 2e-3
    p_x, q_x = rng.uniform(-1, 1, (P, 3)) + [0, 0, 3], rng.uniform(-1, 1, (Q, 3)) + [0, 0, 3]
    q_x[0] = p_x[0] + [0.01, 0, 0]  # a patch within 2 cm of a receiver: dropped
    q_x[1] = p_x[1] + [0.03, 0.0, 0.0]  # within 5 cm: the distance floored
    p_n = rng.normal(size=(P, 3))
    q_n = rng.normal(size=(Q, 3))
    p_n /= np.linalg.norm(p_n, axis=1, keepdims=True)
    q_n /= np.linalg.norm(q_n, axis=1, keepdims=True)
    p_r, q_r = np.linalg.norm(p_x, axis=1), np.linalg.norm(q_x, axis=1)
    p_cos, q_rho = rng.uniform(0.3, 1, P), rng.uniform(0.05, 0.9, Q)
    got = indirect_ratio(p_x, p_n, p_r, p_cos, q_x, q_n, q_rho, q_r, omega, k)
    for p in range(P):
        total = 0j
        for q in range(Q):
            v = q_x[q] - p_x[p]
            d = float(np.sqrt(v @ v))
            if d <= 0.02:
                continue
            dd = max(d, 0.05)
            cp = min(max(v @ p_n[p] / dd, 0.0), 1.0)  # the receiver faces the patch
            cq = min(max(-(v @ q_n[q]) / dd, 0.0), 1.0)  # the patch faces the receiver
            total += q_rho[q] / np.pi * omega * cp * cq / dd**2 * np.exp(
                0.5j * k * (q_r[q] + d - p_r[p]))
        assert got[p] == pytest.approx(total * p_r[p] ** 2 / p_cos[p], rel=1e-10, abs=1e-15)


def _plane_depth(K, w, h, n, c):
    """Depth (z) of the plane n . X = c seen through K."""
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones((h, w))], -1)
    return c / (rays @ n)


@pytest.mark.parametrize("normal", [(0.0, 0.0, 1.0), (0.3, -0.2, 1.0)])
def test_a_plane_has_no_one_bounce_multipath(normal):
    """Closed form: every point of one plane sees the others edge-on (cos = 0)."""
    K = intrinsics(40, 30, 35.0)
    n = np.array(normal) / np.linalg.norm(normal)
    z = _plane_depth(K, 40, 30, n, 2.0)
    amp = 6e4 * 0.5 / z**2
    err = multipath_error(z, np.ones_like(z, bool), amp, K, 30e6, 6e4)
    assert np.abs(err).max() < 3e-4  # normals from float32 depth gradients: 0.3 mm at most


def test_a_concave_corner_reads_far_and_more_so_with_brighter_walls():
    """Two walls meeting at a concave corner light each other: both read farther than they
    are, and the estimate grows with the walls' albedo (their amplitude)."""
    K = intrinsics(48, 36, 40.0)
    u = np.arange(48)[None, :].repeat(36, 0)
    z = np.where(u < 24, _plane_depth(K, 48, 36, np.array([-0.7, 0.0, 0.7]), 1.4),
                 _plane_depth(K, 48, 36, np.array([0.7, 0.0, 0.7]), 1.4))  # farthest mid-frame
    errs = []
    for rho in (0.2, 0.8):
        amp = 6e4 * rho * 0.7 / z**2
        errs.append(multipath_error(z, np.ones_like(z, bool), amp, K, 20e6, 6e4))
    assert np.median(errs[0]) > 0.002 and np.median(errs[1]) > 2 * np.median(errs[0])


def test_compensation_bounds_and_leaves_unmeasured_pixels():
    K = intrinsics(48, 36, 40.0)
    u = np.arange(48)[None, :].repeat(36, 0)
    z = np.where(u < 24, _plane_depth(K, 48, 36, np.array([-0.7, 0, 0.7]), 1.4),
                 _plane_depth(K, 48, 36, np.array([0.7, 0, 0.7]), 1.4))
    valid = np.ones_like(z, bool)
    valid[5:9, 5:9] = False
    amp = 6e4 * 0.9 / z**2
    out = compensate_multipath(z, valid, amp, K, 20e6, 6e4, gain=100.0)
    assert np.array_equal(out[~valid], z[~valid])
    assert np.all(np.abs(out - z) <= MAX_CORRECTION * z + 1e-9)
    assert np.array_equal(compensate_multipath(z, valid, amp, K, 20e6, 6e4, 0.0), z)
    err = multipath_error(z, valid, amp, K, 20e6, 6e4)
    np.testing.assert_allclose(compensate_multipath(z, valid, amp, K, 20e6, 6e4, 0.5)[valid],
                               (z - 0.5 * err)[valid], atol=1e-6)


def _noise_free(seed: int, cfg: SimConfig) -> dict:
    rng = np.random.default_rng(seed)
    scene = sample_scene(rng, cfg, None)
    render_rgb_pair(scene, cfg, rng)
    return render_tof(scene, cfg, rng, noise=False)


def test_the_estimate_recovers_the_simulators_multipath_from_the_noisy_frame():
    """Against the simulator's own multipath (noise-free renders with and without it, the
    wiggling error off): the estimate from the noisy frame at the fitted gain 0.75 removes most
    of each scene's median multipath error, and follows it across scenes."""
    est, true = [], []
    for seed in (780100, 780101, 780102, 780103, 780104, 780105):
        cfg = dataclasses.replace(sample_rig(np.random.default_rng(seed), TRAIN_RIGS, SimConfig()),
                                  wiggle_m=0.0)
        fr = simulate_scene(seed, cfg)
        with_mp = _noise_free(seed, cfg)
        without = _noise_free(seed, dataclasses.replace(cfg, multipath_gain=0.0))
        v = fr["tof_valid"] & with_mp["valid"] & without["valid"]
        K = intrinsics(cfg.tof_width, cfg.tof_height, cfg.tof_focal_px)
        e = multipath_error(fr["tof_depth"], fr["tof_valid"], fr["tof_amplitude"], K,
                            cfg.mod_freq_hz, cfg.tof_power)
        est.append(0.75 * np.median(e[v]))
        true.append(np.median((with_mp["depth"] - without["depth"])[v]))
    est, true = np.array(est), np.array(true)
    assert np.abs(true - est).mean() < 0.4 * np.abs(true).mean()
    assert np.corrcoef(est, true)[0, 1] > 0.9


def _frame_args(seed: int):
    """A training-rig scene: (its raw frame, calibration, prepare_frame's arguments up to the
    stereo config)."""
    cfg = sample_rig(np.random.default_rng(seed), TRAIN_RIGS, SimConfig())
    fr = simulate_scene(seed, cfg)
    cal = sim_calibration(cfg)
    return fr, cal, (fr["left"], fr["right"], fr["tof_depth"], fr["tof_valid"], cal,
                     fr["tof_amplitude"], fr["tof_ambient"], 2, StereoConfig())


def test_prepare_frame_compensates_the_tof_branch_only_when_asked():
    fr, cal, args = _frame_args(780110)
    with warnings.catch_warnings():  # a random rig's search may be clipped: it warns
        warnings.simplefilter("ignore", UserWarning)
        raw = prepare_frame(*args, DEIConfig())
        comp = prepare_frame(*args, DEIConfig(tof_mpi_gain=0.75))
    assert raw["search"] == comp["search"]  # the stereo search reads the sensor's depths
    np.testing.assert_array_equal(raw["st"], comp["st"])
    K = cal.K_tof
    expect = compensate_multipath(fr["tof_depth"], fr["tof_valid"], fr["tof_amplitude"], K,
                                  cal.mod_freq_hz, cal.tof_power, 0.75)
    ref = prepare_frame(fr["left"], fr["right"], expect, fr["tof_valid"], cal,
                        fr["tof_amplitude"], fr["tof_ambient"], 2, StereoConfig(), DEIConfig())
    np.testing.assert_array_equal(comp["tof"], ref["tof"])
    np.testing.assert_array_equal(comp["sigma_tof"], ref["sigma_tof"])
    assert not np.array_equal(comp["tof"], raw["tof"])
    assert not any("amplitude" in w for w in comp["warnings"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        guess = prepare_frame(*args[:5], None, *args[6:], DEIConfig(tof_mpi_gain=0.75))
    assert any("without a ToF amplitude" in w for w in guess["warnings"])


def test_the_gain_keeps_old_cache_keys_and_travels_with_a_nets_metadata():
    assert "tof_mpi_gain" not in dei_key(DEIConfig())
    assert dei_key(DEIConfig(tof_mpi_gain=0.75))["tof_mpi_gain"] == 0.75

    class Net:
        meta = {"dei": dataclasses.asdict(DEIConfig(tof_mpi_gain=0.75))}

    assert trained_dei_config(Net(), None).tof_mpi_gain == 0.75
    assert trained_dei_config(Net(), DEIConfig()).tof_mpi_gain == 0.0  # a caller's config wins


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_calibration_rejects_a_bad_tof_power(bad):
    cal = sim_calibration(SimConfig())
    with pytest.raises(DataError, match="tof_power"):
        as_calibration(dataclasses.replace(cal, tof_power=bad))


def test_tof_power_round_trips_through_json():
    cal = as_calibration(dataclasses.replace(sim_calibration(SimConfig()), tof_power=3.0e4))
    back = as_calibration(cal.to_json())
    assert isinstance(back, Calibration) and back.tof_power == 3.0e4


def test_rig_mpi_gain_sets_the_cross_rig_nets_dei_only_and_rig_arms_feed_it_its_frames(
        monkeypatch):
    """`rig_mpi_gain` reaches the cross-rig net's DEI config (and so its cache key), not the
    bench's; `rig_arms` runs a net on its own frames where given, scores every baseline on the
    sensor's frames and adds the prepared ToF of the net's frames as a reference arm."""
    import mobifuse.bench as bench
    from mobifuse.config import BenchConfig
    from shared.config import load_config

    for gain in (0.0, 0.75):
        cfg = load_config("configs/mobifuse/bench.yaml", BenchConfig, [f"rig_mpi_gain={gain}"])
        assert bench.rig_train_config(cfg).dei.tof_mpi_gain == gain
        assert cfg.train.dei.tof_mpi_gain == 0.0
        key = bench.net_key(bench.rig_train_config(cfg), True)[1]["train"]["dei"]
        assert ("tof_mpi_gain" in key) is (gain > 0)

    def frame(tof):
        z = np.full((8, 8), tof, np.float32)
        one = np.ones((8, 8), np.float32)
        return {"geom": np.stack([z, one, z + 1, one]), "sigma_tof": one, "sigma_st": one}

    seen = []

    def predict(net, frames):
        seen.append(frames)
        return [f["geom"][0] for f in frames]

    monkeypatch.setattr(bench, "predict_frames", predict)
    monkeypatch.setattr(bench, "rig_refined", lambda preds, frames, *a, **k: preds)
    raw, own = [frame(2.0)], [frame(1.9)]
    out = bench.rig_arms(raw, {"mobifuse": object()}, 0.1, net_frames={"mobifuse": own})
    assert seen == [own]
    assert out["tof_only"][0][0, 0] == 2.0 and out["mobifuse"][0][0, 0] == np.float32(1.9)
    assert out["tof_prepared"][0][0, 0] == np.float32(1.9)  # the reference arm: its ToF
    assert "tof_prepared" not in bench.rig_arms(raw, {"mobifuse": object()}, 0.1)


def test_the_range_error_becomes_a_depth_error_per_ray(monkeypatch):
    """With a fixed indirect ratio c everywhere, every pixel's range error is angle(1 + c) / k,
    and its depth error that over the ray's length |(x, y, 1)| (z = range / |ray|)."""
    import mobifuse.multipath as mp

    K = intrinsics(40, 30, 20.0)  # a wide view: rays up to 1.4 long
    z = np.full((30, 40), 2.0)
    c, f = 0.05 + 0.02j, 30e6
    monkeypatch.setattr(mp, "indirect_ratio", lambda p_x, *a: np.full(len(p_x), c))
    err = mp.multipath_error(z, np.ones_like(z, bool), np.full_like(z, 5e3), K, f, 6e4)
    u, v = np.meshgrid(np.arange(40), np.arange(30))
    ray = np.sqrt(((u - K[0, 2]) / K[0, 0]) ** 2 + ((v - K[1, 2]) / K[1, 1]) ** 2 + 1)
    np.testing.assert_allclose(err, np.angle(1 + c) / (4 * np.pi * f / C_LIGHT) / ray,
                               rtol=1e-5)


def test_from_true_geometry_the_estimate_matches_the_simulators_multipath():
    """An independent reference, the simulator's own one-bounce sum (`render_tof`): fed a
    noise-free frame without multipath (the true geometry and albedos), the estimate's median
    over a scene matches the median multipath error the simulator adds, within 35 %, on
    scenes where that error exceeds 1 cm."""
    ratios = []
    for seed in range(780200, 780212):
        cfg = dataclasses.replace(sample_rig(np.random.default_rng(seed), TRAIN_RIGS,
                                             SimConfig()), wiggle_m=0.0)
        with_mp = _noise_free(seed, cfg)
        clean = _noise_free(seed, dataclasses.replace(cfg, multipath_gain=0.0))
        v = with_mp["valid"] & clean["valid"]
        true = float(np.median((with_mp["depth"] - clean["depth"])[v]))
        if true < 0.01:
            continue
        K = intrinsics(cfg.tof_width, cfg.tof_height, cfg.tof_focal_px)
        est = multipath_error(clean["depth"], v, clean["amplitude"], K, cfg.mod_freq_hz,
                              cfg.tof_power)
        ratios.append(float(np.median(est[v])) / true)
    assert len(ratios) >= 3
    assert all(0.65 < r < 1.35 for r in ratios), ratios


def test_prepare_frame_splats_by_surface_and_keeps_the_sensors_tof():
    fr, cal, args = _frame_args(780111)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        raw = prepare_frame(*args, DEIConfig())
        tol = prepare_frame(*args, DEIConfig(tof_surface_tol=0.1))
        both = prepare_frame(*args, DEIConfig(tof_mpi_gain=0.75, tof_surface_tol=0.1))
    from mobifuse.geometry import reproject_tof
    from mobifuse.pipeline import _work_K

    Kw = _work_K(cal.K_left, 2)
    expect = reproject_tof(fr["tof_depth"], fr["tof_valid"], cal.K_tof, Kw, cal.T_left_tof,
                           raw["tof"].shape, surface_tol=0.1)["depth"]
    np.testing.assert_array_equal(tol["tof_sparse"], expect)
    assert np.array_equal(raw["tof_sensor"], raw["tof"])
    for out in (tol, both):  # the sensor's own depth, as without the options
        np.testing.assert_array_equal(out["tof_sensor"], raw["tof"])


def test_experiments_that_score_on_the_sensors_frames_refuse_preprocessed_nets():
    from mobifuse.bench import require_sensor_inputs
    from mobifuse.config import BenchConfig
    from shared.config import load_config
    from shared.errors import ConfigError

    cfg = load_config("configs/mobifuse/bench.yaml", BenchConfig)
    with pytest.raises(ConfigError, match="rig_mpi_gain=0"):
        require_sensor_inputs(cfg, "probe")
    off = load_config("configs/mobifuse/bench.yaml", BenchConfig,
                      ["rig_mpi_gain=0", "rig_surface_tol=0"])
    require_sensor_inputs(off, "probe")
