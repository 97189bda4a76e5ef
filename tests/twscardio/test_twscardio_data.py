"""Loaders for the EarCardio CSV layout and PhysioNet CEBS (WFDB), on files the tests write."""

from dataclasses import replace

import numpy as np
import pytest
import wfdb

from shared.errors import DataError
from twscardio.config import ChannelConfig, SimConfig, TrainConfig
from twscardio.data import (
    VALIDATION_SETTINGS,
    cebs_reference,
    load_cebs,
    load_earcardio,
    setting_sims,
    subject_recording,
    subject_seed,
    validation_recordings,
    write_earcardio,
)
from twscardio.simulator import draw_subject, simulate


@pytest.fixture(scope="module")
def rec():
    return simulate(SimConfig(duration_s=10.0, fs_in=25.0), seed=0)


def test_earcardio_roundtrip(tmp_path, rec):
    ids = write_earcardio(tmp_path / "5SecDataset" / "user1", rec, window_s=5.0)
    assert ids == ["0", "1"]
    wins = load_earcardio(tmp_path)
    assert [w["id"] for w in wins] == ["0", "1"]
    sel = rec["left"]["relative_time"] < 5.0
    assert np.allclose(wins[0]["left"]["acc"], rec["left"]["acc"][sel], atol=1e-8)
    assert np.allclose(wins[0]["left"]["relative_time"], rec["left"]["relative_time"][sel])
    assert wins[1]["scg"].shape == (500,) and wins[1]["ecg"].shape == (500,)


def test_incomplete_windows_are_skipped(tmp_path, rec):
    write_earcardio(tmp_path, rec, window_s=5.0)
    (tmp_path / "ecg_1.csv").unlink()
    assert [w["id"] for w in load_earcardio(tmp_path)] == ["0"]


def test_wrong_columns_named(tmp_path, rec):
    write_earcardio(tmp_path, rec, window_s=5.0)
    p = tmp_path / "r_0.csv"
    p.write_text(p.read_text().replace("rotationRateY", "gyroY", 1))
    with pytest.raises(DataError, match="r_0.csv: missing column 'rotationRateY'"):
        load_earcardio(tmp_path)


def test_nan_and_non_monotonic_rows(tmp_path, rec):
    write_earcardio(tmp_path, rec, window_s=5.0)
    p = tmp_path / "l_0.csv"
    lines = p.read_text().splitlines()
    lines[3], lines[4] = lines[4], lines[3]
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="not strictly increasing"):
        load_earcardio(tmp_path)
    lines[3] = "nan," + lines[3].split(",", 1)[1]
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="NaN"):
        load_earcardio(tmp_path)


def test_missing_root_and_empty_dir(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_earcardio(tmp_path / "nope")
    with pytest.raises(DataError, match="no complete"):
        load_earcardio(tmp_path)


def _write_cebs(d, names=("I", "II", "RESP", "SCG"), fs=500):
    import neurokit2 as nk

    ecg = nk.ecg_simulate(duration=12, sampling_rate=fs, heart_rate=70, random_state=0,
                          method="simple")
    n = len(ecg)
    t = np.arange(n) / fs
    sig = np.stack([ecg, ecg, np.sin(2 * np.pi * 0.25 * t), 0.01 * np.sin(2 * np.pi * 10 * t)],
                   axis=1)[:, :len(names)]
    wfdb.wrsamp("b001", fs=fs, units=["mV"] * len(names), sig_name=list(names), p_signal=sig,
                fmt=["16"] * len(names), write_dir=str(d))
    return d / "b001"


def test_cebs_record_loads_and_gives_r_peaks(tmp_path):
    c = load_cebs(_write_cebs(tmp_path))
    assert c["fs"] == 500 and c["scg"].shape == c["ecg"].shape and c["resp"] is not None
    ref = cebs_reference(c, fs_ref=100.0)
    assert abs(60 / np.median(np.diff(ref["r_s"])) - 70) < 3
    assert ref["scg"].shape == (1200,)


def test_cebs_errors(tmp_path):
    with pytest.raises(DataError, match="header not found"):
        load_cebs(tmp_path / "b002")
    rec = _write_cebs(tmp_path, names=("I", "II", "RESP"))
    with pytest.raises(DataError, match="no 'SCG' channel"):
        load_cebs(rec)
    (tmp_path / "b001.hea").write_text("garbage\n")
    with pytest.raises(DataError, match="unreadable"):
        load_cebs(rec)


def test_earcardio_windows_through_the_pipeline(tmp_path, rec):
    from twscardio.config import NetConfig, TrainConfig
    from twscardio.eval import evaluate_earcardio
    from twscardio.models import BCG2SCGNet
    from twscardio.pipeline import N_FEATURES

    write_earcardio(tmp_path, rec, window_s=5.0)
    model = BCG2SCGNet(N_FEATURES, NetConfig(channels=8, dilations=[1])).eval()
    rows = evaluate_earcardio(load_earcardio(tmp_path), TrainConfig(), model)
    assert [r["id"] for r in rows] == ["0", "1"]
    assert all(np.isfinite(r["r"]) and -1 <= r["r"] <= 1 for r in rows)


def test_corrupt_csv_and_wrong_shapes(tmp_path, rec):
    from twscardio.config import TrainConfig
    from twscardio.pipeline import process

    write_earcardio(tmp_path, rec, window_s=5.0)
    p = tmp_path / "scg_0.csv"
    p.write_text("scg\n0.1\nabc\n")
    with pytest.raises(DataError, match="scg_0.csv: non-numeric"):
        load_earcardio(tmp_path)
    bad = {**rec, "left": {**rec["left"], "acc": rec["left"]["acc"][:, :2]}}
    with pytest.raises(DataError, match=r"left: acc and gyro must both be \(n, 3\)"):
        process(bad, TrainConfig(), "b")
    empty = {**rec, "right": {k: v[:0] for k, v in rec["right"].items()}}
    with pytest.raises(DataError, match="right is empty"):
        process(empty, TrainConfig(), "b")
    with pytest.raises(DataError, match="needs a trained"):
        process(rec, TrainConfig(), "d")


@pytest.mark.parametrize("morphology", ["fixed", "randomised"])
def test_subject_recording_is_the_subject_of_its_seed_simulated_from_seed_plus_one(morphology):
    sc = SimConfig(duration_s=6.0, morphology=morphology)
    ref = simulate(sc, 43, subject=draw_subject(np.random.default_rng(42), sc.hr_range,
                                                morphology == "randomised"))
    got = subject_recording(sc, 42)
    assert np.array_equal(got["left"]["acc"], ref["left"]["acc"])
    assert np.array_equal(got["truth"]["r_s"], ref["truth"]["r_s"])
    forced = subject_recording(sc, 42, randomised=True)
    same = forced["left"]["acc"].shape == ref["left"]["acc"].shape and \
        np.array_equal(forced["left"]["acc"], ref["left"]["acc"])
    assert same == (morphology == "randomised")


def _explicit(sim, fs_in, loss, duration_s, motion=None):
    """The composition the validation probes wrote out per setting."""
    if motion is None:
        return replace(sim, fs_in=fs_in, duration_s=duration_s,
                       channel=ChannelConfig(loss=loss, burst=3.0))
    return replace(sim, fs_in=fs_in, duration_s=duration_s, motion_level=motion,
                   channel=ChannelConfig(loss=loss, burst=3.0))


# The probes' settings as they were written out before sharing one helper.
PROBE_SETTINGS = {
    "sqi_operating_point": {"50Hz loss10%": (50.0, 0.1), "25Hz loss20%": (25.0, 0.2)},
    "premature_beats": {"50Hz loss10%": (50.0, 0.1), "25Hz loss20%": (25.0, 0.2)},
    "beat_consistency": {"50Hz loss10%": (50.0, 0.1), "25Hz loss20%": (25.0, 0.2)},
    "gap_timing": {"50Hz loss10%": (50.0, 0.1), "25Hz loss20%": (25.0, 0.2),
                   "25Hz loss30%": (25.0, 0.3)},
    "fusion_fallback": {"50Hz loss10%": (50.0, 0.1, 0.0), "25Hz loss20%": (25.0, 0.2, 0.0),
                        "25Hz loss20% motion3": (25.0, 0.2, 3.0)},
}


@pytest.mark.parametrize("probe", sorted(PROBE_SETTINGS))
def test_setting_sims_equal_the_probes_explicit_composition(probe):
    import importlib
    settings = importlib.import_module(f"twscardio.experiments.{probe}").SETTINGS
    assert settings == PROBE_SETTINGS[probe]
    # the probes' own base, and one whose channel and motion differ from the defaults (a helper
    # that kept sim.channel's packet size, or reset motion_level, fails here)
    odd = replace(TrainConfig().sim, motion_level=1.5,
                  channel=ChannelConfig(loss=0.05, burst=6.0, samples_per_packet=4,
                                        independent_buds=False))
    for sim in (TrainConfig().sim, odd):
        for duration_s in (60.0, 30.0):
            got = setting_sims(sim, settings, duration_s)
            assert list(got) == list(settings)
            for label, v in settings.items():
                want = _explicit(sim, v[0], v[1], duration_s, v[2] if len(v) > 2 else None)
                assert got[label] == want, label
    assert setting_sims(odd, {"x": (25.0, 0.2)}, 60.0)["x"].motion_level == 1.5


def test_validation_recordings_are_the_explicit_composition():
    """data.validation_recordings yields, subject by subject and setting by setting, the
    recordings the probes built by hand: subject_recording(setting_sims(...)[label],
    subject_seed("val", i, seed), randomised=True)."""
    cfg = TrainConfig(seed=3)
    got = list(validation_recordings(cfg, [5, 2], VALIDATION_SETTINGS, 8.0))
    assert [(i, label) for i, label, _ in got] == [(i, label) for i in (5, 2)
                                                   for label in VALIDATION_SETTINGS]
    sims = setting_sims(cfg.sim, VALIDATION_SETTINGS, 8.0)
    for i, label, rec in got:
        ref = subject_recording(sims[label], subject_seed("val", i, 3), randomised=True)
        assert rec.keys() == ref.keys()
        for side in ("left", "right"):
            for k, v in ref[side].items():
                np.testing.assert_array_equal(rec[side][k], v)
        np.testing.assert_array_equal(rec["truth"]["r_s"], ref["truth"]["r_s"])
