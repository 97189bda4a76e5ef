"""The out-of-family generator: the simulator's layout, truth consistent with its own beats,
its own loss model, heartbeat-free kinds, and kept out of training and calibration."""

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from twscardio.beats import beat_metrics, find_jpeaks
from twscardio.config import ChannelConfig, SimConfig
from twscardio.outfamily import HR_RANGE, simulate_out_of_family

SC = SimConfig(duration_s=30.0, fs_in=50.0, channel=ChannelConfig(loss=0.0))


@pytest.fixture(scope="module")
def rec():
    return simulate_out_of_family(SC, 0)


def test_layout_and_truth(rec):
    for side in ("left", "right"):
        b = rec[side]
        assert b["acc"].shape == b["gyro"].shape == (b["relative_time"].size, 3)
        assert np.all(np.diff(b["relative_time"]) > 0)
        assert 1 / np.median(np.diff(b["relative_time"])) == pytest.approx(50.0, rel=0.01)
    tr = rec["truth"]
    assert HR_RANGE[0] - 8 <= tr["hr_true"] <= HR_RANGE[1] + 8
    assert np.all(tr["ao_s"] > tr["r_s"]) and np.all(tr["ac_s"] > tr["ao_s"])
    assert tr["scg"].shape == tr["t"].shape and rec["family"] == "out"


def test_bcg_beats_follow_the_r_peaks(rec):
    """The truth BCG's J waves (its largest peak per beat) track the R peaks one for one."""
    tr = rec["truth"]
    m = beat_metrics(find_jpeaks(tr["bcg"], 100.0), tr)
    assert m["missed_pct"] < 2 and m["ibi_mae_ms"] < 10


def test_deterministic_and_seeded():
    a, b = simulate_out_of_family(SC, 1), simulate_out_of_family(SC, 1)
    assert np.array_equal(a["left"]["acc"], b["left"]["acc"])
    assert not np.array_equal(a["left"]["acc"][:100], simulate_out_of_family(SC, 2)["left"]["acc"]
                              [:100])


@pytest.mark.parametrize("loss, burst", [(0.1, 3.0), (0.2, 3.0)])
def test_loss_rate_and_bursts(loss, burst):
    sc = dataclasses.replace(SC, channel=ChannelConfig(loss=loss, burst=burst,
                                                       samples_per_packet=1))
    rates, runs = [], []
    for seed in range(3):
        d = simulate_out_of_family(sc, seed)["truth"]["delivered_left"]
        rates.append(1 - d.mean())
        edges = np.diff(np.r_[1, d.astype(int), 1])
        runs += list(np.flatnonzero(edges == 1) - np.flatnonzero(edges == -1))
    assert np.mean(rates) == pytest.approx(loss, abs=0.04)
    assert np.mean(runs) == pytest.approx(burst, rel=0.35)


def test_outages():
    t = simulate_out_of_family(SC, 1, outage_s=1.0)["left"]["relative_time"]
    assert (np.diff(t) > 0.9).sum() >= 2


@pytest.mark.parametrize("kind", ["noise", "no_contact"])
def test_heartbeat_free_kinds(kind):
    rec = simulate_out_of_family(SC, 2, kind)
    assert np.abs(rec["truth"]["bcg"]).max() == 0.0 and rec["truth"]["kind"] == kind
    with pytest.raises(ValueError, match="unknown kind"):
        simulate_out_of_family(SC, 2, "dream")


def test_never_used_for_training_or_calibration():
    root = Path(__file__).resolve().parents[2] / "twscardio"
    for rel in ("train.py", "data.py", "simulator.py", "quality.py", "models.py",
                "experiments/calibrate_sqi.py", "experiments/ship_weights.py"):
        tree = ast.parse((root / rel).read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                 for a in n.names} | {getattr(n, "module", "") or "" for n in ast.walk(tree)
                                      if isinstance(n, ast.ImportFrom)}
        assert not any("outfamily" in x for x in names), rel
