"""Beat-synchronous SCG (`twscardio.beatsync`): template rendering, median complex, timing
targets, the timing model and the arm (e) wiring, each against an explicit reference."""

import numpy as np
import pytest
import torch

from shared.errors import DataError
from twscardio.beatsync import (
    SCG_ATOMS,
    TimingModel,
    fit_timing,
    gyro_complex,
    load_timing,
    lvet_regression,
    median_complex,
    render_scg,
    save_timing,
    synchronous_scg,
    timing_targets,
)
from twscardio.config import SimConfig, TrainConfig
from twscardio.pipeline import process
from twscardio.simulator import simulate

FS = 100.0


def _slow_scg(n, fs, ao, ac):
    """The template by the Gabor formula, atom by atom, sample by sample."""
    out = np.zeros(n)
    for key, at in (("ao", ao), ("ac", ac)):
        for c0 in at:
            for off, a, f, sg in zip(*SCG_ATOMS[key]):
                for i in range(n):
                    tau = i / fs - (c0 + off)
                    if abs(tau) <= 0.08 + 0.5 / fs:
                        out[i] += a * np.exp(-0.5 * (tau / sg) ** 2) * np.cos(2 * np.pi * f * tau)
    return out


def test_render_scg_equals_the_gabor_formula():
    ao = np.array([0.3137, 1.1021, 1.9])
    ac = ao + np.array([0.29, 0.31, 0.28])
    got = render_scg(300, FS, ao, ac)
    want = _slow_scg(300, FS, ao, ac)
    # render_atoms cuts each atom at +-ceil(0.08 fs) samples around its rounded centre
    assert np.max(np.abs(got - want)) < 1e-3 * np.abs(want).max()
    assert np.allclose(render_scg(300, FS, ao, ac, amp=np.full(3, 2.0)), 2 * got)
    with pytest.raises(DataError, match="pair"):
        render_scg(300, FS, ao, ac[:2])


def test_blurred_template_is_the_average_of_shifted_ones_and_correlates_better_on_average():
    ao = np.array([0.5, 1.3])
    ac = ao + 0.3
    nodes, w = np.polynomial.hermite_e.hermegauss(7)
    base = render_scg(250, FS, ao + 9.0, ac + 9.0)  # far off the 2.5-s grid: nothing lands
    assert not base.any()
    # each wave group alone (the other moved off the grid), at each quadrature shift
    want = sum(wq / w.sum() * (render_scg(250, FS, ao + 0.004 * q, ac + 9.0)
                               + render_scg(250, FS, ao + 9.0, ac + 0.014 * q))
               for q, wq in zip(nodes, w))
    got = render_scg(250, FS, ao, ac, blur_s=(0.004, 0.014))
    assert np.allclose(got, want, atol=1e-9)
    # against truths whose AO/AC are off by N(0, 4 ms) / N(0, 14 ms), the blurred template's
    # mean correlation beats the sharp template's
    rng = np.random.default_rng(5)
    sharp, blur = render_scg(250, FS, ao, ac), got
    r = np.array([[np.corrcoef(x, render_scg(250, FS, ao + rng.normal(0, 0.004),
                                             ac + rng.normal(0, 0.014)))[0, 1]
                   for x in (sharp, blur)] for _ in range(200)])
    assert r[:, 1].mean() > r[:, 0].mean()


def test_median_complex_recovers_a_planted_complex_despite_outlier_beats():
    rng = np.random.default_rng(0)
    shape = np.sin(np.linspace(0, 3 * np.pi, 81)) * np.hanning(81)
    x = np.zeros(3000)
    beats = np.arange(1.0, 29.0, 0.9)
    for k, b in enumerate(beats):
        i = int(round(b * FS))
        x[i - 35:i + 46] += shape if k % 5 else rng.normal(0, 3, 81)  # every 5th beat garbage
    c = median_complex(x, beats, FS, 0.35, 0.45)
    want = (shape - shape.mean()) / shape.std()
    assert c.shape == (81,) and np.corrcoef(c, want)[0, 1] > 0.98
    with pytest.raises(DataError, match=">= 3 beats"):
        median_complex(x, np.array([0.1, 1.0, 29.9]), FS, 0.35, 0.45)  # two at the edges


def test_gyro_complex_is_orientation_free_and_signed_by_the_reference():
    """Each bud sees the rotational complex along its own unknown axis, with opposite signs;
    the result is the complex itself (z-scored), signed like the reference."""
    rng = np.random.default_rng(4)
    shape = np.sin(np.linspace(0, 2 * np.pi, 81)) * np.hanning(81)
    beats = np.arange(1.0, 19.0, 0.85)
    s = np.zeros(2000)
    for b in beats:
        i = int(round(b * FS))
        s[i - 35:i + 46] += shape
    d1, d2 = rng.normal(size=3), rng.normal(size=3)
    gyro = np.concatenate([np.outer(s, d1), -0.3 * np.outer(s, d2)], axis=1)
    gyro += rng.normal(0, 0.01, gyro.shape)
    want = (shape - shape.mean()) / shape.std()
    for ref_sign in (1, -1):
        g = gyro_complex(gyro, beats, FS, 0.35, 0.45, ref_sign * want)
        assert ref_sign * np.corrcoef(g, want)[0, 1] > 0.99


def test_timing_targets_are_the_planted_lag_and_lvet_offset():
    r = np.cumsum(np.full(40, 0.8))
    ao = r + 0.05
    hr = 60.0 / 0.8
    ac = ao + lvet_regression(hr) + 0.012
    j = ao + 0.123
    lag, off = timing_targets(j, {"ao_s": ao, "ac_s": ac, "r_s": r})
    assert lag == pytest.approx(0.123, abs=1e-9) and off == pytest.approx(0.012, abs=1e-9)


def test_lvet_regression_is_weissler():
    assert lvet_regression(np.array([60.0, 100.0])) == pytest.approx([0.311, 0.243])


def _constant_model(n_in, lag, off, members=1):
    m = TimingModel(n_in, 8, members)
    for p in m.nets.parameters():
        torch.nn.init.zeros_(p)
    m.y_mu.copy_(torch.tensor([lag, off]))
    return m.eval()


def test_synchronous_scg_places_the_template_at_j_minus_the_lag():
    rng = np.random.default_rng(1)
    j = np.cumsum(rng.uniform(0.7, 0.9, 30)) + 0.5
    fused = rng.normal(size=int(27 * FS))
    gyro = rng.normal(size=(fused.size, 6))
    m = _constant_model(163, 0.1, 0.01)
    o = synchronous_scg(fused, gyro, j, FS, m, 0.35, 0.45)
    assert np.allclose(o["ao_s"], j - 0.1, atol=1e-6)
    ibi = np.diff(o["ao_s"], prepend=o["ao_s"][0] - np.median(np.diff(o["ao_s"])))
    assert np.allclose(o["ac_s"], o["ao_s"] + lvet_regression(60 / ibi) + 0.01, atol=1e-6)
    assert np.allclose(o["scg"], render_scg(fused.size, FS, o["ao_s"], o["ac_s"]))
    empty = synchronous_scg(fused, gyro, j[:2], FS, m, 0.35, 0.45)
    assert empty["ao_s"].size == 0 and not empty["scg"].any()


def test_fit_timing_learns_where_a_planted_onset_sits():
    """Features: a bump whose position encodes the lag; the model must beat the best
    constant (the targets' median) by far on held-out rows."""
    rng = np.random.default_rng(2)
    n, L = 600, 81
    lag = rng.uniform(0.05, 0.25, n)
    t = np.arange(L)[None, :]
    X = np.exp(-0.5 * ((t - (35 - lag[:, None] * FS)) / 3.0) ** 2) + rng.normal(0, 0.05, (n, L))
    X = np.concatenate([X, np.full((n, 1), 1.2)], axis=1)
    Y = np.stack([lag, np.zeros(n)], axis=1)
    m = fit_timing(X[:500], Y[:500], hidden=32, epochs=60, members=2)
    err = np.abs(m.predict(X[500:])[:, 0] - lag[500:])
    x = torch.as_tensor(X[500:], dtype=torch.float32)
    with torch.no_grad():  # the ensemble is its members' mean
        assert torch.allclose(m(x), 0.5 * (m.member(0, x) + m.member(1, x)), atol=1e-6)
    const = np.abs(np.median(lag[:500]) - lag[500:])
    assert err.mean() < 0.25 * const.mean()
    with pytest.raises(DataError, match="usable"):
        fit_timing(np.full((3, 4), np.nan), np.zeros((3, 2)))


def test_timing_model_round_trip_and_bad_files(tmp_path):
    m = _constant_model(163, 0.1, 0.0, members=3)
    save_timing(m, tmp_path / "t.safetensors", {"note": 1})
    m2, info = load_timing(tmp_path / "t.safetensors")
    x = np.random.default_rng(3).normal(size=(4, 163))
    assert np.allclose(m.predict(x), m2.predict(x)) and info["note"] == 1
    (tmp_path / "bad.safetensors").write_bytes(b"not a model")
    with pytest.raises(DataError):
        load_timing(tmp_path / "bad.safetensors")
    with pytest.raises(DataError):
        load_timing(tmp_path / "missing.safetensors")


def test_arm_e_needs_a_timing_model_and_times_beats_before_j():
    rec = simulate(SimConfig(duration_s=12.0), 0)
    cfg = TrainConfig()
    with pytest.raises(DataError, match="timing model"):
        process(rec, cfg, "e")
    o = process(rec, cfg, "e", _constant_model(163, 0.1, 0.0))
    assert np.allclose(o["ao_s"], np.sort(o["j_s"]) - 0.1)
    assert o["scg"].shape == o["fusion"]["fused"].shape and np.abs(o["scg"]).max() > 0.5
