"""`fuse` on arrays: a simulated frame end to end, any image size, the calibration object,
a Middlebury-layout folder of a closed-form scene, and clear errors on bad input."""

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from mobifuse.api import fuse
from mobifuse.calibration import Calibration, as_calibration
from mobifuse.config import NetConfig, SimConfig
from mobifuse.data import load_middlebury_scene, sim_calibration, write_pfm
from mobifuse.models import TwoStageFusionNet
from mobifuse.simulator import simulate_scene
from shared.errors import DataError

SMALL = SimConfig(width=128, height=96, focal_px=112.0, tof_width=64, tof_height=48,
                  tof_focal_px=56.0)


@pytest.fixture(scope="module")
def frame():
    raw = simulate_scene(3, SMALL)
    c = sim_calibration(SMALL)
    tof = np.where(raw["tof_valid"], raw["tof_depth"], np.nan)
    return raw, c, tof


def test_fuse_simulated_frame(frame):
    raw, c, tof = frame
    out = fuse(raw["left"], raw["right"], tof, c, model="inverse_variance",
               tof_amplitude=raw["tof_amplitude"])
    assert out["depth"].shape == raw["depth"].shape
    assert out["depth_full"].shape == raw["left"].shape[:2]
    assert np.all(np.isfinite(out["depth"]))
    err = np.abs(out["depth"] - raw["depth"])
    assert np.median(err) < 0.1  # DEI fusion is close to the truth on most pixels
    torch.manual_seed(0)
    net = TwoStageFusionNet(NetConfig(widths=(4, 8, 8)))
    out = fuse(raw["left"], raw["right"], tof, c.to_json(), model=net)  # a dict works too
    assert out["depth"].shape == raw["depth"].shape
    off = fuse(raw["left"], raw["right"], tof, c, model=net, offset_gate=0)["depth"]
    always = fuse(raw["left"], raw["right"], tof, c, model=net, offset_gate=1e6)["depth"]
    assert not np.array_equal(off, always)  # the gate reaches the stereo-offset step
    out = fuse(raw["left"], raw["right"], tof, c)  # the shipped default model
    assert np.median(np.abs(out["depth"] - raw["depth"])) < 0.1


def test_depth_full_restores_the_callers_grid():
    from mobifuse.api import to_full

    work = np.arange(12, dtype=np.float32).reshape(3, 4)
    full = to_full(work, (5, 7), 2)
    assert full.shape == (5, 7)
    np.testing.assert_allclose(full[::2, ::2], work)  # image pixel 2i <-> work pixel i
    assert full[0, 1] == pytest.approx((work[0, 0] + work[0, 1]) / 2)


@pytest.mark.parametrize("shape,s,work_shape", [((480, 640), 2, None), ((7, 11), 3, None),
                                                ((9, 5), 4, None), ((6, 6), 2, None),
                                                ((9, 13), 4, (2, 3))])
def test_depth_full_equals_scipy_bilinear(shape, s, work_shape):
    """The separable upsampling is scipy's order-1 map_coordinates at (v / s, u / s) with edges
    held, on maps with and without a partial last cell, and on a map smaller than ceil(H / s)
    (coordinates past its last pixel: the edge is held)."""
    from scipy import ndimage

    from mobifuse.api import to_full

    h, w = work_shape or (-(-shape[0] // s), -(-shape[1] // s))
    work = np.random.default_rng(s).uniform(0.3, 8.0, (h, w)).astype(np.float32)
    v, u = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64) / s
    ref = ndimage.map_coordinates(work.astype(np.float64), [v, u], order=1, mode="nearest")
    np.testing.assert_allclose(to_full(work, shape, s), ref.astype(np.float32), rtol=1e-6)


def test_calibration_doffs_from_k_right_and_refusals():
    K = np.array([[500.0, 0, 100], [0, 500, 80], [0, 0, 1]])
    Kr = K.copy()
    Kr[0, 2] += 37.5
    c = as_calibration({"K_left": K, "K_right": Kr, "K_tof": K, "T_left_tof": np.eye(4),
                        "baseline_m": 0.2})
    assert c.doffs == pytest.approx(37.5)
    d = np.array([10.0, -37.5, np.nan])
    z = c.depth_from_disparity(d)
    assert z[0] == pytest.approx(500 * 0.2 / (10 + 37.5)) and np.isnan(z[1]) and np.isnan(z[2])
    assert c.disparity_from_depth(z[0]) == pytest.approx(10.0)
    with pytest.raises(DataError, match="doffs"):
        as_calibration(Calibration(K, K, np.eye(4), 0.2, K_right=Kr, doffs=5.0))
    Kr2 = Kr.copy()
    Kr2[1, 2] += 3
    with pytest.raises(DataError, match="rectified"):
        as_calibration(Calibration(K, K, np.eye(4), 0.2, K_right=Kr2))
    with pytest.raises(DataError, match="depth_range"):
        as_calibration(Calibration(K, K, np.eye(4), 0.2, depth_range=(3.0, 1.0)))
    with pytest.raises(DataError, match="unknown key 'focal'"):
        as_calibration({"K_left": K, "K_tof": K, "T_left_tof": np.eye(4), "baseline_m": 1,
                        "focal": 3})


def _closed_form_middlebury(folder, W=161, H=64, f=300.0, B_mm=120.0, cx0=75.3, doffs=8.0):
    """A fronto-parallel textured plane at Z = 1.5 m (left half) in front of a wall at Z = 3 m:
    the right image is the left shifted by the closed-form disparity f B / Z - doffs."""
    rng = np.random.default_rng(0)
    B = B_mm / 1000
    Z = np.where(np.arange(W)[None, :] < W // 2, 1.5, 3.0) * np.ones((H, 1))
    disp = f * B / Z - doffs  # Middlebury's disparity (px): x_left - x_right
    # texture on a wide canvas; left pixel x sees canvas x, right pixel x sees x + d (same point)
    tex = cv2.resize(rng.integers(0, 255, (H, W // 2 + 40)).astype(np.uint8), (W + 80, H),
                     interpolation=cv2.INTER_NEAREST)
    xs = np.arange(W)[None, :].repeat(H, 0)
    left = tex[:, 20:20 + W]
    # right(x_r) = left(x_r + d): d = 16 px (near plane) and 4 px (wall), integer shifts
    right = tex[np.arange(H)[:, None], np.clip(np.round(xs + disp + 20).astype(int), 0, W + 79)]
    for name, im in (("im0", left), ("im1", right)):
        cv2.imwrite(str(folder / f"{name}.png"), np.repeat(im[:, :, None], 3, 2))
    write_pfm(folder / "disp0.pfm", disp.astype(np.float32))
    (folder / "calib.txt").write_text(
        f"cam0=[{f} 0 {cx0}; 0 {f} 31.5; 0 0 1]\ncam1=[{f} 0 {cx0 + doffs}; 0 {f} 31.5; 0 0 1]\n"
        f"doffs={doffs}\nbaseline={B_mm}\nwidth={W}\nheight={H}\nndisp=64\n")
    return Z, disp


def test_middlebury_folder_with_doffs_and_odd_width_runs_through_fuse(tmp_path):
    Z, disp = _closed_form_middlebury(tmp_path)
    s = load_middlebury_scene(tmp_path)
    c = s["calib"]
    assert c.doffs == pytest.approx(8.0) and c.baseline_m == pytest.approx(0.12)
    np.testing.assert_allclose(s["depth"], 300.0 * 0.12 / (disp + 8.0), rtol=1e-5)
    np.testing.assert_allclose(s["depth"], Z, rtol=1e-5)  # = f B / (d + doffs), not f B / d
    assert s["tof_depth"].shape == (32, 81)  # simulated ToF at half resolution
    for model in ("inverse_variance", "default"):
        out = fuse(s["left"], s["right"], s["tof_depth"], c, model=model)
        assert out["depth"].shape == (32, 81) and out["depth_full"].shape == (64, 161)
        gt = s["depth"][::2, ::2]
        inner = (slice(4, -4), slice(20, -4))
        st = out["stereo"][inner]
        # SGBM with doffs: Z = f B / (d + doffs) recovered on the textured planes
        assert np.median(np.abs(st - gt[inner]) / gt[inner]) < 0.02
        assert np.median(np.abs(out["depth"] - gt)[inner]) < 0.05


def test_stereo_search_clipped_warns(frame):
    raw, c, tof = frame
    cal = as_calibration(c)
    cal.depth_range = (0.05, 5.0)  # 0.05 m needs ~34 px more than the 16-px cap below
    from mobifuse.config import StereoConfig

    with pytest.warns(UserWarning, match="stereo search clipped"):
        out = fuse(raw["left"], raw["right"], tof, cal, model="inverse_variance",
                   stereo=StereoConfig(max_disparities=16))
    assert out["search"]["clipped"] and "clipped" in out["warnings"][0]


def test_fuse_bad_inputs(frame):
    raw, c, tof = frame
    cj = c.to_json()
    with pytest.raises(DataError, match="shape"):
        fuse(raw["left"], raw["right"][:, :-8], tof, c)
    with pytest.raises(DataError, match="missing key 'K_tof'"):
        fuse(raw["left"], raw["right"], tof, {k: v for k, v in cj.items() if k != "K_tof"})
    with pytest.raises(DataError, match="Calibration"):
        fuse(raw["left"], raw["right"], tof, None)
    with pytest.raises(DataError, match="T_left_tof"):
        fuse(raw["left"], raw["right"], tof, dict(cj, T_left_tof=np.eye(3)))
    with pytest.raises(DataError, match="inf"):
        fuse(raw["left"], raw["right"], np.where(np.isnan(tof), np.inf, tof), c)
    with pytest.raises(DataError, match="no valid pixel"):
        fuse(raw["left"], raw["right"], np.full_like(tof, np.nan), c)
    with pytest.raises(DataError, match="tof_amplitude"):
        fuse(raw["left"], raw["right"], tof, c, tof_amplitude=np.ones((3, 3)))
    with pytest.raises(DataError, match="NaN"):
        fuse(raw["left"], raw["right"], tof, dict(cj, K_left=np.full((3, 3), np.nan)))
    with pytest.raises(DataError, match="not found"):
        fuse(raw["left"], raw["right"], tof, c, model="/nonexistent/model.pt")
    with pytest.raises(DataError, match="model must be"):
        fuse(raw["left"], raw["right"], tof, c, model=3)
    nan_left = raw["left"].astype(np.float32)
    nan_left[0, 0, 0] = np.nan
    with pytest.raises(DataError, match="'left' contains NaN"):
        fuse(nan_left, raw["right"], tof, c)


def test_a_ray_net_gets_the_rays_of_its_calibration_and_training_frames_theirs(frame,
                                                                               monkeypatch):
    """`fuse()` appends the work grid's ray maps of a ray net's camera, principal point at the
    image centre as in training (work pixel j = image pixel 2 j: f / 2, (W - 1) / 4, f_y for
    v), and for a net with FOV maps too W / (2 f_x), H / (2 f_y) of the full image (f_y made
    to differ); `frame_tensors` appends a training frame's from its rig, odd and non-4:3 sizes
    included; the bench's shipped cross-rig net (camera maps and ToF preprocessing on) is found
    by its cache key, and with the options off the keys are RAYFOV's and S16's from before
    they existed."""
    from pathlib import Path

    import mobifuse.api as api
    from mobifuse.bench import WEIGHTS_DIR, net_key, rig_train_config
    from mobifuse.config import BenchConfig
    from mobifuse.models import N_ERR, ray_maps
    from mobifuse.train import frame_tensors
    from shared.cache import cache_key
    from shared.cli import parse_args

    raw, c, tof = frame
    seen = {}
    real = api.run_net

    def spy(model, geom, err, jit=False):
        seen["err"] = err
        return real(model, geom, err, jit)

    monkeypatch.setattr(api, "run_net", spy)
    torch.manual_seed(0)
    net = TwoStageFusionNet(NetConfig(widths=(4, 8, 8), ray_channels=True))
    out = fuse(raw["left"], raw["right"], tof, c, model=net, jit=False)
    (H, W), (h, w) = raw["left"].shape[:2], out["depth"].shape
    fx, fy = c.K_left[0, 0], c.K_left[1, 1]
    np.testing.assert_allclose(seen["err"][N_ERR:],
                               ray_maps(h, w, fx / 2, (W - 1) / 4, (H - 1) / 4, fy / 2))
    both = TwoStageFusionNet(NetConfig(widths=(4, 8, 8), ray_channels=True, fov_channels=True))
    K = c.K_left.copy()
    K[1, 1] *= 1.25
    c = dataclasses.replace(c, K_left=K, K_right=K.copy())  # a rectified pair shares K
    fx, fy = K[0, 0], K[1, 1]
    fuse(raw["left"], raw["right"], tof, c, model=both, jit=False)
    assert seen["err"].shape[0] == N_ERR + 4
    np.testing.assert_allclose(seen["err"][N_ERR:N_ERR + 2],
                               ray_maps(h, w, fx / 2, (W - 1) / 4, (H - 1) / 4, fy / 2))
    np.testing.assert_allclose(seen["err"][N_ERR + 2], W / (2 * fx), rtol=1e-6)  # full size
    np.testing.assert_allclose(seen["err"][N_ERR + 3], H / (2 * fy), rtol=1e-6)

    def frame_with(rig_w, rig_h, h, w):
        return {"geom": np.zeros((4, h, w), np.float32), "gt": np.ones((h, w), np.float32),
                "err": np.zeros((N_ERR, h, w), np.float32),
                "rig": [0.05, 400.0, rig_w, rig_h, 0, 2, 2e7, 1.0]}

    for (rw, rh, h, w), (cx, cy) in (((16, 12, 6, 8), (3.75, 2.75)),
                                     ((17, 9, 5, 9), (4.0, 2.0))):
        (_, e, _), = frame_tensors([frame_with(rw, rh, h, w)], NetConfig(ray_channels=True))
        np.testing.assert_allclose(e[N_ERR:].numpy(), ray_maps(h, w, 200.0, cx, cy))
    (_, e, _), = frame_tensors([frame_with(16, 12, 6, 8)], NetConfig())
    assert e.shape[0] == N_ERR

    bench_yaml = Path(__file__).resolve().parents[2] / "configs" / "mobifuse" / "bench.yaml"
    _, cfg = parse_args([], BenchConfig, prog="t", description="", default_config=str(bench_yaml))
    _, key = net_key(rig_train_config(cfg), True)
    assert (WEIGHTS_DIR / f"{cache_key('mobifuse-net', key, 1)}.safetensors").is_file()
    off = dataclasses.replace(cfg, rig_mpi_gain=0.0, rig_surface_tol=0.0)  # RAYFOV's key
    assert cache_key("mobifuse-net", net_key(rig_train_config(off), True)[1], 1) \
        == "mobifuse-net-eb5423685da3c171"
    off = dataclasses.replace(off, rig_camera_maps=False)  # S16's, from before the options
    assert cache_key("mobifuse-net", net_key(rig_train_config(off), True)[1], 1) \
        == "mobifuse-net-38dc784ec3d97dd2"
