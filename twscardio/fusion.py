"""Motion handling by multi-axis fusion (paper sec. 2.2.3).

Stages on the uniform grid (fs, default 100 Hz), in `window_s` windows:

1. `cancel_motion` (the GyroReferencedCanceller): a rigid head rotating with angular velocity w
   moves a bud at lever arm p by dw/dt x p + w x (w x p), linear in dw/dt and in the products
   w_i w_j. Each accel axis is regressed on [w, dw/dt, w_i w_j] of its own bud's gyro plus a
   quadratic trend (ridge least squares per window over delivered samples only: the converged
   block form of NLMS) and the fit subtracted; gap fills are zeroed, never band-passed.
   Gated: windows with little rotation are only detrended, so at rest the BCG is kept whole.
2. `bandpass` 0.7-15 Hz (zero-phase Butterworth) of the residuals.
3. `signal_quality` (per-axis SQI): peak normalised autocorrelation at beat lags 0.4-1.5 s.
4. Quality-weighted periodic-component fusion over the 6 accel axes of both buds: the BCG
   direction in each bud's frame is fixed per subject, so one weight vector maximises
   sum_k q_k w^T Ct_k w / sum_k q_k w^T C0_k w over windows k (Ct at the window's beat lag,
   q_k = SQI^4: clean windows teach the geometry), `periodic_weights`. BCG is common-mode across
   buds; motion residue is not. Where a bud is missing, `combine` renormalises the weights.
   Option `method: pica`: periodic component analysis per window instead (`windowed_pica`,
   optionally shrunk towards the pooled statistics); measured on validation and not the
   default (results/twscardio/NOTES.md).
   Beat-synchronous refit (`beat_synchronous_weights`, `refit_on_beats`): a fixed beat lag
   loses the BCG's periodicity when the RR intervals vary by more than the waveform's own
   period (an 8-10 Hz complex decorrelates within +-50 ms of RR jitter), so in a weak,
   irregular recording noise may look more periodic than the beat. With beats found on a
   first fused signal, each beat is compared with the next at the *same latency after its
   own beat* (the time-varying period of Sameni et al. 2008, sec. III-B); `pipeline.process`
   uses it as the fallback of recordings whose SQI says the fused signal holds no beat.
5. Polarity (`onset_polarity`): the fused signal's sign is arbitrary (it is an eigenvector);
   it is set so that the first large lobe of the median beat complex is positive. Ejection
   starts abruptly, so the force's first lobe - the head's first response - keeps one sign
   under any head resonance or coupling; skewness does not (on 40 held-out subjects per family
   it agreed with the true BCG sign for 40 % (fixed) / 62 % (randomised), the first lobe for
   100 %: `python -m twscardio.experiments.polarity_check`).
   A consistent sign is what lets the network map BCG to a chest SCG of fixed polarity.
6. Rejection of unusable windows: high gyro RMS or low fused SQI.

`fuse(X, mask, fs, cfg)` takes X (T, 12) = [L acc, L gyro, R acc, R gyro] and mask (T, 2).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import linalg, ndimage, signal, stats

from twscardio.config import FusionConfig

__all__ = ["onset_polarity", "bandpass", "highpass", "motion_regressors", "cancel_motion",
           "autocorrelation", "signal_quality", "cross_bud_covariance",
           "window_statistics", "periodic_weights", "lagged_covariance", "pica_weights",
           "windowed_pica", "combine", "fuse", "best_axis", "window_bounds", "standardise",
           "beat_synchronous_weights", "refit_on_beats", "bud_agreement"]


@functools.lru_cache(maxsize=64)
def _butter_band(order: int, lo: float, hi: float, fs: float) -> np.ndarray:
    return signal.butter(order, [lo, hi], btype="band", fs=fs, output="sos")


def bandpass(x: np.ndarray, fs: float, band: list[float], order: int = 2) -> np.ndarray:
    """Zero-phase Butterworth band-pass along axis 0; the upper edge is capped at 0.45 fs."""
    sos = _butter_band(order, float(band[0]), float(min(band[1], 0.45 * fs)), float(fs))
    return signal.sosfiltfilt(sos, x, axis=0)


def highpass(x: np.ndarray, fs: float, f_hz: float, order: int = 2) -> np.ndarray:
    """Zero-phase Butterworth high-pass at `f_hz` along axis 0."""
    return signal.sosfiltfilt(signal.butter(order, f_hz, "highpass", fs=fs, output="sos"), x,
                              axis=0)


def motion_regressors(gyro: np.ndarray, fs: float) -> np.ndarray:
    """Rigid-body regressors [w (3), dw/dt (3), w_i w_j (6)]: gyro (n, 3) rad/s -> (n, 12)."""
    wdot = np.gradient(gyro, axis=0) * fs
    i, j = np.triu_indices(3)
    return np.concatenate([gyro, wdot, gyro[:, i] * gyro[:, j]], axis=1)


def cancel_motion(acc: np.ndarray, phi: np.ndarray, valid: np.ndarray | None = None,
                  ridge: float = 1e-5, gate: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """GyroReferencedCanceller on one window: acc (n, 3) g, phi (n, 12) `motion_regressors`.

    Ridge least squares of acc on [phi, 1, t, t^2] over the `valid` rows (n,) bool (delivered
    data, not gap fills); the residual is returned with invalid rows set to 0, so gap fills never
    reach the band-pass. With `gate` False (little rotation) only the polynomial trend is
    removed, so at rest the BCG is not regressed onto the gyro's tiny BCG component.
    Returns (residual (n, 3), coefficients on phi (12, 3)).
    """
    n = len(acc)
    v = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    u = np.linspace(-1, 1, n)[:, None]
    poly = np.concatenate([np.ones((n, 1)), u, u ** 2], axis=1)
    reg = np.concatenate([phi, poly], axis=1) if gate else poly
    if v.sum() < 2 * reg.shape[1]:
        return np.zeros_like(acc), np.zeros((phi.shape[1], acc.shape[1]))
    scale = reg[v].std(axis=0) + 1e-12
    scale[-3 if gate else 0] = 1.0  # the constant column
    zr = reg / scale
    gram = zr[v].T @ zr[v]
    lam = ridge * np.trace(gram) / gram.shape[0]
    coef = np.linalg.solve(gram + lam * np.eye(gram.shape[0]), zr[v].T @ acc[v])
    res = (acc - zr @ coef) * v[:, None]
    c = (coef / scale[:, None])[:phi.shape[1]] if gate else np.zeros((phi.shape[1], acc.shape[1]))
    return res, c


def autocorrelation(x: np.ndarray) -> np.ndarray:
    """Unbiased, lag-0-normalised autocorrelation per column via FFT: (n, C) -> (n, C)."""
    x = x - x.mean(axis=0, keepdims=True)
    n = x.shape[0]
    f = np.fft.rfft(x, n=2 * n, axis=0)
    ac = np.fft.irfft(f * np.conj(f), axis=0)[:n]
    ac = ac / (n - np.arange(n))[:, None]
    return ac / (ac[:1] + 1e-20)


def signal_quality(x: np.ndarray, fs: float, period_range: list[float]):
    """Per-axis SQI = peak autocorrelation at beat lags: (n, C) -> sqi (C,), period (C,) s."""
    ac = autocorrelation(x)
    lo = int(round(period_range[0] * fs))
    hi = min(int(round(period_range[1] * fs)), x.shape[0] // 2)
    seg = ac[lo:hi + 1]
    k = np.argmax(seg, axis=0)
    return np.clip(seg[k, np.arange(x.shape[1])], 0.0, 1.0), (lo + k) / fs


def window_statistics(z: np.ndarray, fs: float, cfg: FusionConfig):
    """Periodic-component statistics of one window of z-scored, masked axes z (n, C).

    Returns c0 (C, C) zero-lag and ct (C, C) beat-lag covariances (symmetrised, averaged over
    tau-2..tau+2 samples to absorb HRV), per-axis sqi (C,) and the beat period tau (s).
    """
    n, C = z.shape
    sqi, _ = signal_quality(z, fs, cfg.period_range_s)
    q = np.maximum(sqi, 0.02) ** 2
    ac = autocorrelation(z) @ q / q.sum()  # quality-weighted mean autocorrelation (n,)
    lo = int(round(cfg.period_range_s[0] * fs))
    hi = min(int(round(cfg.period_range_s[1] * fs)), n // 2)
    tau = lo + int(np.argmax(ac[lo:hi + 1]))
    c0 = z.T @ z / n
    ct = np.zeros((C, C))
    for lag in range(max(1, tau - 2), tau + 3):
        c = z[lag:].T @ z[:-lag] / (n - lag)
        ct += 0.1 * (c + c.T)
    return c0, ct, sqi, tau / fs


def cross_bud_covariance(z: np.ndarray, spread: int = 2) -> np.ndarray:
    """Cross-bud covariance of one window of z (n, 6) = [left 3 axes, right 3 axes]: the
    left-right blocks of the symmetrised covariance averaged over lags -spread..spread (bud
    timing offsets of a few samples), zero within each bud -> (6, 6).

    The BCG reaches both buds from one heart; sensor noise is independent per bud. For
    w = [a; b] and C0 the full zero-lag covariance, w^T Cx w / w^T C0 w = 2 p / (d + 2 p) with
    p = a^T C_LR b, d = a^T C_LL a + b^T C_RR b: a monotone function of the CCA objective
    2 p / d, so its maximiser is the buds' first canonical pair and its maximum rho / (1 + rho)
    (rho the first canonical correlation). Unlike the beat-lag covariance it does not
    decorrelate when the RR intervals vary."""
    n, C = z.shape
    h = C // 2
    c = z[:, :h].T @ z[:, h:] / n
    for t in range(1, spread + 1):
        if t < n:
            c = c + z[t:, :h].T @ z[:-t, h:] / (n - t) + z[:-t, :h].T @ z[t:, h:] / (n - t)
    c = c / (2 * spread + 1)
    out = np.zeros((C, C))
    out[:h, h:] = c
    out[h:, :h] = c.T
    return out


def periodic_weights(c0s: np.ndarray, cts: np.ndarray, quality: np.ndarray,
                     cxs: np.ndarray | None = None, cross_bud: float = 0.0) -> np.ndarray:
    """Fusion weights (C,): the top generalised eigenvector of sum_k q_k (Ct_k + cross_bud Cx_k)
    vs sum_k q_k C0_k.

    c0s, cts (W, C, C) per-window covariances (each window normalised to unit trace first, so a
    loud motion window does not dominate), quality (W,) >= 0; cxs (W, C, C) the cross-bud
    covariances (`cross_bud_covariance`), weighted by cross_bud (0: periodicity alone).
    """
    norm = np.trace(c0s, axis1=1, axis2=2)[:, None, None] + 1e-12
    q = quality[:, None, None]
    c0 = (q * c0s / norm).sum(axis=0)
    ct = (q * cts / norm).sum(axis=0)
    if cxs is not None and cross_bud > 0:
        ct = ct + cross_bud * (q * cxs / norm).sum(axis=0)
    C = c0.shape[0]
    # the floor keeps the pencil definite when some axes carry nothing (a dead sensor axis)
    _, vecs = linalg.eigh(ct, c0 + (1e-6 * np.trace(c0) / C + 1e-12) * np.eye(C))
    return vecs[:, -1]


def lagged_covariance(z: np.ndarray, lag: int, spread: int = 2) -> np.ndarray:
    """Symmetrised lagged covariance of z (n, C), averaged over lags lag-spread..lag+spread:
    (1 / (2 s + 1)) sum_tau (C_tau + C_tau^T) / 2 with C_tau = E[z(t + tau) z(t)^T] -> (C, C).
    The average absorbs beat-to-beat variability of the period."""
    n, C = z.shape
    out = np.zeros((C, C))
    lags = [t for t in range(lag - spread, lag + spread + 1) if 0 < t < n]
    for t in lags:
        c = z[t:].T @ z[:-t] / (n - t)
        out += 0.5 * (c + c.T)
    return out / max(len(lags), 1)


def pica_weights(z: np.ndarray, lags, spread: int = 2,
                 prior: tuple[np.ndarray, np.ndarray] | None = None,
                 ) -> tuple[np.ndarray, float, int]:
    """Periodic component analysis (Saul & Allen 2005; Sameni et al. 2008) of one window.

    z (n, C) standardised axes; for each candidate beat lag T in `lags` (samples) the weights
    minimising the periodicity error E|y(t + T) - y(t)|^2 / 2 E|y|^2 of y = z w solve
    (C_0 - (C_T + C_T^T) / 2) w = lambda C_0 w, smallest lambda; the lag with the smallest
    lambda (the most periodic component) wins. `prior` (P0, PT) is added to both sides,
    (C_0 + P0 - C_T - PT) w = lambda (C_0 + P0) w: shrinkage towards pooled statistics.
    Returns (w (C,) unit norm, lambda, T).
    """
    n, C = z.shape
    c0 = z.T @ z / n
    c0 = c0 + (1e-6 * np.trace(c0) / C + 1e-12) * np.eye(C)  # dead axes keep it definite
    p0, pt = prior if prior is not None else (np.zeros((C, C)), np.zeros((C, C)))
    best = (np.zeros(C), np.inf, 0)
    for lag in lags:
        lam, vec = linalg.eigh(c0 + p0 - lagged_covariance(z, int(lag), spread) - pt, c0 + p0,
                               subset_by_index=[0, 0])
        if lam[0] < best[1]:
            best = (vec[:, 0] / (np.linalg.norm(vec[:, 0]) + 1e-20), float(lam[0]), int(lag))
    return best


def windowed_pica(z: np.ndarray, bounds: np.ndarray, fs: float, cfg: FusionConfig,
                  taus: np.ndarray | None = None,
                  prior: tuple[np.ndarray, np.ndarray] | None = None,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """`pica_weights` per window (each window's statistics over +-cfg.pica_context_s more), the
    lag scanned over cfg.period_range_s or, with cfg.pica_period "window", taken from `taus`
    (W,) s. An eigenvector's sign is arbitrary: every window's w is turned towards the
    principal direction of all windows' weights (sum_k (1 - lambda_k) w_k w_k^T, sign-free).
    `prior` (P0, PT): pooled statistics each window is shrunk towards (`pica_weights`).
    Returns weights (W, C) and the periodicity 1 - lambda (W,)."""
    n, C = z.shape
    ctx = int(round(cfg.pica_context_s * fs))
    lo = int(round(cfg.period_range_s[0] * fs))
    W = len(bounds)
    ws, per = np.zeros((W, C)), np.zeros(W)
    for k, (s, e) in enumerate(bounds):
        seg = z[max(0, s - ctx):min(n, e + ctx)]
        hi = min(int(round(cfg.period_range_s[1] * fs)), len(seg) // 2)
        lags = (range(lo, max(hi, lo) + 1) if cfg.pica_period == "scan" or taus is None
                else [int(round(taus[k] * fs))])
        ws[k], lam, _ = pica_weights(seg, lags, prior=prior)
        per[k] = 1.0 - lam
    q = np.clip(per, 0.0, None)
    u = linalg.eigh((q[:, None, None] * ws[:, :, None] * ws[:, None, :]).sum(axis=0))[1][:, -1]
    ws *= np.where(ws @ u < 0, -1.0, 1.0)[:, None]
    return ws, per


def combine(z: np.ndarray, m: np.ndarray, w: np.ndarray) -> np.ndarray:
    """z (n, C) @ w, renormalised where some axes are missing (m (n, C) bool): the available
    weight carries the common-mode estimate. -> (n,)."""
    avail = (np.abs(w)[None, :] * m).sum(axis=1) / (np.abs(w).sum() + 1e-12)
    return z @ w / np.maximum(avail, 0.25)


def window_bounds(T: int, fs: float, window_s: float) -> np.ndarray:
    """(W, 2) [start, stop) sample bounds of non-overlapping windows; the tail joins the last."""
    w = max(int(round(window_s * fs)), 8)
    starts = np.arange(0, max(T - w, 0) + 1, w)
    stops = np.append(starts[1:], T)
    return np.stack([starts, stops], axis=1)


def standardise(clean: np.ndarray, m: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Per-window, per-axis unit rms over the valid rows: clean (T, C), m (T, C) bool -> (T, C)
    (a loud window does not outweigh the others; invalid rows are already 0)."""
    z = np.zeros_like(clean)
    for s, e in bounds:
        cnt = np.maximum(m[s:e].sum(axis=0), 1)
        z[s:e] = clean[s:e] / (np.sqrt((clean[s:e] ** 2).sum(axis=0) / cnt) + 1e-12)
    return z


def beat_synchronous_weights(z: np.ndarray, beats: np.ndarray) -> tuple[np.ndarray, float]:
    """Periodic component analysis with a time-varying period (Sameni et al. 2008).

    z (n, C) standardised axes, beats (B,) sample indices (ascending). Each inter-beat segment
    [b_k, b_k + L) is paired with [b_{k+1}, b_{k+1} + L), L = min(RR_k, RR_{k+1}): the same
    latency after consecutive beats, whatever the RR. The weights maximise
    w^T C_sync w / w^T C_0 w (C_sync the symmetrised covariance of the pairs).
    Returns (w (C,), the generalised eigenvalue: ~1 for a strictly beat-locked component,
    ~0 for noise); (zeros, 0.0) with fewer than 3 beats.
    """
    n, C = z.shape
    b = np.unique(np.asarray(beats, dtype=np.int64))
    b = b[(b >= 0) & (b < n)]
    if b.size < 3:
        return np.zeros(C), 0.0
    c0 = z.T @ z / n
    cs, cnt = np.zeros((C, C)), 0
    for k in range(b.size - 2):  # ~1 pair per beat
        L = min(b[k + 1] - b[k], b[k + 2] - b[k + 1], n - b[k + 1])
        cs += z[b[k + 1]:b[k + 1] + L].T @ z[b[k]:b[k] + L]
        cnt += L
    cs = 0.5 * (cs + cs.T) / max(cnt, 1)
    lam, vec = linalg.eigh(cs, c0 + (1e-6 * np.trace(c0) / C + 1e-12) * np.eye(C),
                           subset_by_index=[C - 1, C - 1])
    return vec[:, 0], float(lam[0])


def refit_on_beats(fus: dict, fs: float, find_beats, iterations: int = 2) -> dict:
    """The fused signal re-weighted by `beat_synchronous_weights` on its own beats, repeated
    `iterations` times. fus: a `fuse` result; find_beats(signal (T,)) -> beat times (s).
    Returns a copy of fus with "fused", "weights" replaced (unit rms per window, onset
    polarity as in `fuse`) and "sync_periodicity" (the last eigenvalue) added."""
    clean, bounds = fus["acc_clean"], fus["bounds"]
    m = fus.get("axis_valid", clean != 0)  # `fuse` zeroes gap fills
    z = standardise(clean, m, bounds)
    out = dict(fus)
    sig, lam = fus["fused"], 0.0
    for _ in range(iterations):
        w, lam = beat_synchronous_weights(z, np.round(np.asarray(find_beats(sig)) * fs))
        if not np.any(w):
            break
        sig = combine(z, m, w)
        for s, e in bounds:
            sig[s:e] = (sig[s:e] - sig[s:e].mean()) / (sig[s:e].std() + 1e-12)
        if onset_polarity(sig, fs, float(np.median(fus["period_s"]))) < 0:
            sig, w = -sig, -w
        out.update(fused=sig, weights=w)
    out["sync_periodicity"] = lam
    return out


def bud_agreement(fus: dict, fs: float, hp_hz: float = 0.0) -> float:
    """Do the two buds' parts of the fused component carry the same signal? fus: a `fuse` (or
    `refit_on_beats`) result. The left part z[:, :3] @ w[:3] and the right part z[:, 3:] @ w[3:]
    (z the standardised axes, w fus["weights"]), each high-passed at hp_hz (0: not), Pearson r
    over the samples where all six axes delivered. NaN with fewer than 32 such samples or a bud
    without weight.

    The BCG moves the head, so both buds see it; sensor noise and what a fit to wrong beats
    picks up are each bud's own. The statistic is not what `beat_synchronous_weights` maximises
    (beat-locked covariance of the whole component), so it can judge a refit on its own beats.
    With `fusion.method` "pica" fus["weights"] is the mean of the windows' weights, so the
    statistic describes that mean component, not the per-window fusion.
    """
    clean, bounds = fus["acc_clean"], fus["bounds"]
    m = fus.get("axis_valid", clean != 0)
    w = np.asarray(fus["weights"], dtype=np.float64)
    both = m.all(axis=1)
    if both.sum() < 32 or not (np.any(w[:3]) and np.any(w[3:])):
        return float("nan")
    z = standardise(clean, m, bounds)
    parts = np.stack([z[:, :3] @ w[:3], z[:, 3:] @ w[3:]], axis=1)
    if hp_hz > 0:
        parts = highpass(parts, fs, hp_hz) * both[:, None]
    a, b = parts[both, 0], parts[both, 1]
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / den) if den > 0 else float("nan")


def fuse(X: np.ndarray, mask: np.ndarray, fs: float, cfg: FusionConfig) -> dict:
    """Whole-recording fusion. X (T, 12) = [L acc, L gyro, R acc, R gyro], mask (T, 2) bool.

    Returns "fused" (T,), "acc_clean" (T, 6), "sqi" (W, 6), "fused_sqi" (W,), "period_s" (W,),
    "gyro_rms" (W,), "rejected" (W,) bool, "bounds" (W, 2), "weights" (6,), "axis_valid"
    (T, 6) bool (delivered samples, not gap fills).
    """
    acc = np.concatenate([X[:, 0:3], X[:, 6:9]], axis=1)
    gyro = [X[:, 3:6], X[:, 9:12]]
    acc_bp = bandpass(acc, fs, cfg.band_hz)
    phi = [motion_regressors(g, fs) for g in gyro]
    gyro_bp = bandpass(np.concatenate(gyro, axis=1), fs, cfg.band_hz)
    # gap fills (and the derivative stencil next to them) are not data
    valid = ~ndimage.binary_dilation(~mask.astype(bool), structure=np.ones((3, 1), dtype=bool))
    m6 = np.repeat(valid, 3, axis=1)
    bounds = window_bounds(X.shape[0], fs, cfg.window_s)
    W = len(bounds)
    resid = np.zeros_like(acc)
    sqi, period, grms = np.zeros((W, 6)), np.zeros(W), np.zeros(W)
    c0s, cts, cxs = np.zeros((W, 6, 6)), np.zeros((W, 6, 6)), np.zeros((W, 6, 6))
    for k, (s, e) in enumerate(bounds):  # loop over 5-s windows, not samples
        grms[k] = np.sqrt(np.mean(gyro_bp[s:e] ** 2) * 3)  # 3-axis rate magnitude, bud mean
        for b in range(2):
            resid[s:e, 3 * b:3 * b + 3], _ = cancel_motion(
                acc[s:e, 3 * b:3 * b + 3], phi[b][s:e], valid[s:e, b], cfg.ridge,
                gate=grms[k] > cfg.gate_gyro_rms)
    clean = bandpass(resid, fs, cfg.band_hz) * m6
    z = standardise(clean, m6, bounds)
    # the cross-bud covariance's input: above the high-pass, gap fills zero again
    zx = highpass(z, fs, cfg.cross_bud_hp_hz) * m6 if cfg.cross_bud > 0 and \
        cfg.cross_bud_hp_hz > 0 else z
    for k, (s, e) in enumerate(bounds):
        c0s[k], cts[k], sqi[k], period[k] = window_statistics(z[s:e], fs, cfg)
        if cfg.cross_bud > 0:
            cxs[k] = cross_bud_covariance(zx[s:e])
    # BCG geometry is fixed per subject: one set of weights, quality-weighted over windows
    w = periodic_weights(c0s, cts, sqi.max(axis=1) ** 4, cxs, cfg.cross_bud)
    if cfg.method == "pica":  # or periodic component analysis per window
        prior = None
        if cfg.pica_shrink > 0:  # the pooled statistics of `periodic_weights`, trace C each
            q = (sqi.max(axis=1) ** 4)[:, None, None]
            norm = np.trace(c0s, axis1=1, axis2=2)[:, None, None] + 1e-12
            p0, pt = (q * c0s / norm).sum(axis=0), (q * cts / norm).sum(axis=0)
            g = cfg.pica_shrink * z.shape[1] / (np.trace(p0) + 1e-12)
            prior = (g * p0, g * pt)
        ws, _ = windowed_pica(z, bounds, fs, cfg, period, prior)
        fused = np.zeros(len(z))
        for k, (s, e) in enumerate(bounds):
            fused[s:e] = combine(z[s:e], m6[s:e], ws[k])
        w = ws.mean(axis=0)
    else:
        fused = combine(z, m6, w)
    fsqi = np.zeros(W)
    for k, (s, e) in enumerate(bounds):
        seg = fused[s:e]
        fused[s:e] = (seg - seg.mean()) / (seg.std() + 1e-12)
        fsqi[k] = signal_quality(fused[s:e, None], fs, cfg.period_range_s)[0][0]
    if onset_polarity(fused, fs, float(np.median(period))) < 0:
        fused, w = -fused, -w
    rejected = (grms > cfg.reject_gyro_rms) | (fsqi < cfg.reject_sqi)
    return {"fused": fused, "acc_clean": clean, "acc_bp": acc_bp, "sqi": sqi,
            "fused_sqi": fsqi, "period_s": period, "gyro_rms": grms, "rejected": rejected,
            "bounds": bounds, "weights": w, "axis_valid": m6}


def onset_polarity(x: np.ndarray, fs: float, period_s: float, half_s: float = 0.4,
                   onset: float = 0.3) -> float:
    """+1 or -1: the sign of the first large lobe of x's median beat complex (x (T,), BCG-like).

    Beats are located at peaks of the amplitude envelope (sign-blind, >= 0.6 period apart),
    the median of the +-half_s segments around them is the complex; its onset is where its
    own envelope first exceeds `onset` x its maximum, and the first local extremum of |complex|
    after the onset above `onset` x the largest is the first lobe. Skewness decides when no
    complex can be formed (a signal shorter than a few beats).
    """
    x = np.asarray(x, dtype=np.float64)
    h = int(round(half_s * fs))
    k = max(1, int(round(0.15 * fs)))
    env = np.convolve(np.abs(signal.hilbert(x)), np.ones(k) / k, mode="same")
    pk, _ = signal.find_peaks(env, distance=max(1, int(0.6 * period_s * fs)))
    pk = pk[(pk >= h) & (pk < len(x) - h)]
    if pk.size < 2:
        return 1.0 if stats.skew(x) >= 0 else -1.0
    c = np.median(np.stack([x[p - h:p + h] for p in pk]), axis=0)
    e = np.abs(signal.hilbert(c))
    start = int(np.argmax(e > onset * e.max()))
    ext, _ = signal.find_peaks(np.abs(c))
    ext = ext[(ext >= start) & (np.abs(c[ext]) > onset * np.abs(c).max())]
    if not ext.size:
        return 1.0 if stats.skew(x) >= 0 else -1.0
    return 1.0 if c[ext[0]] > 0 else -1.0


def best_axis(acc_bp: np.ndarray, fs: float, cfg: FusionConfig) -> int:
    """Baseline (a): the single accel axis with the highest mean per-window SQI."""
    bounds = window_bounds(acc_bp.shape[0], fs, cfg.window_s)
    s = np.stack([signal_quality(acc_bp[a:b], fs, cfg.period_range_s)[0] for a, b in bounds])
    return int(np.argmax(s.mean(axis=0)))
