"""The cross-bud term of the fusion (`fusion.cross_bud_covariance`, `fusion.cross_bud`): a slow
reference for the covariance, the first canonical correlation in closed form, and a planted
weak beat common to both buds that a bud-own periodic sway hides from the beat-lag fusion."""

from dataclasses import replace

import numpy as np
import pytest
from scipy import linalg

from twscardio.config import TrainConfig
from twscardio.experiments.cross_bud import add_breathing_sway
from twscardio.fusion import (
    bandpass,
    combine,
    cross_bud_covariance,
    periodic_weights,
    standardise,
    window_bounds,
    window_statistics,
)
from twscardio.pipeline import process
from twscardio.simulator import render_atoms, simulate

FS = 100.0


def test_cross_bud_covariance_matches_a_slow_reference():
    z = np.random.default_rng(0).normal(size=(200, 6))
    got = cross_bud_covariance(z, spread=2)
    ref = np.zeros((6, 6))
    for i in range(3):
        for j in range(3, 6):
            vals = []
            for lag in range(-2, 3):  # E[z_i(t + lag) z_j(t)] over the overlapping samples
                pairs = [z[t + lag, i] * z[t, j] for t in range(200) if 0 <= t + lag < 200]
                vals.append(sum(pairs) / len(pairs))
            ref[i, j] = ref[j, i] = np.mean(vals)
    assert np.allclose(got, ref, atol=1e-12)
    assert np.all(got[:3, :3] == 0) and np.all(got[3:, 3:] == 0)


def test_cross_bud_weights_are_the_first_canonical_pair():
    """With the beat-lag term left out, the fusion weights are the first canonical pair of the
    two buds (closed form: SVD of C_LL^-1/2 C_LR C_RR^-1/2) and the pencil's top eigenvalue is
    rho / (1 + rho), rho the first canonical correlation."""
    rng = np.random.default_rng(1)
    n = 4000
    s = rng.normal(size=n)
    z = rng.normal(size=(n, 6)) + np.outer(s, [1.0, -0.5, 0.2, 0.3, 0.8, -1.0])
    z -= z.mean(axis=0)
    c0 = z.T @ z / n
    cx = cross_bud_covariance(z, spread=0)
    w = periodic_weights(c0[None], np.zeros((1, 6, 6)), np.ones(1), cx[None], cross_bud=1.0)
    ill, irr = linalg.inv(linalg.sqrtm(c0[:3, :3])), linalg.inv(linalg.sqrtm(c0[3:, 3:]))
    u, sv, vt = linalg.svd(ill @ c0[:3, 3:] @ irr)
    a, b = ill @ u[:, 0], irr @ vt[0]
    ref = np.concatenate([a, b])
    cos = abs(w @ ref) / (np.linalg.norm(w) * np.linalg.norm(ref))
    assert cos > 0.9999
    lam = (w @ cx @ w) / (w @ c0 @ w)
    assert lam == pytest.approx(sv[0] / (1 + sv[0]), rel=1e-6)


def _planted(seed: int):
    """A weak 8-Hz complex at irregular RR (SD 90 ms) on one axis of each bud, white noise on
    every axis, and on another axis of each bud its own narrow-band sway (periods ~1.33 s and
    ~0.88 s, independent between buds: each more periodic at its lag than the blurred beat)."""
    rng = np.random.default_rng(seed)
    n = 6000
    t = 0.3 + np.cumsum(np.clip(rng.normal(0.9, 0.09, n // 40), 0.5, 1.5))
    t = t[t < n / FS - 0.3]
    beat = render_atoms(n, FS, t, np.ones(t.size), np.full(t.size, 0.03), np.full(t.size, 8.0),
                        0.15)
    beat = beat / beat.std()
    x = rng.normal(size=(n, 6))
    x[:, 1] += 0.6 * beat
    x[:, 4] -= 0.6 * beat
    for axis, band in ((0, [0.72, 0.78]), (3, [1.10, 1.16])):
        sway = bandpass(rng.normal(size=(n, 1)), FS, band, order=4)[:, 0]
        x[:, axis] += 3.0 * sway / sway.std()
    x = bandpass(x, FS, [0.7, 15.0])
    return standardise(x, np.ones_like(x, dtype=bool), window_bounds(n, FS, 5.0)), beat


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cross_bud_term_recovers_a_beat_the_beat_lag_fusion_misses(seed):
    z, beat = _planted(seed)
    cfg = TrainConfig().fusion
    bounds = window_bounds(len(z), FS, 5.0)
    st = [window_statistics(z[s:e], FS, cfg) for s, e in bounds]
    c0s, cts = np.stack([a[0] for a in st]), np.stack([a[1] for a in st])
    q = np.stack([a[2] for a in st]).max(axis=1) ** 4
    cxs = np.stack([cross_bud_covariance(z[s:e]) for s, e in bounds])
    m = np.ones_like(z, dtype=bool)
    r = {}
    for wgt in (0.0, 4.0):
        w = periodic_weights(c0s, cts, q, cxs, cross_bud=wgt)
        r[wgt] = abs(np.corrcoef(combine(z, m, w), beat)[0, 1])
        share = np.abs(w[[1, 4]]).sum() / np.abs(w).sum()
        if wgt == 0.0:
            assert share < 0.5  # the sways win the beat-lag criterion
        else:
            assert share > 0.8
    assert r[4.0] > r[0.0] + 0.5


def test_cross_bud_off_leaves_the_fusion_unchanged():
    """cross_bud 0 (the default) gives the same beats as the fusion without the term; any
    positive weight runs the term (a different fusion on this recording)."""
    cfg = replace(TrainConfig(), sim=replace(TrainConfig().sim, duration_s=20.0))
    rec = simulate(cfg.sim, seed=3)
    base = process(rec, cfg, "b")
    assert cfg.fusion.cross_bud == 0.0
    on = process(rec, replace(cfg, fusion=replace(cfg.fusion, cross_bud=4.0)), "b")
    assert not np.allclose(on["fusion"]["weights"], base["fusion"]["weights"])
    again = process(rec, replace(cfg, fusion=replace(cfg.fusion, cross_bud=0.0)), "b")
    assert np.array_equal(again["beats_all_s"], base["beats_all_s"])


def test_breathing_sway_is_one_waveform_common_to_both_buds():
    """The probe's stress variant adds, per bud, one waveform along one direction (rank 1),
    the same waveform in both buds (|r| = 1 on common timestamps), with in-band harmonics:
    breathing at 0.2-0.35 Hz puts power above 0.7 Hz, which a sinusoid would not."""
    t = np.arange(0, 60, 0.02)
    rec = {s: {"relative_time": t, "acc": np.zeros((t.size, 3)), "gyro": np.zeros((t.size, 3))}
           for s in ("left", "right")}
    out = add_breathing_sway(rec, seed=5)
    assert np.all(rec["left"]["acc"] == 0)  # the input is not modified
    d = {s: out[s]["acc"] - rec[s]["acc"] for s in ("left", "right")}
    for s in d:
        sv = np.linalg.svd(d[s], compute_uv=False)
        assert sv[1] < 1e-9 * sv[0] and 1e-3 <= np.abs(d[s]).max() <= 3e-3 + 1e-12
    u = [np.linalg.svd(d[s], full_matrices=False)[0][:, 0] for s in d]
    assert abs(np.corrcoef(u[0], u[1])[0, 1]) == pytest.approx(1.0, abs=1e-9)
    spec = np.abs(np.fft.rfft(u[0])) ** 2
    f = np.fft.rfftfreq(t.size, 0.02)
    assert spec[f > 0.7].sum() > 0.02 * spec.sum()
