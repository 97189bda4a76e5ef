"""The renderer against analytic geometry, and the ToF artefacts where physics puts them."""

import dataclasses

import numpy as np
import pytest

from mobifuse.config import SimConfig
from mobifuse.simulator import (
    Scene,
    Surface,
    intrinsics,
    render_ground_truth,
    render_tof,
    rot_x,
    sample_scene,
    simulate_scene,
    unambiguous_range,
)

CFG = SimConfig(width=64, height=48, focal_px=56.0, tof_width=32, tof_height=24,
                tof_focal_px=28.0, tof_offset_m=(0.0, 0.0, 0.0), tof_yaw_deg=0.0)


def _plane_scene(n, c, cam_rot=None, ir=0.5):
    s = Surface("plane", {"n": np.asarray(n, float), "c": float(c)}, color=np.full(3, 0.5),
                texture=0.0, tex_freq=10.0, tex_seed=1, ir_albedo=ir, room=True)
    return Scene([s], np.eye(3) if cam_rot is None else cam_rot, np.zeros(3), lux=100.0,
                 ambient=0.0, light_dir=np.array([0.0, -1.0, 0.0]))


def _clean(cfg=CFG, **kw):
    return dataclasses.replace(cfg, wiggle_m=0.0, multipath_gain=0.0, **kw)


def test_depth_equals_analytic_depth_on_frontal_plane():
    gt = render_ground_truth(_plane_scene([0, 0, -1], -2.5), CFG)
    np.testing.assert_allclose(gt["depth"], 2.5, rtol=0, atol=1e-9)


def test_depth_equals_analytic_depth_on_tilted_plane():
    # floor y = 1 seen by a camera pitched down 20 deg: intersect each pixel's ray analytically
    pitch = rot_x(-20)
    gt = render_ground_truth(_plane_scene([0, -1, 0], -1.0, cam_rot=pitch), CFG)
    h, w = gt["depth"].shape
    K = intrinsics(CFG.width, CFG.height, CFG.focal_px) / CFG.work_downsample
    v, u = np.mgrid[0:h, 0:w]
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones((h, w))], -1)
    world_y = rays @ pitch.T
    t = 1.0 / world_y[..., 1]
    expected = np.where(t > 0, t, np.inf)
    hit = np.isfinite(expected)
    assert hit.sum() > 0.3 * h * w
    np.testing.assert_allclose(gt["depth"][hit], expected[hit], rtol=1e-6)  # float32


def test_phase_wraps_at_unambiguous_range():
    cfg = dataclasses.replace(_clean(), tof_power=1e7, dropout_amplitude=0.0, min_snr=0.0)
    r_u = unambiguous_range(cfg.mod_freq_hz)
    i, j = cfg.tof_height // 2, cfg.tof_width // 2
    K = intrinsics(cfg.tof_width, cfg.tof_height, cfg.tof_focal_px)
    norm = np.linalg.norm([(j - K[0, 2]) / K[0, 0], (i - K[1, 2]) / K[1, 1], 1.0])
    for dist in (r_u - 0.6, r_u + 0.6, 2 * r_u + 0.3):
        scene = _plane_scene([0, 0, -1], -dist, ir=0.9)
        tof = render_tof(scene, cfg, np.random.default_rng(0), noise=False)
        expected = np.mod(dist * norm, r_u) / norm  # the range wraps, then back to z
        assert tof["depth"][i, j] == pytest.approx(expected, abs=1e-3)


def test_flying_pixels_only_at_depth_edges():
    cfg = _clean(SimConfig(), room_depth=(2.5, 3.0), object_depth=(0.8, 2.0),
                 n_objects=(4, 6))
    tof = render_tof(sample_scene(np.random.default_rng(3), cfg), cfg,
                     np.random.default_rng(0), noise=False)
    v = tof["valid"]
    err = np.abs(tof["depth"] - tof["true_depth"])[v]
    spread = tof["subray_spread"][v]
    assert (err > 0.05).sum() > 5  # edges produce flying pixels ...
    assert np.all(spread[err > 0.05] > 0.05)  # ... only where sub-rays straddle a depth jump
    assert np.all(err <= spread + 2e-3)  # a mixed phasor lies between its sub-ray ranges


def test_multipath_biases_concave_corners_upwards():
    cfg = SimConfig()
    scene = sample_scene(np.random.default_rng(5), cfg)
    a = render_tof(scene, _clean(cfg), np.random.default_rng(0), noise=False)
    b = render_tof(scene, dataclasses.replace(_clean(cfg), multipath_gain=1.0),
                   np.random.default_rng(0), noise=False)
    v = a["valid"] & b["valid"]
    bias = (b["depth"] - a["depth"])[v]
    assert np.median(bias) > 0  # the indirect path is always longer
    assert np.percentile(bias, 99) > 0.01


def test_simulate_scene_is_seeded_and_shaped():
    a, b = simulate_scene(7, CFG), simulate_scene(7, CFG)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert a["left"].shape == (48, 64, 3) and a["left"].dtype == np.uint8
    assert a["tof_depth"].shape == (24, 32)
    assert a["depth"].shape == (24, 32)
    for m in ("textureless", "dark_ir", "edges", "concave", "high_ambient"):
        assert a[f"mask_{m}"].dtype == bool
    c = simulate_scene(8, CFG)
    assert not np.array_equal(a["depth"], c["depth"])


def test_ir_albedo_independent_of_colour_and_overrides():
    cfg = SimConfig()
    scene = sample_scene(np.random.default_rng(1), cfg, {"ir_albedo": 0.2, "texture": 0.0})
    assert all(s.ir_albedo == 0.2 and s.texture == 0.0 for s in scene.surfaces)
    scenes = [sample_scene(np.random.default_rng(i), cfg) for i in range(20)]
    ir = np.array([s.ir_albedo for sc in scenes for s in sc.surfaces])
    col = np.array([s.color.mean() for sc in scenes for s in sc.surfaces])
    assert ir.min() >= 0.05 and ir.max() <= 0.9
    assert abs(np.corrcoef(ir, col)[0, 1]) < 0.3


def test_sample_rig_stays_in_its_family_ranges():
    from mobifuse.config import RigFamily
    from mobifuse.simulator import sample_rig

    fam = RigFamily()
    rigs = [sample_rig(np.random.default_rng(i), fam, SimConfig()) for i in range(200)]
    for r in rigs:
        assert fam.baseline_m[0] <= r.baseline_m <= fam.baseline_m[1]
        assert fam.focal_px[0] <= r.focal_px <= fam.focal_px[1]
        assert fam.width[0] <= r.width <= fam.width[1] + 1 and r.height == round(r.width * .75)
        assert fam.doffs_px[0] <= r.doffs_px <= fam.doffs_px[1]
        assert 1.99 <= r.width / r.tof_width <= 8.5 and r.tof_focal_px < r.focal_px
    assert any(r.width % 2 for r in rigs) and any(r.baseline_m > 0.1 for r in rigs)


def test_right_view_follows_doffs_closed_form():
    """A frontal textured wall at Z: the right image is the left shifted by f B / Z - doffs."""
    from mobifuse.simulator import Scene, Surface, render_rgb_pair

    cfg = SimConfig(width=121, height=40, focal_px=200.0, baseline_m=0.1, doffs_px=7.0)
    wall = Surface("plane", {"n": np.array([0.0, 0.0, -1.0]), "c": -2.0}, np.full(3, 0.5),
                   texture=0.6, tex_freq=40.0, tex_seed=3, ir_albedo=0.5)
    scene = Scene([wall], np.eye(3), np.zeros(3), 400.0, 0.0, np.array([0.0, 0.0, -1.0]))
    left, right = render_rgb_pair(scene, cfg, np.random.default_rng(0), noise=False)
    d = int(200.0 * 0.1 / 2.0 - 7.0)  # = 3 px: right(x) = left(x + 3)
    same = {k: np.mean(right[:, 10:100] == left[:, 10 + k:100 + k]) for k in range(0, 12)}
    assert same[d] > 0.95  # equal up to texture cells split by rounding
    assert max(v for k, v in same.items() if k != d) < 0.5
