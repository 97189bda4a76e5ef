"""Loaders for real formats (PFM, Middlebury calib/scene, ToF+stereo capture folders) on small
files the tests write, and the cached simulated dataset."""

import json

import cv2
import numpy as np
import pytest

from mobifuse.config import DEIConfig, SimConfig, StereoConfig
from mobifuse.data import (
    build_dataset,
    load_capture,
    load_middlebury_scene,
    read_middlebury_calib,
    read_pfm,
    write_pfm,
)
from mobifuse.dei import DEI_CHANNELS
from shared.errors import DataError


def test_pfm_roundtrip_one_and_three_channels(tmp_path):
    rng = np.random.default_rng(0)
    for arr in (rng.normal(size=(5, 7)).astype(np.float32),
                rng.normal(size=(4, 6, 3)).astype(np.float32)):
        write_pfm(tmp_path / "x.pfm", arr)
        np.testing.assert_array_equal(read_pfm(tmp_path / "x.pfm"), arr)


def test_pfm_big_endian_bottom_to_top(tmp_path):
    # hand-written file: rows bottom-to-top, positive scale = big-endian
    top_first = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
    body = np.flipud(top_first).astype(">f4").tobytes()
    (tmp_path / "be.pfm").write_bytes(b"Pf\n3 2\n1.0\n" + body)
    np.testing.assert_array_equal(read_pfm(tmp_path / "be.pfm"), top_first)


def test_pfm_corrupt_and_missing(tmp_path):
    write_pfm(tmp_path / "x.pfm", np.ones((8, 8), np.float32))
    data = (tmp_path / "x.pfm").read_bytes()
    (tmp_path / "t.pfm").write_bytes(data[:-10])
    with pytest.raises(DataError, match="truncated"):
        read_pfm(tmp_path / "t.pfm")
    (tmp_path / "m.pfm").write_bytes(b"P6\n8 8\n255\n" + bytes(64))
    with pytest.raises(DataError, match="not a PFM"):
        read_pfm(tmp_path / "m.pfm")
    with pytest.raises(DataError, match="not found"):
        read_pfm(tmp_path / "nope.pfm")


CALIB = """cam0=[1000.5 0 320.1; 0 1000.5 240.2; 0 0 1]
cam1=[1000.5 0 330.1; 0 1000.5 240.2; 0 0 1]
doffs=10.0
baseline=150.0
width=8
height=6
ndisp=64
vmin=10
vmax=60
"""


def test_middlebury_calib_and_scene(tmp_path):
    (tmp_path / "calib.txt").write_text(CALIB)
    c = read_middlebury_calib(tmp_path / "calib.txt")
    assert c["cam0"].shape == (3, 3) and c["cam0"][0, 0] == 1000.5 and c["baseline"] == 150.0
    img = np.zeros((6, 8, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "im0.png"), img)
    cv2.imwrite(str(tmp_path / "im1.png"), img)
    disp = np.full((6, 8), 40.0, np.float32)
    disp[0, 0] = np.inf  # Middlebury: unknown disparity
    write_pfm(tmp_path / "disp0.pfm", disp)
    s = load_middlebury_scene(tmp_path)
    assert s["depth"][1, 1] == pytest.approx(150.0 * 1000.5 / (40 + 10) / 1000)
    assert np.isnan(s["depth"][0, 0])
    assert s["baseline_m"] == pytest.approx(0.15)


def test_middlebury_missing_key_and_file(tmp_path):
    (tmp_path / "calib.txt").write_text(CALIB.replace("baseline=150.0\n", ""))
    with pytest.raises(DataError, match="baseline"):
        read_middlebury_calib(tmp_path / "calib.txt")
    with pytest.raises(DataError, match="not found"):
        load_middlebury_scene(tmp_path / "nowhere")


def _capture(tmp_path, calib=None):
    img = np.random.default_rng(0).integers(0, 255, (48, 64, 3)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "left.png"), img)
    cv2.imwrite(str(tmp_path / "right.png"), img)
    cv2.imwrite(str(tmp_path / "tof_depth.png"), np.full((12, 16), 1500, np.uint16))
    c = calib if calib is not None else {
        "K_left": np.eye(3).tolist(), "K_tof": np.eye(3).tolist(),
        "T_left_tof": np.eye(4).tolist(), "baseline_m": 0.015}
    (tmp_path / "calib.json").write_text(json.dumps(c))
    return tmp_path


def test_capture_folder_loads(tmp_path):
    cap = load_capture(_capture(tmp_path))
    assert cap["left"].shape == (48, 64, 3)
    np.testing.assert_allclose(cap["tof_depth"], 1.5)
    assert cap["calib"].T_left_tof.shape == (4, 4)


def test_capture_folder_bad_inputs(tmp_path):
    _capture(tmp_path)
    (tmp_path / "calib.json").unlink()
    with pytest.raises(DataError, match="calib.json"):
        load_capture(tmp_path)
    _capture(tmp_path, {"K_left": np.eye(3).tolist()})
    with pytest.raises(DataError, match="missing key 'K_tof'"):
        load_capture(tmp_path)
    _capture(tmp_path, {"K_left": np.eye(3).tolist(), "K_tof": np.eye(2).tolist(),
                        "T_left_tof": np.eye(4).tolist(), "baseline_m": 0.01})
    with pytest.raises(DataError, match="K_tof"):
        load_capture(tmp_path)
    (tmp_path / "calib.json").write_text("{not json")
    with pytest.raises(DataError, match="corrupt"):
        load_capture(tmp_path)
    _capture(tmp_path)
    (tmp_path / "tof_depth.png").unlink()
    with pytest.raises(DataError, match="ToF depth"):
        load_capture(tmp_path)


SMALL = SimConfig(width=96, height=64, focal_px=84.0, tof_width=48, tof_height=32,
                  tof_focal_px=42.0)


def test_build_dataset_shapes_and_cache():
    d = build_dataset([1, 2], SMALL, StereoConfig(num_disparities=16), DEIConfig())
    assert d["geom"].shape == (2, 4, 32, 48)
    assert d["err"].shape == (2, 1 + len(DEI_CHANNELS), 32, 48)
    assert d["gt"].shape == (2, 32, 48) and np.all(np.isfinite(d["err"]))
    assert np.all(d["sigma_tof"] > 0) and np.all(d["sigma_st"] > 0)
    again = build_dataset([1, 2], SMALL, StereoConfig(num_disparities=16), DEIConfig())
    np.testing.assert_array_equal(again["geom"], d["geom"])


def test_dei_key_keeps_older_cache_keys_and_tells_the_local_quantile_dei_apart():
    import dataclasses

    from mobifuse.config import DEIConfig
    from mobifuse.data import dei_key

    d = DEIConfig(st_depth_ref="own", st_scale=1.0881, st_hole_scale=1.0)
    assert not {"st_depth_ref", "st_ref_quantile", "st_ref_window", "st_hole_scale"} & set(
        dei_key(d))
    assert dei_key(dataclasses.replace(d, st_scale=0.2)) == dei_key(d)
    lq = dataclasses.replace(d, st_depth_ref="local_quantile")
    assert dei_key(lq)["st_depth_ref"] == "local_quantile" and dei_key(lq) != dei_key(d)
    assert dei_key(dataclasses.replace(d, st_hole_scale=4.4)) != dei_key(d)
