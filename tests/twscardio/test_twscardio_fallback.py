"""The beat-synchronous refit of the fusion (the fallback for recordings whose fused signal
holds no clear beat): a slow reference for its statistics, a planted weak beat on one axis
under irregular RR, and recordings the fallback must leave unchanged."""

from dataclasses import replace

import numpy as np
import pytest
from scipy import linalg

from twscardio import pipeline
from twscardio.config import ChannelConfig, TrainConfig
from twscardio.fusion import (
    bandpass,
    beat_synchronous_weights,
    bud_agreement,
    combine,
    highpass,
    periodic_weights,
    standardise,
    window_bounds,
    window_statistics,
)
from twscardio.pipeline import fused_with_fallback, process
from twscardio.simulator import render_atoms, simulate

FS = 100.0


def _fallback_on() -> TrainConfig:
    """The fallback at the settings chosen on validation (it is off by default)."""
    cfg = TrainConfig()
    return replace(cfg, fusion=replace(cfg.fusion, refit_below_sqi=0.5, refit_max_rotating=0.2))


def _irregular_beats(n, seed, rr_sd=0.09):
    rng = np.random.default_rng(seed)
    t = 0.3 + np.cumsum(np.clip(rng.normal(0.9, rr_sd, n // 40), 0.5, 1.5))
    t = t[t < n / FS - 0.3]
    beat = render_atoms(n, FS, t, np.ones(t.size), np.full(t.size, 0.03), np.full(t.size, 8.0),
                        0.15)
    return beat / beat.std(), t


def test_beat_synchronous_weights_match_a_slow_reference():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(400, 3))
    beats = np.array([10, 90, 185, 260, 350, 395])
    w, lam = beat_synchronous_weights(z, beats)
    # written out: every sample after beat k paired with the sample at the same latency after
    # beat k + 1, for as long as both inter-beat intervals (and the recording) last
    pairs = [(beats[k] + j, beats[k + 1] + j) for k in range(len(beats) - 2)
             for j in range(min(beats[k + 1] - beats[k], beats[k + 2] - beats[k + 1],
                                400 - beats[k + 1]))]
    cs = sum(np.outer(z[b], z[a]) for a, b in pairs) / len(pairs)
    cs = 0.5 * (cs + cs.T)
    c0 = z.T @ z / len(z)
    vals, vecs = linalg.eigh(cs, c0 + 1e-6 * np.trace(c0) / 3 * np.eye(3))
    assert lam == pytest.approx(vals[-1], rel=1e-9)
    assert abs(np.dot(w, vecs[:, -1])) / (np.linalg.norm(w) * np.linalg.norm(vecs[:, -1])) \
        == pytest.approx(1.0, abs=1e-9)
    assert beat_synchronous_weights(z, beats[:2]) == (pytest.approx(np.zeros(3)), 0.0)


def test_beat_locked_component_beats_a_fixed_lag_distractor():
    """Irregular RR (SD 90 ms) blurs a weak 8-Hz complex at any fixed lag; a narrow-band sway
    on another axis (period ~1.33 s, not the beat's) is more periodic at its own lag. With the
    beats known, the beat-synchronous weights pick the beat axis; the fixed-lag fusion does
    not."""
    n = 6000
    beat, t = _irregular_beats(n, 1)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(n, 4))
    x[:, 1] += 0.5 * beat
    sway = bandpass(rng.normal(size=(n, 1)), FS, [0.72, 0.78], order=4)[:, 0]  # period ~1.33 s
    x[:, 3] += 3.0 * sway / sway.std()
    x = bandpass(x, FS, [0.7, 15.0])
    z = standardise(x, np.ones_like(x, dtype=bool), window_bounds(n, FS, 5.0))
    w, lam = beat_synchronous_weights(z, np.round(t * FS))
    assert np.argmax(np.abs(w)) == 1 and lam > 0.1
    _, noise_lam = beat_synchronous_weights(rng.normal(size=(n, 4)), np.round(t * FS))
    assert noise_lam < 0.05  # noise: nothing repeats from beat to beat
    cfg = TrainConfig().fusion
    st = [window_statistics(z[s:e], FS, cfg) for s, e in window_bounds(n, FS, 5.0)]
    w_fixed = periodic_weights(np.stack([a[0] for a in st]), np.stack([a[1] for a in st]),
                               np.stack([a[2] for a in st]).max(axis=1) ** 4)
    assert np.argmax(np.abs(w_fixed)) == 3


def _first_fusion(x):
    n = len(x)
    bounds = window_bounds(n, FS, 5.0)
    m = np.ones_like(x, dtype=bool)
    z = standardise(x, m, bounds)
    st = [window_statistics(z[s:e], FS, TrainConfig().fusion) for s, e in bounds]
    w = periodic_weights(np.stack([a[0] for a in st]), np.stack([a[1] for a in st]),
                         np.stack([a[2] for a in st]).max(axis=1) ** 4)
    return {"fused": combine(z, m, w), "acc_clean": x, "bounds": bounds, "weights": w,
            "period_s": np.array([a[3] for a in st]), "axis_valid": m}


@pytest.mark.parametrize("seed", [0, 2, 4])
def test_fallback_finds_a_weak_beat_on_one_axis(seed):
    """Beat on axis 2 only (weak, RR SD 90 ms), noise elsewhere: the first fusion's SQI is low,
    the fallback refits, puts its weight on the beat axis and follows the beat more closely."""
    n = 6000
    beat, _ = _irregular_beats(n, seed)
    x = np.random.default_rng(seed).normal(size=(n, 6))
    x[:, 2] += 0.6 * beat
    fus = _first_fusion(bandpass(x, FS, [0.7, 15.0]))
    bounds = fus["bounds"]
    out, win = fused_with_fallback(fus, np.ones(n, dtype=bool), bounds,
                                   np.zeros(len(bounds), dtype=bool), FS, _fallback_on())
    assert out["refit"]
    share = lambda w: abs(w[2]) / np.linalg.norm(w)  # noqa: E731
    assert share(out["weights"]) > max(0.98, share(fus["weights"]))
    r = lambda s: abs(np.corrcoef(s, beat)[0, 1])  # noqa: E731
    assert r(out["fused"]) > r(fus["fused"])
    assert len(win["sqi"]) == len(bounds)


def test_fallback_leaves_a_clear_beat_unchanged():
    n = 6000
    beat, _ = _irregular_beats(n, 0)
    x = np.random.default_rng(0).normal(size=(n, 6))
    x[:, 2] += 1.5 * beat
    fus = _first_fusion(bandpass(x, FS, [0.7, 15.0]))
    bounds = fus["bounds"]
    out, _ = fused_with_fallback(fus, np.ones(n, dtype=bool), bounds,
                                 np.zeros(len(bounds), dtype=bool), FS, _fallback_on())
    assert not out["refit"]
    assert out["fused"] is fus["fused"] and out["weights"] is fus["weights"]


def test_clean_multi_axis_recording_is_not_refit():
    cfg = _fallback_on()
    sc = replace(cfg.sim, duration_s=30.0, fs_in=50.0, morphology="fixed",  # a clear BCG
                 channel=ChannelConfig(loss=0.1, burst=3.0))
    o = process(simulate(sc, 11), cfg, "b")
    assert not o["fusion"]["refit"]
    default = process(simulate(sc, 11), TrainConfig(), "b")  # the fallback off
    assert not default["fusion"]["refit"]
    np.testing.assert_array_equal(default["beats_all_s"], o["beats_all_s"])


def test_fallback_is_off_by_default_and_skips_rotating_recordings():
    n = 6000
    beat, _ = _irregular_beats(n, 0)
    x = np.random.default_rng(0).normal(size=(n, 6))
    x[:, 2] += 0.6 * beat  # the weak case the fallback refits when on
    fus = _first_fusion(bandpass(x, FS, [0.7, 15.0]))
    W = len(fus["bounds"])
    still, moving = np.zeros(W, dtype=bool), np.arange(W) % 2 == 0
    assert not fused_with_fallback(fus, np.ones(n, dtype=bool), fus["bounds"], still, FS,
                                   TrainConfig())[0]["refit"]
    assert not fused_with_fallback(fus, np.ones(n, dtype=bool), fus["bounds"], moving, FS,
                                   _fallback_on())[0]["refit"]


def _with_check(cfg: TrainConfig) -> TrainConfig:
    return replace(cfg, fusion=replace(cfg.fusion, refit_check=True))


def test_bud_agreement_matches_a_slow_reference():
    rng = np.random.default_rng(5)
    n = 3000
    x = bandpass(rng.normal(size=(n, 6)), FS, [0.7, 15.0])
    m = np.ones((n, 6), dtype=bool)
    m[100:400, :3] = False  # the left bud silent for 3 s
    m[2000:2100, 4] = False  # one right axis missing for 1 s
    x = x * m
    bounds = window_bounds(n, FS, 5.0)
    w = rng.normal(size=6)
    fus = {"acc_clean": x, "bounds": bounds, "weights": w, "axis_valid": m}
    # written out: standardise per window over delivered samples, each bud's weighted sum,
    # high-passed, then the plain correlation over the rows where all six axes delivered
    z = np.zeros_like(x)
    for s, e in bounds:
        for c in range(6):
            v = m[s:e, c]
            z[s:e, c] = x[s:e, c] / (np.sqrt((x[s:e, c][v] ** 2).mean()) + 1e-12)
    left = sum(w[c] * z[:, c] for c in range(3))
    right = sum(w[c] * z[:, c] for c in range(3, 6))
    both = m.all(axis=1)
    for hp in (0.0, 2.0):
        a, b = (highpass(left, FS, hp), highpass(right, FS, hp)) if hp else (left, right)
        ref = np.corrcoef(a[both], b[both])[0, 1]
        assert bud_agreement(fus, FS, hp) == pytest.approx(ref, rel=1e-9, abs=1e-12)
    assert np.isnan(bud_agreement({**fus, "weights": np.r_[w[:3], 0, 0, 0]}, FS))
    few = m.copy()
    few[31:] = False
    assert np.isnan(bud_agreement({**fus, "axis_valid": few}, FS))


def test_bud_agreement_separates_a_shared_beat_from_each_bud_s_noise():
    n = 6000
    beat, _ = _irregular_beats(n, 3)
    x = np.random.default_rng(3).normal(size=(n, 6))
    x[:, 1] += 0.5 * beat  # the BCG moves the head: both buds carry it
    x[:, 4] += 0.5 * beat
    fus = _first_fusion(bandpass(x, FS, [0.7, 15.0]))
    on_beat = {**fus, "weights": np.array([0, 1.0, 0, 0, 1.0, 0])}
    on_noise = {**fus, "weights": np.array([1.0, 0, 0, 1.0, 0, 0])}
    assert bud_agreement(on_beat, FS, 2.0) > 0.1
    assert abs(bud_agreement(on_noise, FS, 2.0)) < 0.05


@pytest.mark.parametrize("seed", [0, 2, 4])
def test_refit_check_keeps_a_refit_that_finds_a_shared_weak_beat(seed):
    """A weak beat on one axis of each bud, RR SD 90 ms: the refit finds it, the buds' parts
    agree better, so the check keeps it."""
    n = 6000
    beat, _ = _irregular_beats(n, seed)
    x = np.random.default_rng(seed).normal(size=(n, 6))
    x[:, 2] += 0.3 * beat
    x[:, 4] += 0.3 * beat
    fus = _first_fusion(bandpass(x, FS, [0.7, 15.0]))
    bounds = fus["bounds"]
    out, _ = fused_with_fallback(fus, np.ones(n, dtype=bool), bounds,
                                 np.zeros(len(bounds), dtype=bool), FS,
                                 _with_check(_fallback_on()))
    assert out["refit"] and not out.get("refit_declined", False)
    r = lambda s: abs(np.corrcoef(s, beat)[0, 1])  # noqa: E731
    assert r(out["fused"]) > r(fus["fused"])


def test_refit_check_declines_a_refit_on_wrong_beats(monkeypatch):
    """The refit fitted to beats that are not the heartbeat's (random times) locks each bud's
    noise to them; its buds agree less than the first fusion's, so the check keeps the first
    fusion. Without the check the wrong refit is taken (asserted first)."""
    n = 6000
    beat, _ = _irregular_beats(n, 1)
    x = np.random.default_rng(1).normal(size=(n, 6))
    x[:, 2] += 0.3 * beat
    x[:, 4] += 0.3 * beat
    fus = _first_fusion(bandpass(x, FS, [0.7, 15.0]))
    bounds = fus["bounds"]
    wrong = np.sort(np.random.default_rng(7).uniform(0.5, n / FS - 0.5, 60))
    real = pipeline.refit_on_beats
    monkeypatch.setattr(pipeline, "refit_on_beats",
                        lambda f, fs, find_beats: real(f, fs, lambda sig: wrong))
    args = (np.ones(n, dtype=bool), bounds, np.zeros(len(bounds), dtype=bool), FS)
    taken, _ = fused_with_fallback(fus, *args, _fallback_on())
    assert taken["refit"]
    assert bud_agreement(taken, FS, 2.0) < bud_agreement(fus, FS, 2.0)
    kept, _ = fused_with_fallback(fus, *args, _with_check(_fallback_on()))
    assert not kept["refit"] and kept["refit_declined"]
    assert kept["fused"] is fus["fused"] and kept["weights"] is fus["weights"]


def test_refit_check_is_off_by_default():
    assert TrainConfig().fusion.refit_check is False


def test_weak_stratum_redraws_only_the_bcg_amplitude(tmp_path):
    from twscardio.data import subject_recording
    from twscardio.experiments.refit_check import main as refit_check_main
    from twscardio.experiments.refit_check import weak_recording

    sc = replace(TrainConfig().sim, duration_s=10.0, fs_in=50.0,
                 channel=ChannelConfig(loss=0.1, burst=3.0))
    plain = subject_recording(sc, 123, randomised=True)
    same = weak_recording(sc, 123, None)
    np.testing.assert_array_equal(plain["left"]["acc"], same["left"]["acc"])
    weak = weak_recording(sc, 123, (0.5, 1.5))
    assert 0.5 <= weak["subject"]["bcg_mg"] <= 1.5
    assert {k for k in plain["subject"] if not np.array_equal(plain["subject"][k],
                                                              weak["subject"][k])} == {"bcg_mg"}
    np.testing.assert_array_equal(plain["truth"]["r_s"], weak["truth"]["r_s"])
    out = tmp_path / "rc.json"
    with pytest.raises(SystemExit) as e:
        from shared.cli import run
        run(refit_check_main, ["--weak-mg", "2", "1", "--subjects", "0", "--weak", "0",
                               "--no-beat", "0", "--out", str(out)])
    assert e.value.code == 2 and not out.exists()
