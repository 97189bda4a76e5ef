"""`fuse` on arrays: a simulated frame end to end, and clear errors on bad input."""

import numpy as np
import pytest
import torch

from mobifuse.api import fuse
from mobifuse.config import NetConfig, SimConfig
from mobifuse.data import sim_calibration
from mobifuse.models import TwoStageFusionNet
from mobifuse.simulator import simulate_scene
from shared.errors import DataError

SMALL = SimConfig(width=128, height=96, focal_px=112.0, tof_width=64, tof_height=48,
                  tof_focal_px=56.0)


@pytest.fixture(scope="module")
def frame():
    raw = simulate_scene(3, SMALL)
    c = sim_calibration(SMALL)
    intr = {"left": c.K_left, "tof": c.K_tof, "baseline_m": c.baseline_m}
    tof = np.where(raw["tof_valid"], raw["tof_depth"], np.nan)
    return raw, intr, c.T_left_tof, tof


def test_fuse_simulated_frame(frame):
    raw, intr, T, tof = frame
    out = fuse(raw["left"], raw["right"], tof, intr, T, tof_amplitude=raw["tof_amplitude"])
    assert out["depth"].shape == raw["depth"].shape
    assert np.all(np.isfinite(out["depth"]))
    err = np.abs(out["depth"] - raw["depth"])
    assert np.median(err) < 0.1  # DEI fusion is close to the truth on most pixels
    torch.manual_seed(0)
    net = TwoStageFusionNet(NetConfig(widths=(4, 8, 8)))
    out = fuse(raw["left"], raw["right"], tof, intr, T, model=net)
    assert out["depth"].shape == raw["depth"].shape


def test_fuse_bad_inputs(frame):
    raw, intr, T, tof = frame
    with pytest.raises(DataError, match="shape"):
        fuse(raw["left"], raw["right"][:, :-8], tof, intr, T)
    with pytest.raises(DataError, match="missing key 'tof'"):
        fuse(raw["left"], raw["right"], tof, {"left": intr["left"], "baseline_m": 0.01}, T)
    with pytest.raises(DataError, match="extrinsics"):
        fuse(raw["left"], raw["right"], tof, intr, None)
    with pytest.raises(DataError, match="T_left_tof"):
        fuse(raw["left"], raw["right"], tof, intr, np.eye(3))
    with pytest.raises(DataError, match="inf"):
        fuse(raw["left"], raw["right"], np.where(np.isnan(tof), np.inf, tof), intr, T)
    with pytest.raises(DataError, match="no valid pixel"):
        fuse(raw["left"], raw["right"], np.full_like(tof, np.nan), intr, T)
    with pytest.raises(DataError, match="tof_amplitude"):
        fuse(raw["left"], raw["right"], tof, intr, T, tof_amplitude=np.ones((3, 3)))
    bad = dict(intr, left=np.full((3, 3), np.nan))
    with pytest.raises(DataError, match="NaN"):
        fuse(raw["left"], raw["right"], tof, bad, T)
    with pytest.raises(DataError, match="not found"):
        fuse(raw["left"], raw["right"], tof, intr, T, model="/nonexistent/model.pt")
    nan_left = raw["left"].astype(np.float32)
    nan_left[0, 0, 0] = np.nan
    with pytest.raises(DataError, match="'left' contains NaN"):
        fuse(nan_left, raw["right"], tof, intr, T)
