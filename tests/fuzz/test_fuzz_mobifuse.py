"""Fuzz: mobifuse loaders (PFM, Middlebury scene, ToF + stereo capture folder) and `fuse()`.

A PFM header with a NaN/zero scale or non-positive dims, a negative disparity, a NaN amplitude,
a string baseline or images of two sizes are refused; declared sizes never allocate more than
the file holds.
"""

import json

import cv2
import numpy as np
import pytest
from fuzz_harness import (
    Target,
    assert_clean,
    assert_rejects,
    fuzz_settings,
    mutated_files_test,
)
from hypothesis import given
from hypothesis import strategies as st

from mobifuse.api import fuse
from mobifuse.config import SimConfig
from mobifuse.data import (
    load_capture,
    load_middlebury_scene,
    read_pfm,
    sim_calibration,
    write_pfm,
)
from mobifuse.simulator import simulate_scene
from shared.errors import DataError

SIM = SimConfig(width=96, height=64, focal_px=84.0, tof_width=48, tof_height=32,
                tof_focal_px=42.0)
_FRAME = {}


def frame():
    if not _FRAME:
        _FRAME.update(simulate_scene(11, SIM))
    return _FRAME


def _png(path, rgb):
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))


def _seed_pfm(d):
    write_pfm(d / "x.pfm", np.linspace(0.5, 2.0, 30, dtype=np.float32).reshape(5, 6))
    write_pfm(d / "c.pfm", np.ones((4, 3, 3), np.float32))


def _check_pfm(a, d):
    assert a.dtype == np.float32 and a.ndim in (2, 3) and min(a.shape) > 0
    assert a.ndim == 2 or a.shape[2] == 3


def _seed_middlebury(d):
    rng = np.random.default_rng(0)
    im = rng.integers(0, 255, (8, 12, 3), dtype=np.uint8)
    _png(d / "im0.png", im)
    _png(d / "im1.png", np.roll(im, 1, axis=1))
    write_pfm(d / "disp0.pfm", np.full((8, 12), 4.0, np.float32))
    (d / "calib.txt").write_text(
        "cam0=[100 0 6; 0 100 4; 0 0 1]\ncam1=[100 0 6; 0 100 4; 0 0 1]\ndoffs=0\n"
        "baseline=150.5\nwidth=12\nheight=8\nndisp=16\n")


def _check_middlebury(out, d):
    assert out["left"].shape == out["right"].shape and out["left"].dtype == np.uint8
    assert np.isfinite(out["baseline_m"]) and out["baseline_m"] > 0
    c = out["calib"]
    assert np.isfinite(c.doffs) and c.K_right.shape == (3, 3) and c.baseline_m > 0
    if "depth" in out:
        z = out["depth"]
        assert z.shape == out["left"].shape[:2]
        assert np.all(np.isnan(z) | (z > 0)), "negative or zero depth"
    if "tof_depth" in out:
        t = out["tof_depth"]
        assert t.ndim == 2 and np.all(np.isfinite(t) & (t >= 0))


def _seed_capture(d):
    raw = frame()
    _png(d / "left.png", raw["left"])
    _png(d / "right.png", raw["right"])
    write_pfm(d / "tof_depth.pfm", np.where(raw["tof_valid"], raw["tof_depth"], 0))
    write_pfm(d / "tof_amplitude.pfm", raw["tof_amplitude"])
    c = sim_calibration(SIM)
    (d / "calib.json").write_text(json.dumps(
        {"K_left": c.K_left.tolist(), "K_tof": c.K_tof.tolist(),
         "T_left_tof": c.T_left_tof.tolist(), "baseline_m": c.baseline_m,
         "mod_freq_hz": c.mod_freq_hz}))


def _check_capture(out, d):
    assert out["left"].shape == out["right"].shape and out["left"].ndim == 3
    assert out["tof_depth"].ndim == 2
    c = out["calib"]
    assert c.baseline_m > 0 and np.isfinite(c.baseline_m) and c.mod_freq_hz > 0
    assert np.isfinite(c.doffs) and np.isfinite(c.K_right).all()
    for k in ("K_left", "K_tof", "T_left_tof"):
        assert np.isfinite(getattr(c, k)).all()
    if "tof_amplitude" in out:
        assert out["tof_amplitude"].shape == out["tof_depth"].shape


TARGETS = [
    Target("pfm", _seed_pfm, lambda d: (read_pfm(d / "x.pfm"), read_pfm(d / "c.pfm"))[0],
           _check_pfm, ("x.pfm", "c.pfm")),
    Target("middlebury", _seed_middlebury, load_middlebury_scene, _check_middlebury,
           ("calib.txt", "disp0.pfm", "im0.png", "im1.png")),
    Target("capture", _seed_capture, load_capture, _check_capture,
           ("calib.json", "tof_depth.pfm", "tof_amplitude.pfm", "left.png", "right.png")),
]
BY_NAME = {t.name: t for t in TARGETS}


test_mutated_files = mutated_files_test(TARGETS, 300, files=8)


# --- structured: PFM headers and calib.json values

HEADER_NUMBERS = st.sampled_from(["6", "5", "0", "-5", "99999999", "2147483648", "1e3", "x",
                                  "nan", "-1.0", "1.0", "0.0", "inf", "-0", "7 8"])


@fuzz_settings(300)
@given(kind=st.sampled_from(["Pf", "PF", "P6", "pf"]), w=HEADER_NUMBERS, h=HEADER_NUMBERS,
       scale=HEADER_NUMBERS)
def test_structured_pfm_header(tmp_path_factory, kind, w, h, scale):
    t = BY_NAME["pfm"]
    d = t.fresh(tmp_path_factory.getbasetemp())
    body = np.ones(30, "<f4").tobytes()
    (d / "x.pfm").write_bytes(f"{kind}\n{w} {h}\n{scale}\n".encode() + body)
    assert_clean(t, d)


CALIB_VALUES = st.sampled_from([0.015, "0.015", -0.01, 0.0, float("nan"), float("inf"), None,
                                [1, 2], [2, 1], [0.3, 8.0], [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
                                True, 1e300,
                                [[0, 0, 0], [0, 0, 0], [0, 0, 1]], {"a": 1}])


@fuzz_settings(300)
@given(edits=st.dictionaries(st.sampled_from(["K_left", "K_tof", "T_left_tof", "baseline_m",
                                              "mod_freq_hz", "tof_read_noise", "extra",
                                              "K_right", "doffs", "depth_range"]),
                             CALIB_VALUES, min_size=1, max_size=3))
def test_structured_calib_json(tmp_path_factory, edits):
    t = BY_NAME["capture"]
    d = t.fresh(tmp_path_factory.getbasetemp())
    c = json.loads((d / "calib.json").read_text())
    c.update(edits)
    (d / "calib.json").write_text(json.dumps(c))
    assert_clean(t, d)


# --- fuse() on arrays

@fuzz_settings(75)
@given(size=st.sampled_from([(64, 96), (2, 2), (8, 40), (64, 94), (63, 95), (7, 33)]),
       downsample=st.sampled_from([2, 1, 0, -2, 3, 2.0]),
       baseline=st.sampled_from([0.015, float("nan"), -0.01, "0.015", float("inf"), "abc",
                                 None, [0.01]]),
       amplitude=st.sampled_from(["ok", None, "nan", "negative", "shape"]),
       mod_freq=st.sampled_from([30e6, 0.0, float("nan")]),
       dtype=st.sampled_from(["uint8", "float32"]))
def test_structured_fuse(size, downsample, baseline, amplitude, mod_freq, dtype):
    raw = frame()
    c = sim_calibration(SIM)
    h, w = size
    amp = {"ok": raw["tof_amplitude"], None: None,
           "nan": np.full_like(raw["tof_amplitude"], np.nan),
           "negative": -raw["tof_amplitude"], "shape": raw["tof_amplitude"][:5]}[amplitude]
    tof = np.where(raw["tof_valid"], raw["tof_depth"], np.nan)

    def call(d):
        calib = {"K_left": c.K_left, "K_tof": c.K_tof, "T_left_tof": c.T_left_tof,
                 "baseline_m": baseline, "mod_freq_hz": mod_freq}
        return fuse(raw["left"][:h, :w].astype(dtype), raw["right"][:h, :w].astype(dtype), tof,
                    calib, model="inverse_variance", tof_amplitude=amp, downsample=downsample)

    def check(out, d):
        assert np.isfinite(out["depth"]).all() and (out["depth"] > 0).all()
        assert out["depth"].shape == (-(-h // downsample), -(-w // downsample))
        assert out["depth_full"].shape == (h, w)

    t = Target("fuse", lambda d: None, call, check,
               names=lambda d: ["tof", "baseline", "downsample", "image", "mod_freq",
                                "left", "ToF"])
    assert_clean(t)


# --- regressions


@pytest.mark.parametrize("header, words", [
    (b"Pf\n6 5\nnan\n", "scale"), (b"Pf\n6 5\n0\n", "scale"), (b"Pf\n-6 5\n-1\n", "positive"),
    (b"Pf\n0 5\n-1\n", "positive"), (b"Pf\n99999 99999\n-1\n", "truncated"),
])
def test_pfm_headers(tmp_path, header, words):
    t = BY_NAME["pfm"]
    d = t.fresh(tmp_path)
    (d / "x.pfm").write_bytes(header + np.ones(30, "<f4").tobytes())
    assert_rejects(t, d, words)


def test_middlebury_negative_disparity_and_bad_calib(tmp_path):
    t = BY_NAME["middlebury"]
    d = t.fresh(tmp_path)
    write_pfm(d / "disp0.pfm", np.full((8, 12), -3.0, np.float32))
    assert_rejects(t, d, "negative")
    d = t.fresh(tmp_path)
    (d / "calib.txt").write_bytes((d / "calib.txt").read_bytes().replace(b"150.5", b"nan"))
    assert_rejects(t, d, "'baseline'")
    d = t.fresh(tmp_path)
    (d / "calib.txt").write_bytes(b"cam0=[1 0 0; 0 1 0; 0 0 1]\n\xff\n")
    assert_rejects(t, d, "calib.txt:2", "not UTF-8")
    d = t.fresh(tmp_path)
    _png(d / "im1.png", np.zeros((8, 10, 3), np.uint8))
    assert_rejects(t, d, "differ in size")


def test_capture_bad_values(tmp_path):
    t = BY_NAME["capture"]
    for edit, words in (({"baseline_m": "0.015"}, "'baseline_m' must be a number"),
                        ({"baseline_m": float("nan")}, "finite"),
                        ({"baseline_m": -0.01}, "positive")):
        d = t.fresh(tmp_path)
        c = json.loads((d / "calib.json").read_text())
        c.update(edit)
        (d / "calib.json").write_text(json.dumps(c))
        assert_rejects(t, d, "calib.json", words)
    d = t.fresh(tmp_path)
    write_pfm(d / "tof_depth.pfm", np.ones((32, 48, 3), np.float32))
    assert_rejects(t, d, "one-channel")
    d = t.fresh(tmp_path)
    (d / "calib.json").write_bytes(b'{"baseline_m": "\xff"}')
    assert_rejects(t, d, "calib.json:1", "not UTF-8")


def test_fuse_bad_arguments():
    raw = frame()
    c = sim_calibration(SIM)
    tof = np.where(raw["tof_valid"], raw["tof_depth"], np.nan)
    iv = "inverse_variance"
    with pytest.raises(DataError, match="downsample"):
        fuse(raw["left"], raw["right"], tof, c, model=iv, downsample=0)
    with pytest.raises(DataError, match="too small"):
        fuse(raw["left"][:2, :2], raw["right"][:2, :2], tof, c, model=iv)
    with pytest.raises(DataError, match="tof_amplitude"):
        fuse(raw["left"], raw["right"], tof, c, model=iv,
             tof_amplitude=np.full_like(raw["tof_amplitude"], np.nan))
