"""Simulator: seeded determinism, physiology relations, loss and motion as configured."""

import numpy as np
import pytest

from twscardio.config import ChannelConfig, SimConfig
from twscardio.simulator import simulate


@pytest.fixture(scope="module")
def rec():
    return simulate(SimConfig(duration_s=30.0, fs_in=25.0), seed=3)


def test_seeded_and_deterministic(rec):
    again = simulate(SimConfig(duration_s=30.0, fs_in=25.0), seed=3)
    assert np.array_equal(rec["left"]["acc"], again["left"]["acc"])
    other = simulate(SimConfig(duration_s=30.0, fs_in=25.0), seed=4)
    assert not np.array_equal(rec["truth"]["r_s"], other["truth"]["r_s"])


def test_systolic_time_intervals_follow_heart_rate(rec):
    tr = rec["truth"]
    hr = 60 / np.diff(tr["r_s"])
    pep = tr["ao_s"][1:] - tr["r_s"][1:] + 0.040
    lvet = tr["ac_s"][1:] - tr["ao_s"][1:]
    s = rec["subject"]
    # Weissler: PEP = 131 - 0.4 HR, LVET = 413 - 1.7 HR (ms) + subject offset + zero-mean jitter
    assert abs(np.mean(pep * 1000 - (131 - 0.4 * hr)) - 1000 * s["pep_off"]) < 3
    assert abs(np.mean(lvet * 1000 - (413 - 1.7 * hr)) - 1000 * s["lvet_off"]) < 5
    assert np.std(lvet * 1000 - (413 - 1.7 * hr)) == pytest.approx(8, abs=3)
    assert np.all(tr["ac_s"] > tr["ao_s"]) and np.all(tr["ao_s"] > tr["r_s"])
    assert 55 <= tr["hr_true"] <= 100


def test_streams_have_earcardio_fields_and_rate(rec):
    for side in ("left", "right"):
        b = rec[side]
        assert b["acc"].shape == b["gyro"].shape == (len(b["relative_time"]), 3)
        assert np.all(np.diff(b["relative_time"]) > 0)
        assert 1 / np.median(np.diff(b["relative_time"])) == pytest.approx(25.0, rel=0.01)
    assert rec["truth"]["scg"].shape == rec["truth"]["t"].shape == (3000,)


def test_configured_loss_rate_reaches_the_stream():
    cfg = SimConfig(duration_s=60.0, fs_in=50.0, channel=ChannelConfig(loss=0.2, burst=3.0))
    r = simulate(cfg, seed=1)
    lost = 1 - np.mean(np.concatenate([r["truth"]["delivered_left"],
                                       r["truth"]["delivered_right"]]))
    assert lost == pytest.approx(0.2, abs=0.06)


def test_motion_raises_accelerometer_power():
    calm = simulate(SimConfig(duration_s=20.0, motion_level=0.0), seed=2)
    busy = simulate(SimConfig(duration_s=20.0, motion_level=3.0), seed=2)
    assert busy["left"]["gyro"].std() > 10 * calm["left"]["gyro"].std()
    assert busy["left"]["acc"].std() > 5 * calm["left"]["acc"].std()
