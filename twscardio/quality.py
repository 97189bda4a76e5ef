"""Per-window signal-quality index (SQI) and "no reliable beat" rejection (paper sec. 2.2.3).

Four features per `window_s` window, each in [0, 1] (reconstructed: the paper names SQI-based
rejection but not its features):

* `template` - median Pearson r of the window's beats (peaks >= 0.6 period apart, +-min(0.3 s,
  0.45 period)) with their median beat: heartbeats repeat, noise peaks do not;
* `periodicity` - envelope autocorrelation at the octave-checked beat period
  (`beats.beat_period`);
* `cross_bud` - first canonical correlation between the left and the right bud's three
  band-passed axes: the BCG is one head vector seen by both buds (common mode), sensor noise
  and a bud out of the ear are not;
* `cross_axis` - share of the six axes (weighted by their own envelope periodicity) whose
  envelope period agrees with the window's beat period within 12 %.

A fifth check judges the beats actually found rather than the signal (`beat_consistency`): the
median Pearson r of the window's beats (window +- `context_s`) with the recording's median
beat. A beat detector always returns *some* beats; on a signal with no heartbeat they are noise
peaks, which resemble their own average far less than heartbeats do (reconstructed; the
threshold `QualityConfig.min_beat_r` is chosen on validation subjects,
`python -m twscardio.experiments.beat_consistency`).

`sqi = sigmoid(b + w . features)` is calibrated (logistic regression, `QualityConfig`) to the
probability that a window carries beats, fitted on the training simulator's clean windows
against its pure-noise and no-contact windows (`python -m twscardio.experiments.calibrate_sqi`);
windows with sqi < threshold are "no reliable beat": no HR, no beats.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal, stats

from twscardio.beats import beat_period
from twscardio.config import QualityConfig
from twscardio.fusion import autocorrelation

__all__ = ["FEATURES", "NO_BEAT", "template_correlation", "cross_bud_agreement",
           "cross_axis_agreement", "window_features", "sqi_probability", "beat_consistency",
           "assess_windows"]

FEATURES = ["template", "periodicity", "cross_bud", "cross_axis"]
NO_BEAT = "no reliable beat"


def template_correlation(x: np.ndarray, fs: float, period_s: float) -> float:
    """Median r of each beat (x (n,), peaks >= 0.6 period apart) with the median beat; 0 if < 3."""
    idx, _ = signal.find_peaks(x, distance=max(1, int(0.6 * period_s * fs)))
    h = int(min(0.3, 0.45 * period_s) * fs)
    idx = idx[(idx >= h) & (idx + h < len(x))]
    if idx.size < 3 or h < 2:
        return 0.0
    seg = x[idx[:, None] + np.arange(-h, h + 1)[None, :]]
    seg = seg - seg.mean(axis=1, keepdims=True)
    seg = seg / (np.linalg.norm(seg, axis=1, keepdims=True) + 1e-12)
    tmpl = np.median(seg, axis=0)
    tmpl = tmpl / (np.linalg.norm(tmpl) + 1e-12)
    return float(np.clip(np.median(seg @ tmpl), 0.0, 1.0))


def cross_bud_agreement(z: np.ndarray, valid: np.ndarray, ridge: float = 1e-3) -> float:
    """First canonical correlation of z[:, :3] (left) and z[:, 3:] (right) over rows where both
    buds are valid (n, 6), (n,) bool. NaN with fewer than 32 such rows."""
    v = np.asarray(valid, dtype=bool)
    if v.sum() < 32:
        return float("nan")
    a, b = z[v, :3], z[v, 3:]
    a = a - a.mean(0)
    b = b - b.mean(0)
    n = len(a)

    def whiten(m):
        c = m.T @ m / n
        c = c + (ridge * np.trace(c) / 3 + 1e-12) * np.eye(3)
        return np.linalg.inv(np.linalg.cholesky(c))

    k = whiten(a) @ (a.T @ b / n) @ whiten(b).T
    return float(np.clip(np.linalg.svd(k, compute_uv=False)[0], 0.0, 1.0))


def _envelopes(z: np.ndarray, fs: float, smooth_s: float = 0.15) -> np.ndarray:
    env = np.abs(signal.hilbert(z, axis=0))
    return ndimage.uniform_filter1d(env, max(1, int(round(smooth_s * fs))), axis=0)


def cross_axis_agreement(z: np.ndarray, fs: float, period_s: float,
                         period_range: list[float], tol: float = 0.12) -> float:
    """Periodicity-weighted share of axes (z (n, C)) whose envelope period is within tol of
    period_s."""
    ac = autocorrelation(_envelopes(z, fs))
    lo = int(round(period_range[0] * fs))
    hi = min(int(round(period_range[1] * fs)), z.shape[0] // 2)
    if hi <= lo:
        return 0.0
    k = lo + np.argmax(ac[lo:hi + 1], axis=0)
    w = np.clip(ac[k, np.arange(z.shape[1])], 0.0, 1.0)
    agree = np.abs(k / fs - period_s) <= tol * period_s
    return float((w * agree).sum() / (w.sum() + 1e-12))


def window_features(sig: np.ndarray, axes: np.ndarray, both_valid: np.ndarray,
                    bounds: np.ndarray, fs: float, period_range: list[float]) -> dict:
    """Per-window SQI features and beat periods.

    sig (T,) the arm's beat signal (fused BCG, or the single axis), axes (T, 6) band-passed
    accel axes [L xyz, R xyz], both_valid (T,) rows where both buds delivered, bounds (W, 2).
    Returns {"features" (W, 4) in FEATURES order (cross_bud NaN where a bud is missing),
    "period_s" (W,)}.
    """
    W = len(bounds)
    feats = np.zeros((W, len(FEATURES)))
    period = np.full(W, np.nan)
    x = np.asarray(sig, dtype=np.float64)
    if stats.skew(x) < 0:
        x = -x
    for k, (s, e) in enumerate(bounds):  # loop over 5-s windows, not samples
        seg = x[s:e]
        if e - s < 2 * fs or np.ptp(seg) == 0:
            feats[k] = [0.0, 0.0, np.nan, 0.0]
            continue
        p, strength = beat_period(seg, fs, *period_range)
        z = axes[s:e]
        z = (z - z.mean(0)) / (z.std(0) + 1e-12)
        feats[k] = [template_correlation(seg, fs, p), strength,
                    cross_bud_agreement(z, both_valid[s:e]),
                    cross_axis_agreement(z, fs, p, period_range)]
        period[k] = p
    return {"features": feats, "period_s": period}


def sqi_probability(features: np.ndarray, cfg: QualityConfig) -> np.ndarray:
    """Calibrated SQI (W,) = sigmoid(bias + weights . features); a missing cross-bud value
    (one bud absent) counts as `cfg.missing_cross_bud`."""
    f = np.array(features, dtype=np.float64)
    f[:, 2] = np.where(np.isfinite(f[:, 2]), f[:, 2], cfg.missing_cross_bud)
    z = cfg.bias + f @ np.asarray(cfg.weights, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-z))


def beat_consistency(sig: np.ndarray, beats_s: np.ndarray, bounds: np.ndarray, fs: float,
                     context_s: float = 7.5, half_s: float = 0.25) -> np.ndarray:
    """Per window (W,): median Pearson r of the beats in [start - context_s, stop + context_s)
    with the recording's median beat; 0 with fewer than 2 beats there.

    sig (T,) the beat signal, beats_s (B,) beat times (s, sample 0 = 0 s), bounds (W, 2). Each
    beat is sig[b - H : b + H + 1], H = round(half_s fs); beats too near an edge are skipped;
    the template is the median over all beats. Vectorised: (B, 2H + 1) gathers.
    """
    x = np.asarray(sig, dtype=np.float64)
    H, c = int(round(half_s * fs)), int(round(context_s * fs))
    b = np.round(np.sort(np.asarray(beats_s, dtype=np.float64)) * fs).astype(np.int64)
    b = b[(b >= H) & (b + H < len(x))]
    out = np.zeros(len(bounds))
    if b.size < 2:
        return out
    seg = x[b[:, None] + np.arange(-H, H + 1)[None, :]]
    seg = seg - seg.mean(axis=1, keepdims=True)
    tmpl = np.median(seg, axis=0)
    tmpl = tmpl - tmpl.mean()
    r = seg @ tmpl / (np.linalg.norm(seg, axis=1) * np.linalg.norm(tmpl) + 1e-12)  # (B,)
    lo = np.searchsorted(b, np.asarray(bounds)[:, 0] - c)
    hi = np.searchsorted(b, np.asarray(bounds)[:, 1] + c)
    for k in range(len(bounds)):  # a dozen windows per minute
        if hi[k] - lo[k] >= 2:
            out[k] = float(np.median(r[lo[k]:hi[k]]))
    return out


def assess_windows(sig: np.ndarray, axes: np.ndarray, both_valid: np.ndarray,
                   bounds: np.ndarray, fs: float, cfg: QualityConfig,
                   period_range: list[float], beats_s: np.ndarray | None = None) -> dict:
    """Features, calibrated sqi (W,), reliable (W,) bool, per-window HR (NaN if unreliable) and
    status ("ok" / NO_BEAT) for the arm's beat signal. Each window's features are computed over
    the window widened by `cfg.context_s` on both sides (clipped to the recording).

    With beats_s (the beats found on sig, s), a window is reliable only if its sqi reaches
    `cfg.threshold` *and* its `beat_consistency` ("beat_r" (W,), NaN without beats_s) reaches
    `cfg.min_beat_r`."""
    c, T = int(round(cfg.context_s * fs)), len(sig)
    ctx = np.stack([np.maximum(bounds[:, 0] - c, 0), np.minimum(bounds[:, 1] + c, T)], axis=1)
    wf = window_features(sig, axes, both_valid, ctx, fs, period_range)
    sqi = sqi_probability(wf["features"], cfg)
    reliable = sqi >= cfg.threshold
    beat_r = np.full(len(bounds), np.nan)
    if beats_s is not None:
        beat_r = beat_consistency(sig, beats_s, bounds, fs, cfg.context_s)
        if cfg.min_beat_r > 0:
            reliable &= beat_r >= cfg.min_beat_r
    hr = np.where(reliable, 60.0 / wf["period_s"], np.nan)
    return {"bounds": bounds, "features": wf["features"], "sqi": sqi, "beat_r": beat_r,
            "reliable": reliable, "period_s": wf["period_s"], "hr_bpm": hr,
            "status": ["ok" if r else NO_BEAT for r in reliable]}
