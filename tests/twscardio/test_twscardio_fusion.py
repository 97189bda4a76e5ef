"""Motion handling: gyro-referenced cancellation and quality-weighted fusion recover a planted
signal; SQI and autocorrelation against slow references."""

import numpy as np

from twscardio.config import FusionConfig
from twscardio.fusion import (
    autocorrelation,
    bandpass,
    cancel_motion,
    fuse,
    motion_regressors,
    signal_quality,
)
from twscardio.simulator import render_atoms

FS = 100.0


def _beats(n, period=0.8, seed=0):
    rng = np.random.default_rng(seed)
    t = np.cumsum(period + rng.normal(0, 0.01, int(n / FS / period) + 2))
    return render_atoms(n, FS, t, np.ones(t.size), np.full(t.size, 0.04), np.full(t.size, 5.0),
                        0.2)


def _rigid_motion(n, seed):
    rng = np.random.default_rng(seed)
    w = bandpass(rng.normal(size=(n, 3)), FS, [0.3, 3.0]) * 1.5  # ~1 rad/s peaks
    wdot = np.gradient(w, axis=0) * FS
    p = np.array([0.075, 0.01, 0.1])
    acc = (np.cross(wdot, p) + np.cross(w, np.cross(w, p))) / 9.81
    return w, acc


def test_autocorrelation_matches_slow_reference():
    x = np.random.default_rng(0).normal(size=(64, 2))
    ac = autocorrelation(x)
    xc = x - x.mean(0)
    for c in range(2):
        ref = np.array([np.dot(xc[k:, c], xc[:64 - k, c]) / (64 - k) for k in range(64)])
        assert np.allclose(ac[:, c], ref / ref[0])


def test_sqi_ranks_periodic_above_noise():
    n = 500
    s = _beats(n)
    x = np.stack([s + 0.1 * np.random.default_rng(1).normal(size=n),
                  np.random.default_rng(2).normal(size=n)], axis=1)
    sqi, period = signal_quality(x, FS, [0.4, 1.5])
    assert sqi[0] > 0.7 > 0.3 > sqi[1]
    assert abs(period[0] - 0.8) < 0.03


def test_canceller_removes_planted_rigid_motion():
    n = 2000
    w, acc = _rigid_motion(n, 3)
    motion_only, _ = cancel_motion(acc, motion_regressors(w, FS), ridge=0.0)
    assert np.abs(motion_only).max() < 1e-9 * np.abs(acc).max() + 1e-12  # exact rigid model
    bcg = 0.002 * _beats(n)[:, None] * np.array([[0.2, 0.3, 1.0]])
    res, coef = cancel_motion(acc + bcg, motion_regressors(w, FS))
    before = np.corrcoef((acc + bcg)[:, 2], bcg[:, 2])[0, 1]
    ref = bandpass(bcg, FS, [0.7, 15])
    after = np.corrcoef(bandpass(res, FS, [0.7, 15])[:, 2], ref[:, 2])[0, 1]
    assert np.abs(acc).max() > 5 * np.abs(bcg).max()  # motion dominates the raw signal
    assert before < 0.5 and after > 0.95
    assert coef.shape == (12, 3)


def test_fusion_recovers_planted_common_mode_signal():
    n = 3000
    rng = np.random.default_rng(4)
    s = _beats(n, seed=5)
    s /= s.std()
    load = rng.normal(size=6)  # the signal's projection on each axis (both buds)
    sd = np.array([0.5, 2.0, 3.0, 0.7, 2.5, 3.0])
    noise = rng.normal(size=(n, 6)) * sd
    acc = (s[:, None] * load[None, :] + bandpass(noise, FS, [0.7, 15])) * 1e-3
    X = np.zeros((n, 12))
    X[:, 0:3], X[:, 6:9] = acc[:, :3], acc[:, 3:]
    out = fuse(X, np.ones((n, 2), bool), FS, FusionConfig())
    ref = bandpass(s, FS, [0.7, 15])
    r_fused = abs(np.corrcoef(out["fused"], ref)[0, 1])
    r_axes = [abs(np.corrcoef(out["acc_clean"][:, i], ref)[0, 1]) for i in range(6)]
    # reference: maximum-ratio combining with the true loadings and noise levels (an oracle)
    oracle = out["acc_clean"] @ (load / sd ** 2)
    r_oracle = abs(np.corrcoef(oracle, ref)[0, 1])
    assert r_fused > max(r_axes) + 0.01 and r_fused > r_oracle - 0.02
    assert out["rejected"].shape == (6,) and not out["rejected"].any()


def test_fusion_survives_one_bud_missing():
    n = 2000
    s = _beats(n, seed=6)
    X = np.zeros((n, 12))
    X[:, 0:3] = s[:, None] * [1.0, 0.5, 0.2] * 1e-3
    X[:, 6:9] = s[:, None] * [0.3, 1.0, 0.4] * 1e-3
    X += np.random.default_rng(7).normal(size=X.shape) * 2e-4
    mask = np.ones((n, 2), bool)
    mask[500:900, 0] = False  # the left bud drops out for 4 s
    out = fuse(X, mask, FS, FusionConfig())
    ref = bandpass(s, FS, [0.7, 15])
    assert np.corrcoef(out["fused"][500:900], ref[500:900])[0, 1] > 0.9


def _head_bcg(n, f0, zeta, flow_a, flow_b, seed):
    """Ejection force (derivative of a u^a (1-u)^b flow pulse per beat) through a 2nd-order head
    response: the first lobe of each complex is positive."""
    from scipy import signal as sps

    rng = np.random.default_rng(seed)
    ao = np.cumsum(0.8 + rng.normal(0, 0.03, int(n / FS / 0.8) + 2))
    t = np.arange(n) / FS
    k = np.clip(np.searchsorted(ao, t, side="right") - 1, 0, ao.size - 1)
    u = (t - ao[k]) / 0.3
    q = np.where((u >= 0) & (u < 1), np.clip(u, 0, 1) ** flow_a * (1 - np.clip(u, 0, 1)) ** flow_b,
                 0.0)
    w0 = 2 * np.pi * f0
    b, a = sps.bilinear([w0 ** 2], [1, 2 * zeta * w0, w0 ** 2], fs=FS)
    return sps.lfilter(b, a, np.gradient(q) * FS)


def test_onset_polarity_follows_the_first_lobe_where_skewness_does_not():
    from scipy import stats

    from twscardio.fusion import onset_polarity

    rng = np.random.default_rng(3)
    skew_right = []
    for i, (f0, zeta, fa, fb) in enumerate([(3.0, 0.6, 2.5, 2.0), (4.0, 0.2, 1.5, 3.0),
                                            (6.0, 0.4, 1.0, 4.0), (9.0, 0.15, 2.0, 2.5),
                                            (5.0, 0.5, 2.4, 2.1), (8.0, 0.3, 1.2, 3.5)]):
        x = _head_bcg(3000, f0, zeta, fa, fb, i)
        x = x / x.std() + 0.1 * rng.normal(size=x.size)
        for sign in (1.0, -1.0):
            assert onset_polarity(sign * x, FS, 0.8) == sign, (f0, zeta, fa, fb, sign)
            skew_right.append(np.sign(stats.skew(sign * x)) == sign)
    assert not all(skew_right)  # the skewness rule (the old one) gets some of these wrong


def test_fused_bcg_has_the_sign_of_the_planted_bcg():
    """Whole-recording fusion on the randomised simulator family: the fused signal correlates
    positively with the true (noise-free, head-frame longitudinal) BCG for every subject."""
    from twscardio.config import TrainConfig
    from twscardio.pipeline import prepare
    from twscardio.simulator import simulate

    cfg = TrainConfig()  # randomised family
    from dataclasses import replace

    sim = replace(cfg.sim, duration_s=20.0)
    for seed in range(6):
        rec = simulate(replace(sim, fs_in=[25.0, 50.0][seed % 2]), 1000 + seed)
        prep = prepare(rec, cfg, baseline=False)
        fused = fuse(prep["X"], prep["mask"], FS, cfg.fusion)["fused"]
        assert np.corrcoef(fused, rec["truth"]["bcg"][:fused.size])[0, 1] > 0.3, seed
