"""Fuzz: twscardio loaders (EarCardio CSV windows, CEBS WFDB records, the beat-synchronous
timing model's weights), `process` and the streaming monitor.

A recording's durations, rates and timestamps are checked against its samples before a grid is
allocated (no 728 TiB `duration_s`), a flat or NaN-rate stream is a DataError (not LinAlgError)
and a far-future packet does not spin the streaming loop.
"""

import copy

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

from shared.errors import DataError
from twscardio.beatsync import TimingModel, load_timing, save_timing
from twscardio.config import SimConfig, TrainConfig
from twscardio.data import load_cebs, load_earcardio, write_earcardio
from twscardio.pipeline import process
from twscardio.simulator import simulate
from twscardio.stream import StreamingMonitor

CFG = TrainConfig()
_REC = {}


def recording():
    if not _REC:
        _REC.update(simulate(SimConfig(duration_s=12.0), 0))
    return _REC


def _seed_earcardio(d):
    write_earcardio(d, recording(), window_s=5.0)
    for k in range(1, 3):  # one window is enough
        for p in ("l", "r", "scg", "ecg"):
            (d / f"{p}_{k}.csv").unlink(missing_ok=True)


def _check_earcardio(wins, d):
    assert wins
    for w in wins:
        for side in ("left", "right"):
            t = w[side]["relative_time"]
            assert np.all(np.diff(t) > 0) and np.isfinite(t).all()
            assert w[side]["acc"].shape == (t.size, 3) and np.isfinite(w[side]["acc"]).all()
        assert np.isfinite(w["scg"]).all() and np.isfinite(w["ecg"]).all()


def _seed_cebs(d):
    import wfdb

    sig = np.random.default_rng(0).normal(size=(300, 3))
    wfdb.wrsamp("b001", fs=100, units=["mV"] * 3, sig_name=["I", "SCG", "RESP"],
                p_signal=sig, fmt=["16"] * 3, write_dir=str(d))


def _check_cebs(c, d):
    assert np.isfinite(c["fs"]) and c["fs"] > 0
    assert c["ecg"].ndim == 1 and c["ecg"].shape == c["scg"].shape
    assert np.isfinite(c["ecg"]).all() and np.isfinite(c["scg"]).all()


def _seed_timing(d):
    save_timing(TimingModel(163, 8, 2), d / "t.safetensors")


def _check_timing(res, d):
    model, info = res
    assert len(model.nets) == info["members"] == 2
    assert np.isfinite(model.predict(np.zeros((1, 163)))).all()


TARGETS = [
    Target("earcardio", _seed_earcardio, load_earcardio, _check_earcardio,
           ("l_0.csv", "r_0.csv", "scg_0.csv", "ecg_0.csv")),
    Target("cebs", _seed_cebs, lambda d: load_cebs(d / "b001"), _check_cebs,
           ("b001.hea", "b001.dat")),
    Target("timing", _seed_timing, lambda d: load_timing(d / "t.safetensors"), _check_timing,
           ("t.safetensors",) * 4),
]
BY_NAME = {t.name: t for t in TARGETS}


test_mutated_files = mutated_files_test(TARGETS, 300, files=4)


# --- process() and the streaming monitor on structured recordings

NAMES = ["recording", "fs_in", "duration_s", "left", "right", "acc", "gyro", "relative_time",
         "t_range", "window", "accelerometer"]


def _process_target(rec):
    def check(out, d):
        b = np.asarray(out["beats_s"])
        assert np.isfinite(b).all() and np.all(np.diff(b) > 0)

    return Target("process", lambda d: None, lambda d: process(rec, CFG, "b"), check,
                  names=lambda d: NAMES)


@fuzz_settings(120)
@given(edit=st.sampled_from(["none", "zeros", "fs_nan", "fs_zero", "fs_neg", "fs_big",
                             "dur_huge", "dur_nan", "dur_neg", "t_huge", "t_nan", "t_dup",
                             "drop_left", "acc_2col", "short", "acc_str"]),
       side=st.sampled_from(["left", "right"]))
def test_structured_process(edit, side):
    rec = copy.deepcopy(recording())
    b = rec[side]
    if edit == "zeros":
        for s in ("left", "right"):
            rec[s]["acc"][:] = 0
            rec[s]["gyro"][:] = 0
    elif edit.startswith("fs_"):
        rec["fs_in"] = {"fs_nan": np.nan, "fs_zero": 0.0, "fs_neg": -5.0, "fs_big": 1e9}[edit]
    elif edit.startswith("dur_"):
        rec["duration_s"] = {"dur_huge": 1e12, "dur_nan": np.nan, "dur_neg": -3.0}[edit]
    elif edit == "t_huge":
        b["relative_time"] = b["relative_time"].copy()
        b["relative_time"][-1] = 1e12
    elif edit == "t_nan":
        b["relative_time"][3] = np.nan
    elif edit == "t_dup":
        b["relative_time"][5] = b["relative_time"][4]
    elif edit == "drop_left":
        del rec["left"]
    elif edit == "acc_2col":
        b["acc"] = b["acc"][:, :2]
    elif edit == "short":
        for k in ("relative_time", "acc", "gyro"):
            b[k] = b[k][:2]
    elif edit == "acc_str":
        b["acc"] = np.full(b["acc"].shape, "x")
    assert_clean(_process_target(rec))


@fuzz_settings(150)
@given(packets=st.lists(st.tuples(
    st.sampled_from(["left", "right", "middle"]),
    st.sampled_from([0.02, 1.0, 7.0, 1e6, 1e12, -1.0, np.nan]),  # time step to the packet
    st.integers(0, 6),  # samples
    st.sampled_from(["ok", "nan", "shape"])), min_size=1, max_size=6),
    fs_in=st.sampled_from([None, 50.0, np.nan, -1.0]))
def test_structured_stream(packets, fs_in):
    def run(d):
        mon = StreamingMonitor(CFG, fs_in=fs_in)
        t = {"left": 0.0, "right": 0.0, "middle": 0.0}
        out = []
        rng = np.random.default_rng(0)
        for side, step, n, kind in packets:
            ts = t[side] + step + 0.02 * np.arange(n)
            t[side] = ts[-1] if n else t[side]
            acc = rng.normal(size=(n, 3))
            if kind == "nan" and n:
                acc[0, 0] = np.nan
            gyro = rng.normal(size=(n, 3 if kind != "shape" else 2))
            out += mon.push(side, ts, acc, gyro)
        return out

    def check(updates, d):
        for u in updates:
            assert np.isfinite(u.t_end)

    t = Target("stream", lambda d: None, run, check,
               names=lambda d: ["packet", "bud", "fs_in", "timestamps", "hop_s"])
    assert_clean(t)


# --- regressions


def test_cebs_header_rates_and_sizes(tmp_path):
    t = BY_NAME["cebs"]
    for old, new, words in ((b"b001 3 100 300", b"b001 3 0 300", "sampling frequency"),
                            (b"b001 3 100 300", b"b001 3 -100 300", "sampling frequency"),
                            (b"b001 3 100 300", b"b001 3 100 3000000000", "declares")):
        d = t.fresh(tmp_path)
        hea = d / "b001.hea"
        hea.write_bytes(hea.read_bytes().replace(old, new))
        assert_rejects(t, d, "b001.hea", words)
    d = t.fresh(tmp_path)
    (d / "b001.hea").write_bytes((d / "b001.hea").read_bytes()[:20])  # truncated header
    assert_rejects(t, d, "b001.hea")


def test_process_refuses_huge_duration_flat_imu_and_nan_rate():
    for edit, words in ((("duration_s", 1e12), "spans"), (("fs_in", np.nan), "fs_in")):
        rec = copy.deepcopy(recording())
        rec[edit[0]] = edit[1]
        with pytest.raises(DataError, match=words):
            process(rec, CFG, "b")
    rec = copy.deepcopy(recording())
    for s in ("left", "right"):
        rec[s]["acc"][:] = 0
    with pytest.raises(DataError, match="constant"):
        process(rec, CFG, "b")


def test_stream_far_future_packet_does_not_spin():
    mon = StreamingMonitor(CFG)
    rec = recording()
    for side in ("left", "right"):
        b = rec[side]
        mon.push(side, b["relative_time"][:300], b["acc"][:300], b["gyro"][:300])
    t = Target("stream", lambda d: None,
               lambda d: mon.push("left", [1e7], [[0, 0, 1]], [[0, 0, 0]]),
               lambda out, d: None, names=lambda d: ["packet"])
    assert_clean(t)
    with pytest.raises(DataError, match="beyond"):
        mon.push("right", [1e12], [[0, 0, 1]], [[0, 0, 0]])


def test_earcardio_non_utf8_and_huge_field(tmp_path):
    t = BY_NAME["earcardio"]
    d = t.fresh(tmp_path)
    (d / "scg_0.csv").write_bytes(b"scg\n0.1\n\xff\n")
    assert_rejects(t, d, "scg_0.csv:3", "not UTF-8")
    d = t.fresh(tmp_path)
    (d / "ecg_0.csv").write_bytes(b'ecg\n"' + b"1" * 200_000 + b'"\n')
    assert_rejects(t, d, "ecg_0.csv")
