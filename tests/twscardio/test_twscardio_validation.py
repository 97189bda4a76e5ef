"""Input validation: every bad input named in one line (DataError) before any work, in the batch
pipeline (`process`) and in the streaming API (`StreamingMonitor.push`)."""

import copy

import numpy as np
import pytest

from shared.errors import DataError
from twscardio.config import SimConfig, TrainConfig
from twscardio.enhance import check_timestamps
from twscardio.pipeline import process
from twscardio.simulator import simulate
from twscardio.stream import StreamingMonitor

CFG = TrainConfig()


@pytest.fixture(scope="module")
def rec():
    return simulate(SimConfig(duration_s=12.0, fs_in=50.0), seed=3)


def _with(rec, fn):
    r = copy.deepcopy(rec)
    for side in ("left", "right"):
        fn(r[side])
    return r


@pytest.mark.parametrize("fs_in, match", [(0, "must be positive"), (-25, "must be positive"),
                                          (float("nan"), "finite"), (25.0, "disagrees"),
                                          (200.0, "disagrees")])
def test_fs_in_must_be_positive_and_match_the_timestamps(rec, fs_in, match):
    r = copy.deepcopy(rec)
    r["fs_in"] = fs_in
    with pytest.raises(DataError, match=match):
        process(r, CFG, arm="b")


def test_fs_in_consistent_with_timestamps_is_accepted(rec):
    out = process(rec, CFG, arm="a")  # the nominal rate: no error
    assert out["beats_s"].size > 5


@pytest.mark.parametrize("arm", ["a", "b"])
def test_millisecond_timestamps_are_named(rec, arm):
    r = _with(rec, lambda b: b.update(relative_time=b["relative_time"] * 1000))
    r["duration_s"] = None
    with pytest.raises(DataError, match="looks like milliseconds.*divide by 1000"):
        process(r, CFG, arm=arm)


def test_sample_index_timestamps_are_named(rec):
    r = _with(rec, lambda b: b.update(relative_time=np.round(b["relative_time"] * 50.0)))
    r["duration_s"] = None
    with pytest.raises(DataError, match="sample indices"):
        process(r, CFG, arm="b")


def test_non_monotonic_timestamps_are_named(rec):
    def swap(b):
        t = b["relative_time"].copy()
        t[10], t[11] = t[11], t[10]
        b["relative_time"] = t
    with pytest.raises(DataError, match="not strictly increasing at row 11"):
        process(_with(rec, swap), CFG, arm="b")


@pytest.mark.parametrize("arm", ["a", "b"])
@pytest.mark.parametrize("value", [0.0, 0.3])
def test_constant_signal_is_refused(rec, arm, value):
    r = _with(rec, lambda b: b.update(acc=np.full_like(b["acc"], value)))
    with pytest.raises(DataError, match="constant"):
        process(r, CFG, arm=arm)


def test_check_timestamps_reference_rates():
    t = np.arange(100) / 25.0
    assert check_timestamps(t, "x", 25.0) == pytest.approx(25.0)
    lossy = np.delete(t, np.arange(0, 100, 3))  # a third of the samples lost
    assert check_timestamps(lossy, "x", 25.0) > 0
    with pytest.raises(DataError, match="too fast"):
        check_timestamps(t * 1e-3, "x")
    with pytest.raises(DataError, match="not an IMU rate"):
        check_timestamps(t * 1e5, "x")


def _push_all(mon, rec, time_fn=lambda t: t, n=200):
    for side in ("left", "right"):
        b = rec[side]
        for k in range(0, n, 2):
            mon.push(side, time_fn(b["relative_time"][k:k + 2]), b["acc"][k:k + 2],
                     b["gyro"][k:k + 2])


def test_stream_refuses_milliseconds_before_any_update(rec):
    mon = StreamingMonitor(CFG, fs_in=50.0)
    with pytest.raises(DataError, match="milliseconds"):
        _push_all(mon, rec, lambda t: t * 1000)
    assert mon._next_emit is None  # nothing was emitted or scheduled


def test_stream_refuses_sample_indices(rec):
    with pytest.raises(DataError, match="sample indices"):
        _push_all(StreamingMonitor(CFG), rec, lambda t: np.round(t * 50.0))


@pytest.mark.parametrize("fs_in, match", [(0.0, "positive"), (-25.0, "positive"),
                                          (25.0, "disagrees")])
def test_stream_fs_in(rec, fs_in, match):
    with pytest.raises(DataError, match=match):
        _push_all(StreamingMonitor(CFG, fs_in=fs_in), rec)


def test_stream_non_monotonic_packet(rec):
    mon = StreamingMonitor(CFG, fs_in=50.0)
    b = rec["left"]
    with pytest.raises(DataError, match="not increasing"):
        mon.push("left", b["relative_time"][[3, 2]], b["acc"][:2], b["gyro"][:2])


def test_stream_constant_signal_gives_no_reliable_beat(rec):
    flat = _with(rec, lambda b: b.update(acc=np.zeros_like(b["acc"])))
    mon = StreamingMonitor(CFG, fs_in=50.0)
    ups = []
    for k in range(0, 400, 2):  # both buds, packet by packet
        for side in ("left", "right"):
            b = flat[side]
            ups += mon.push(side, b["relative_time"][k:k + 2], b["acc"][k:k + 2],
                            b["gyro"][k:k + 2])
    assert ups and all(np.isnan(u.hr_bpm) and u.rejected for u in ups)
    assert all("constant" in u.info["reason"] for u in ups)
