"""Streaming API: packets in arrival order -> updates every hop with bounded latency."""

import numpy as np
import pytest

from shared.errors import DataError
from twscardio.config import ChannelConfig, NetConfig, SimConfig, TrainConfig
from twscardio.models import BCG2SCGNet
from twscardio.pipeline import N_FEATURES
from twscardio.simulator import simulate
from twscardio.stream import StreamingMonitor


def _packets(rec, spp=2):
    ev = []
    for side in ("left", "right"):
        b = rec[side]
        for k in range(0, len(b["relative_time"]), spp):
            ev.append((b["relative_time"][k], side, slice(k, k + spp)))
    return sorted(ev, key=lambda e: e[0])


@pytest.fixture(scope="module")
def rec():
    cfg = SimConfig(duration_s=16.0, fs_in=25.0, channel=ChannelConfig(loss=0.1))
    return simulate(cfg, seed=11)


def _run(rec, model):
    mon = StreamingMonitor(TrainConfig(), model, window_s=5.0, hop_s=1.0, fs_in=25.0)
    ups = []
    for _, side, sl in _packets(rec):
        b = rec[side]
        ups += mon.push(side, b["relative_time"][sl], b["acc"][sl], b["gyro"][sl])
    return ups


def test_updates_every_hop_with_plausible_hr(rec):
    ups = _run(rec, None)
    assert 9 <= len(ups) <= 12
    assert np.allclose(np.diff([u.t_end for u in ups]), 1.0)
    hr_true = rec["truth"]["hr_true"]
    assert np.median([abs(u.hr_bpm - hr_true) for u in ups]) < 5.0


def test_scg_segments_tile_the_stream(rec):
    model = BCG2SCGNet(N_FEATURES, NetConfig(channels=8, dilations=[1, 2])).eval()
    ups = _run(rec, model)
    assert all(u.scg.shape == (100,) and np.isfinite(u.scg).all() for u in ups)
    t0 = [u.scg_t0 for u in ups]
    assert np.allclose(np.diff(t0), 1.0, atol=0.011)  # consecutive, non-overlapping segments
    assert all(u.t_end - (u.scg_t0 + 1.0) == pytest.approx(0.7, abs=0.011) for u in ups)


def test_bad_packets_rejected():
    mon = StreamingMonitor(TrainConfig())
    mon.push("left", [0.0, 0.04], np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(DataError, match="not increasing"):
        mon.push("left", [0.02], np.zeros((1, 3)), np.zeros((1, 3)))
    with pytest.raises(DataError, match="NaN"):
        mon.push("left", [0.1], np.full((1, 3), np.nan), np.zeros((1, 3)))
    with pytest.raises(DataError, match="acc"):
        mon.push("right", [0.1, 0.2], np.zeros((3, 3)), np.zeros((2, 3)))
    with pytest.raises(DataError, match="unknown bud"):
        mon.push("middle", [0.1], np.zeros((1, 3)), np.zeros((1, 3)))


def test_robust_hr_ignores_missed_and_extra_beats():
    from twscardio.stream import RobustHeartRate

    beats = np.arange(0, 5.0, 0.8)
    hr = RobustHeartRate()
    assert hr.update(beats, 0.8) == pytest.approx(75.0)
    missed = np.delete(np.arange(5.0, 10.0, 0.8), 2)  # an interval of 1.6 s
    extra = np.sort(np.append(np.arange(10.0, 15.0, 0.8), 12.0))  # 0.4-s intervals
    assert hr.update(missed, 1.6) == pytest.approx(75.0)
    assert hr.update(extra, 0.4) == pytest.approx(75.0)
    n = hr.ibi.size
    hr.update(extra, 0.8)  # the same beats again (overlapping window): not counted twice
    assert hr.ibi.size == n


def test_robust_hr_follows_a_rhythm_change():
    from twscardio.stream import RobustHeartRate

    hr = RobustHeartRate()
    hr.update(np.arange(0, 8.0, 0.8), 0.8)
    out = [hr.update(np.arange(8.0 + 5 * k, 13.0 + 5 * k, 0.6), 0.6) for k in range(2)]
    assert out[-1] == pytest.approx(100.0)


def test_stream_says_no_reliable_beat_on_noise():
    from twscardio.quality import NO_BEAT
    from twscardio.simulator import simulate_no_beat

    rec = simulate_no_beat(SimConfig(duration_s=12.0, fs_in=25.0), 5, "noise")
    mon = StreamingMonitor(TrainConfig(), window_s=5.0, hop_s=1.0, fs_in=25.0)
    ups = []
    for _, side, sl in _packets(rec):
        b = rec[side]
        ups += mon.push(side, b["relative_time"][sl], b["acc"][sl], b["gyro"][sl])
    assert ups and all(u.status == NO_BEAT and np.isnan(u.hr_bpm) for u in ups)
    assert all(u.sqi < TrainConfig().quality.threshold for u in ups)


def test_stream_reports_sqi_on_beats(rec):
    ups = _run(rec, None)
    assert all(u.status == "ok" and u.sqi >= TrainConfig().quality.threshold for u in ups)
