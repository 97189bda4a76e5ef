"""Per-window SQI: each feature against a closed form or a property, the calibrated score, and
"no reliable beat" on heartbeat-free input in the batch API."""

import dataclasses

import numpy as np
import pytest

from twscardio.config import QualityConfig, SimConfig, TrainConfig
from twscardio.pipeline import process
from twscardio.quality import (
    NO_BEAT,
    cross_axis_agreement,
    cross_bud_agreement,
    sqi_probability,
    template_correlation,
)
from twscardio.simulator import render_atoms, simulate, simulate_no_beat

FS = 100.0


def _beats(n=500, period=0.8, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    r = np.arange(0.2, n / FS - 0.2, period)
    x = render_atoms(n, FS, r, np.ones(r.size), np.full(r.size, 0.03), np.full(r.size, 7.0), 0.2)
    return x + noise * rng.normal(size=n)


def test_template_correlation_identical_beats_vs_noise():
    assert template_correlation(_beats(), FS, 0.8) > 0.99
    noise = np.random.default_rng(1).normal(size=500)
    assert template_correlation(noise, FS, 0.8) < 0.8


def test_cross_bud_is_a_canonical_correlation():
    """Invariant to any invertible mixing of each bud's axes; ~1 for a common-mode source,
    ~0 for independent noise; equals |Pearson r| for one-dimensional buds."""
    rng = np.random.default_rng(2)
    src = _beats(noise=0.05)
    z = np.concatenate([np.outer(src, [1, 0.5, -0.2]), np.outer(src, [-0.3, 1, 0.4])], axis=1)
    z += 0.02 * rng.normal(size=z.shape)
    valid = np.ones(len(z), dtype=bool)
    base = cross_bud_agreement(z, valid, ridge=0.0)
    mix = np.zeros((6, 6))
    mix[:3, :3], mix[3:, 3:] = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    assert cross_bud_agreement(z @ mix, valid, ridge=0.0) == pytest.approx(base, abs=1e-6)
    assert base > 0.95
    assert cross_bud_agreement(rng.normal(size=(500, 6)), valid) < 0.3
    a, b = rng.normal(size=500), rng.normal(size=500)
    b = 0.6 * a + 0.8 * b
    one = np.stack([a, 0 * a, 0 * a, b, 0 * b, 0 * b], axis=1)
    assert cross_bud_agreement(one, valid) == pytest.approx(abs(np.corrcoef(a, b)[0, 1]),
                                                            abs=0.01)
    assert np.isnan(cross_bud_agreement(z, np.zeros(len(z), dtype=bool)))


def test_cross_axis_agreement():
    x = _beats(noise=0.05)
    z = np.stack([x, -x, 0.5 * x, x, x, x], axis=1)
    assert cross_axis_agreement(z, FS, 0.8, [0.4, 1.5]) == pytest.approx(1.0)
    noise = np.random.default_rng(3).normal(size=(500, 6))
    assert cross_axis_agreement(noise, FS, 0.8, [0.4, 1.5]) < 0.5


def test_sqi_is_the_logistic_of_the_features():
    cfg = QualityConfig(weights=[1.0, 2.0, 3.0, 4.0], bias=-5.0, missing_cross_bud=0.5)
    f = np.array([[0.9, 0.8, np.nan, 0.7], [0.1, 0.2, 0.3, 0.4]])
    z = -5.0 + np.array([0.9 + 1.6 + 1.5 + 2.8, 0.1 + 0.4 + 0.9 + 1.6])
    assert np.allclose(sqi_probability(f, cfg), 1 / (1 + np.exp(-z)))


@pytest.mark.parametrize("kind", ["noise", "no_contact"])
@pytest.mark.parametrize("arm", ["a", "b"])
def test_heartbeat_free_input_gives_no_reliable_beat(kind, arm):
    """>= 95 % of heartbeat-free windows (the target) over twenty recordings are "no reliable
    beat": no HR, no beats, rejected samples."""
    sc = SimConfig(duration_s=30.0, fs_in=25.0)
    rejected = []
    for seed in range(5, 25):
        out = process(simulate_no_beat(sc, seed, kind), TrainConfig(), arm=arm)
        w = out["windows"]
        bad = ~w["reliable"]
        assert all(s == NO_BEAT for s, b in zip(w["status"], bad) if b)
        assert np.isnan(w["hr_bpm"][bad]).all()
        if bad.all():
            assert out["beats_s"].size == 0 and out["rejected_mask"].all()
        rejected.append(bad)
    assert np.concatenate(rejected).mean() >= 0.95


@pytest.mark.parametrize("arm", ["a", "b"])
def test_clean_beats_are_kept(arm):
    cfg = TrainConfig()
    rec = simulate(dataclasses.replace(cfg.sim, duration_s=30.0), seed=4)
    out = process(rec, cfg, arm=arm)
    w = out["windows"]
    assert w["reliable"].sum() >= len(w["reliable"]) - 1
    hr_true = rec["truth"]["hr_true"]
    assert np.nanmedian(np.abs(w["hr_bpm"] - hr_true)) < 5.0
    assert out["beats_s"].size >= 0.8 * out["beats_all_s"].size


def test_window_features_see_the_context_around_each_window():
    """assess_windows = window_features over each window widened by context_s (clipped to the
    recording); context_s = 0 judges the window alone."""
    from twscardio.quality import assess_windows, window_features

    rng = np.random.default_rng(7)
    n = 2000
    sig = _beats(n, noise=0.3, seed=3)
    axes = np.stack([sig + rng.normal(0, 0.5, n) for _ in range(6)], axis=1)
    valid = np.ones(n, dtype=bool)
    bounds = np.array([[0, 500], [500, 1000], [1000, 1500], [1500, 2000]])
    rng_s = [0.4, 1.5]
    alone = assess_windows(sig, axes, valid, bounds, FS, QualityConfig(context_s=0.0), rng_s)
    assert np.allclose(alone["features"],
                       window_features(sig, axes, valid, bounds, FS, rng_s)["features"])
    wide = assess_windows(sig, axes, valid, bounds, FS, QualityConfig(context_s=2.5), rng_s)
    ctx = np.array([[0, 750], [250, 1250], [750, 1750], [1250, 2000]])
    assert np.allclose(wide["features"],
                       window_features(sig, axes, valid, ctx, FS, rng_s)["features"])
    assert np.array_equal(wide["bounds"], bounds)


def _slow_beat_consistency(x, beats_s, bounds, fs, context_s, half_s=0.25):
    """Beat by beat and window by window with np.corrcoef."""
    H, c = int(round(half_s * fs)), int(round(context_s * fs))
    b = [int(round(t * fs)) for t in sorted(beats_s)]
    b = [i for i in b if H <= i < len(x) - H]
    segs = {i: x[i - H:i + H + 1] for i in b}
    tmpl = np.median(np.array([s - s.mean() for s in segs.values()]), axis=0)
    out = []
    for s, e in bounds:
        r = [np.corrcoef(segs[i], tmpl)[0, 1] for i in b if s - c <= i < e + c]
        out.append(float(np.median(r)) if len(r) >= 2 else 0.0)
    return np.array(out)


@pytest.mark.parametrize("context_s", [0.0, 2.5])
def test_beat_consistency_equals_a_slow_reference(context_s):
    from twscardio.quality import beat_consistency

    rng = np.random.default_rng(11)
    x = _beats(3000, noise=0.5, seed=5)
    beats = np.sort(rng.uniform(0.1, 29.9, 40))
    bounds = np.array([[0, 500], [500, 1000], [1000, 2000], [2000, 2900], [2900, 3000]])
    got = beat_consistency(x, beats, bounds, FS, context_s)
    assert np.allclose(got, _slow_beat_consistency(x, beats, bounds, FS, context_s), atol=1e-9)


def test_beat_consistency_heartbeats_vs_noise_peaks():
    """Identical beats: r = 1 exactly. Beats found on noise (its largest peak per 0.8 s) do not
    resemble their median, heartbeats in noise do; fewer than 2 beats in reach: 0."""
    from twscardio.quality import beat_consistency

    bounds = np.array([[0, 1000], [1000, 2000]])
    beats = np.arange(0.2, 19.8, 0.8)  # the beats `_beats` renders
    assert np.allclose(beat_consistency(_beats(2000, noise=0.0), beats, bounds, FS, 0.0), 1.0)
    x = _beats(2000, noise=0.1, seed=2)
    x[1000:] = np.random.default_rng(4).normal(size=1000)
    noise_peaks = [800 + k + int(np.argmax(x[1000 + k:1000 + k + 80])) for k in
                   range(200, 920, 80)]
    found = np.concatenate([beats[beats < 10.0], (np.array(noise_peaks) + 200) / FS])
    r = beat_consistency(x, found, bounds, FS, 0.0)
    assert r[0] > 0.85 and r[1] < 0.6
    assert np.array_equal(beat_consistency(x, np.array([3.0]), bounds, FS, 0.0), [0.0, 0.0])


def test_the_beat_consistency_gate_only_removes_windows():
    """min_beat_r > 0 rejects the windows whose beats do not repeat (here: beats placed on
    pure noise) on top of the sqi threshold; min_beat_r = 0 or no beats leave sqi alone in
    charge; the sqi itself never changes."""
    from twscardio.quality import assess_windows

    rng = np.random.default_rng(8)
    n = 2000
    sig = rng.normal(size=n)
    axes = np.stack([rng.normal(size=n) for _ in range(6)], axis=1)
    valid = np.ones(n, dtype=bool)
    bounds = np.array([[0, 1000], [1000, 2000]])
    beats = np.array([k + int(np.argmax(sig[k:k + 80])) for k in range(50, 1900, 80)]) / FS
    cfg_sqi_only = QualityConfig(threshold=1e-6, min_beat_r=0.0, context_s=0.0)
    base = assess_windows(sig, axes, valid, bounds, FS, cfg_sqi_only, [0.4, 1.5])
    off = assess_windows(sig, axes, valid, bounds, FS, cfg_sqi_only, [0.4, 1.5], beats_s=beats)
    on = assess_windows(sig, axes, valid, bounds, FS,
                        dataclasses.replace(cfg_sqi_only, min_beat_r=0.76), [0.4, 1.5],
                        beats_s=beats)
    assert base["reliable"].all() and off["reliable"].all()
    assert np.isnan(base["beat_r"]).all() and (off["beat_r"] < 0.76).all()
    assert not on["reliable"].any() and np.array_equal(on["sqi"], base["sqi"])
    assert all(s == NO_BEAT for s in on["status"]) and np.isnan(on["hr_bpm"]).all()


def test_sqi_operating_threshold_is_the_lowest_grid_value_rejecting_the_share():
    """calibrate_sqi's operating point against the definition: no-beat sqi 0.01 ... 0.40 in
    steps of 0.01 (40 windows); rejecting >= 97.5 % needs all but one below the threshold,
    i.e. > 0.39 -> 0.40 on the 0.05 grid; with every no-beat window at 0.99, none -> 0.5."""
    from twscardio.experiments.calibrate_sqi import operating_threshold

    p = np.r_[np.arange(1, 41) / 100.0, np.full(10, 0.9)]
    y = np.r_[np.zeros(40), np.ones(10)]
    assert operating_threshold(p, y) == 0.4
    assert operating_threshold(p, y, share=0.5) == 0.25
    assert operating_threshold(np.r_[np.full(5, 0.99), 0.9], np.r_[np.zeros(5), 1]) == 0.5


def test_sqi_operating_point_choice_breaks_exact_ties_towards_the_lowest_threshold():
    """Two thresholds with the same margin in exact arithmetic (1 of 576 clean windows
    rejected at both, 575 / 576 vs 576 / 576 no-beat: min(0.05 - 1/576, ...) both) whose float
    margins differ in the last bit: the lower threshold wins; a larger margin wins outright."""
    from twscardio.experiments.sqi_operating_point import choose

    def row(t, clean, nb):
        return {"threshold": t, "rejected_50Hz loss10%": clean, "rejected_25Hz loss20%": clean,
                "rejected_noise": 1.0, "rejected_no_contact": nb}

    rows = [row(0.34, 1 / 576, 1.0), row(0.28, 1 / 576, 575 / 576), row(0.2, 0.0, 0.9)]
    assert choose(rows, 0.05, 0.95)["threshold"] == 0.28
    rows.append(row(0.3, 0.0, 1.0))  # margin 0.05: strictly larger
    assert choose(rows, 0.05, 0.95)["threshold"] == 0.3


def test_calibrate_sqi_compare_scores_the_current_weights_on_the_same_held_out_half(
        tmp_path, monkeypatch):
    """--compare against the definition written out: the config's logistic sqi on the odd
    rows (the half the fit never saw), its lowest 0.05-grid threshold rejecting >= 97.5 % of
    their no-beat windows, the share of their beat windows below it."""
    import json

    import twscardio.experiments.calibrate_sqi as cs

    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.4).astype(int)
    X = np.where(y[:, None] == 1, 0.8, 0.25) + 0.15 * rng.standard_normal((400, 4))
    monkeypatch.setattr(cs, "features", lambda n, d, seed: (X.copy(), y.copy()))
    out = tmp_path / "cal.json"
    assert cs.main(["--recordings", "1", "--compare", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    q = TrainConfig().quality
    Xh, yh = X[1::2], y[1::2]
    p = 1 / (1 + np.exp(-(q.bias + Xh @ np.asarray(q.weights))))
    thr = next(g / 100 for g in range(5, 100, 5) if (p[yh == 0] < g / 100).mean() >= 0.975)
    assert res["current"]["threshold"] == pytest.approx(thr)
    assert res["current"]["beat_windows_rejected"] == pytest.approx((p[yh == 1] < thr).mean())
    assert res["refit_rejects_fewer_beat_windows"] == (
        res["at_threshold"]["beat_windows_rejected"] < res["current"]["beat_windows_rejected"])
