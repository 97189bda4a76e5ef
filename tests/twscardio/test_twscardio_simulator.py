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


def test_randomised_family_spans_morphologies():
    """The training family draws polarity per axis, resonances, rhythms and noise widely; the
    fixed family's own draws are unchanged underneath."""
    from twscardio.simulator import draw_subject

    subs = [draw_subject(np.random.default_rng(i), [55, 95], randomised=True) for i in range(60)]
    fixed = draw_subject(np.random.default_rng(0), [55, 95])
    assert subs[0]["hr0"] == fixed["hr0"]  # the fixed draws come first
    # either polarity of the BCG on every bud axis (d_long through each bud's frame)
    signs = np.array([np.sign(s["d_long"] @ s["R_left"]) for s in subs])
    assert (signs > 0).any(axis=0).all() and (signs < 0).any(axis=0).all()
    f0 = [s["f0"] for s in subs]
    assert min(f0) < 4.0 and max(f0) > 9.0
    assert any(s["af_cv"] > 0 for s in subs) and any(s["ectopic_rate"] > 0 for s in subs)
    assert any(s["res_b"] > 0.4 for s in subs)


def test_ectopic_and_af_like_rhythms():
    from twscardio.simulator import draw_subject

    sc = SimConfig(duration_s=40.0, fs_in=25.0, morphology="randomised")
    s = draw_subject(np.random.default_rng(1), sc.hr_range, randomised=True)
    s.update(ectopic_rate=0.1, af_cv=0.0)
    rr = np.diff(simulate(sc, 5, subject=s)["truth"]["r_s"])
    early = rr < 0.85 * np.median(rr)
    assert early.sum() >= 2
    k = np.flatnonzero(early[:-1])
    assert np.all(rr[k + 1] > np.median(rr))  # a compensatory pause follows
    s.update(ectopic_rate=0.0, af_cv=0.2)
    rr_af = np.diff(simulate(sc, 5, subject=s)["truth"]["r_s"])
    assert np.std(rr_af) / np.mean(rr_af) > 0.12
    assert np.std(rr) / np.mean(rr) < np.std(rr_af) / np.mean(rr_af)
