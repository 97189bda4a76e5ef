"""Beats, fiducials and metrics (paper sec. 2.2.5 and its evaluation).

Detection:
* `find_jpeaks` - J peaks on a BCG-like signal: polarity by skewness, octave-checked period
  (`beat_period`) per 10-s segment, `find_peaks` with a refractory distance
  max(0.33 s, 0.6 * period), template alignment, parabolic sub-sample refinement. Also the
  detector for AO on the reconstructed SCG (`find_ao`).
* `tightness` > 0 (the J-peak arms): the picks only seed a template; the beats are then the
  best rhythm-consistent chain (`track_beats`, dynamic programming after Ellis 2007) through
  the peaks of the recording's matched filter (`matched_filter`), with the local period from
  the segments' periods, octave slips replaced by the recording's median (`local_period`).
  A noise spike between beats, a weak beat, or every other beat being weak then cannot change
  the beat count, where plain peak picking with a refractory distance can.
* `find_ac` - AC = dominant peak in AO + [0.6, 1.4] * LVET_prior, LVET_prior = 413 - 1.7 HR ms.

Scoring against ground truth (R peaks from ECG):
* `match_beats` - each detection is assigned to the cardiac cycle [R_k - 0.15 RR, R_k+1 - 0.15 RR)
  it falls in; cycles with none are missed, extra detections are extra beats.
* `beat_metrics` - HR MAE per 10-s segment, IBI MAE on consecutive matched cycles, SDNN/RMSSD
  error, missed/extra %.
* `fiducial_metrics` - AO/AC/LVET timing MAE (ms); `per_beat_pearson` - r per cardiac cycle.
"""

from __future__ import annotations

import numpy as np
from scipy import signal, stats

from shared.errors import DataError
from twscardio.fusion import autocorrelation

__all__ = ["estimate_period", "beat_period", "segment_periods", "local_period", "track_beats",
           "prefer_early", "matched_filter",
           "alternation", "envelope", "refine_peaks", "template_refine", "find_jpeaks", "find_ao",
           "anchored_ao", "find_ac", "segment_hr", "window_interval_ratios", "is_octave",
           "octave_errors",
           "match_beats", "beat_metrics", "fiducial_metrics", "per_beat_pearson", "hrv"]


def estimate_period(x: np.ndarray, fs: float, lo_s: float = 0.4, hi_s: float = 1.5) -> float:
    """Beat period (s) from the autocorrelation peak in [lo_s, hi_s] (the fallback HR)."""
    ac = autocorrelation(np.asarray(x, dtype=np.float64)[:, None])[:, 0]
    lo = int(round(lo_s * fs))
    hi = min(int(round(hi_s * fs)), len(x) // 2)
    if hi <= lo:
        raise DataError(f"signal too short for a period estimate: {len(x)} samples")
    return (lo + int(np.argmax(ac[lo:hi + 1]))) / fs


def refine_peaks(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Parabolic interpolation of peak positions (fractional sample indices)."""
    idx = np.asarray(idx, dtype=np.int64)
    ok = (idx > 0) & (idx < len(x) - 1)
    out = idx.astype(np.float64)
    i = idx[ok]
    a, b, c = x[i - 1], x[i], x[i + 1]
    den = a - 2 * b + c
    out[ok] = i + np.where(np.abs(den) > 1e-12, 0.5 * (a - c) / np.where(den == 0, 1, den), 0.0)
    return out


def template_refine(x: np.ndarray, fs: float, idx: np.ndarray, half_s: float = 0.25,
                    max_shift_s: float = 0.06, iters: int = 2,
                    at_peak: bool = True, valid: np.ndarray | None = None) -> np.ndarray:
    """Align each beat to the recording's median beat template; -> refined fiducial indices.

    Segments x[idx + o], |o| <= half_s, are cross-correlated (Pearson r) with the median template
    at shifts |s| <= max_shift_s; the best shift (parabolic sub-sample) moves each beat, and the
    fiducial is the template's own peak in the aligned beat. A beat whose largest peak is the
    wrong wave (a side lobe, the next wave) is thus timed by its whole complex. Vectorised:
    (B, S, L) gathers. Beats too close to the edges keep their peak. `at_peak=False` returns the
    aligned positions of the template's centre (the majority's pick) instead of its peak.
    `valid` (T,) bool: samples that are data (not gap fill); the template is the median over
    valid samples and each r is taken over the valid samples of the segment only (a weighted
    Pearson r), so a loss burst over part of a beat does not pull its timing.
    """
    idx = np.asarray(idx, dtype=np.int64)
    H, S = int(round(half_s * fs)), int(round(max_shift_s * fs))
    ok = (idx - H - S >= 0) & (idx + H + S + 1 < len(x))
    out = refine_peaks(x, idx)
    if ok.sum() < 3:
        return out
    cur = idx[ok].astype(np.float64)
    o, sh = np.arange(-H, H + 1), np.arange(-S, S + 1)
    for _ in range(iters):
        base = np.clip(np.round(cur).astype(np.int64), H + S, len(x) - H - S - 2)  # in range
        gather = base[:, None, None] + sh[None, :, None] + o[None, None, :]  # (B, S, L)
        if valid is None:
            tmpl = np.median(x[base[:, None] + o[None, :]], axis=0)
            seg = x[gather]
            a = seg - seg.mean(axis=2, keepdims=True)
            t = tmpl - tmpl.mean()
            r = (a @ t) / (np.linalg.norm(a, axis=2) * np.linalg.norm(t) + 1e-12)  # (B, S)
        else:
            r, tmpl = _masked_r(x, np.asarray(valid, dtype=bool), base, o, gather)
        k = np.clip(np.argmax(r, axis=1), 1, len(sh) - 2)
        rows = np.arange(len(k))
        y0, y1, y2 = r[rows, k - 1], r[rows, k], r[rows, k + 1]
        den = y0 - 2 * y1 + y2
        frac = np.where(np.abs(den) > 1e-12, 0.5 * (y0 - y2) / np.where(den == 0, 1, den), 0)
        cur = base + sh[k] + np.clip(frac, -0.5, 0.5)
    p = refine_peaks(tmpl, np.array([int(np.argmax(tmpl))]))[0] - H if at_peak else 0.0
    out[ok] = cur + p
    return out


def _masked_r(x: np.ndarray, valid: np.ndarray, base: np.ndarray, o: np.ndarray,
              gather: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r (B, S) of each shifted segment x[gather] (B, S, L) with the median template
    over the valid samples only, and the template (L,) (median over valid samples; a lag with
    none takes the plain median)."""
    seg0 = x[base[:, None] + o[None, :]]  # (B, L)
    some = valid[base[:, None] + o[None, :]]
    tmpl = np.median(seg0, axis=0)
    has = some.any(axis=0)
    tmpl[has] = np.nanmedian(np.where(some, seg0, np.nan)[:, has], axis=0)
    w = valid[gather].astype(np.float64)  # (B, S, L)
    seg = x[gather] * w
    n = np.maximum(w.sum(axis=2), 1.0)
    sx, st = seg.sum(axis=2), w @ tmpl
    sxx, stt, sxt = (seg * seg).sum(axis=2), w @ (tmpl * tmpl), seg @ tmpl
    cov = sxt - sx * st / n
    var = np.maximum(sxx - sx * sx / n, 0.0) * np.maximum(stt - st * st / n, 0.0)
    return np.where(n >= 3, cov / (np.sqrt(var) + 1e-12), -1.0), tmpl


def envelope(x: np.ndarray, fs: float, smooth_s: float = 0.15) -> np.ndarray:
    """Amplitude envelope (T,): |analytic signal| smoothed by a centred smooth_s moving average
    (zero phase, first null at 1/smooth_s ~ 7 Hz)."""
    k = max(1, int(round(smooth_s * fs)))
    return np.convolve(np.abs(signal.hilbert(x)), np.ones(k) / k, mode="same")


def _lag_peak(ac: np.ndarray, lag: float, tol: float = 0.08) -> tuple[int, float]:
    """Largest autocorrelation within lag * (1 +- tol) -> (lag, value)."""
    a, b = int(np.floor(lag * (1 - tol))), int(np.ceil(lag * (1 + tol)))
    a, b = max(a, 1), min(b, len(ac) - 1)
    if b < a:
        return int(round(lag)), -1.0
    k = a + int(np.argmax(ac[a:b + 1]))
    return k, float(ac[k])


def alternation(x: np.ndarray, fs: float, period_s: float) -> tuple[float, float]:
    """Do consecutive cycles at spacing period_s look alike? -> (shape r, amplitude ratio).

    Peaks of x at least 0.6 period apart are the cycles; each beat is x over +-0.45 period
    around its peak. shape r = Pearson r between the median (unit-norm) beat of even and of odd
    cycles; amplitude ratio = min/max of the even and odd median beat amplitudes (|analytic
    signal| peak, so a carrier phase does not count as amplitude). Both ~1 for a
    real rhythm; low when every other 'beat' is a different, weaker wave (two waves per
    heartbeat). (NaN, NaN) with fewer than 3 cycles of each parity.
    """
    x = np.asarray(x, dtype=np.float64)
    idx, _ = signal.find_peaks(x, distance=max(1, int(0.6 * period_s * fs)))
    h = int(0.45 * period_s * fs)
    idx = idx[(idx >= h) & (idx + h < len(x))]
    if idx.size < 6 or h < 2:
        return float("nan"), float("nan")
    seg = x[idx[:, None] + np.arange(-h, h + 1)[None, :]]
    q = max(1, h // 4)  # beat amplitude: |analytic signal| peak near the cycle's peak
    mag = np.abs(signal.hilbert(x - x.mean()))[idx[:, None] + np.arange(-q, q + 1)[None, :]]
    amp = np.array([np.median(mag[0::2].max(1)), np.median(mag[1::2].max(1))])
    seg = seg / (np.linalg.norm(seg - seg.mean(1, keepdims=True), axis=1, keepdims=True) + 1e-12)
    even, odd = np.median(seg[0::2], axis=0), np.median(seg[1::2], axis=0)
    ratio = float(np.min(amp) / np.max(amp)) if np.max(amp) > 0 else float("nan")
    return float(np.corrcoef(even, odd)[0, 1]), ratio


def _alike(x: np.ndarray, fs: float, period_s: float, same_r: float, same_amp: float) -> bool:
    r, amp = alternation(x, fs, period_s)
    return bool(r >= same_r and amp >= same_amp)  # NaN (too few cycles) -> False


def beat_period(x: np.ndarray, fs: float, lo_s: float = 0.4, hi_s: float = 1.5,
                half_ratio: float = 0.5, same_r: float = 0.3, differ_r: float = 0.2,
                same_amp: float = 0.65) -> tuple[float, float]:
    """Octave-robust beat period (s) and periodicity strength (0..1) of a BCG/SCG-like x (T,).

    1. The period candidate L is the autocorrelation peak of the amplitude envelope in
       [lo_s, hi_s]: the envelope has one hump per beat, so RR variability of tens of ms does
       not decorrelate it the way it does a 5-15 Hz oscillation (whose autocorrelation can then
       peak at 2 RR: every other beat missed).
    2. Half-period check: when the envelope also correlates at L/2 (>= half_ratio of its value
       at L) and the cycles at spacing L/2 look alike (`alternation`: shape r >= same_r and
       amplitude ratio >= same_amp), the rhythm is L/2 - L was a sub-harmonic.
    3. Double-period check: when cycles at spacing L clearly differ (every other one is a
       different wave, shape r < differ_r, or much weaker, amplitude ratio < same_amp) and 2L
       is still a heart period, each heartbeat was counted twice and the period is 2L.
    Consecutive heartbeats differ little in shape and amplitude (respiratory modulation is
    slow); a second wave within the beat (a late BCG/SCG wave, a dicrotic-like lobe) differs.
    Strength = the envelope autocorrelation at the chosen period (clipped to [0, 1]).
    """
    x = np.asarray(x, dtype=np.float64)
    lo = int(round(lo_s * fs))
    hi = min(int(round(hi_s * fs)), len(x) // 2)
    if hi <= lo:
        raise DataError(f"signal too short for a period estimate: {len(x)} samples")
    ac = autocorrelation(envelope(x, fs)[:, None])[:, 0]
    L = lo + int(np.argmax(ac[lo:hi + 1]))
    if L / 2 >= 0.9 * lo:
        k, v = _lag_peak(ac, L / 2)
        if v >= half_ratio * ac[L] and _alike(x, fs, k / fs, same_r, same_amp):
            return k / fs, float(np.clip(ac[k], 0.0, 1.0))
    if 2 * L <= min(1.35 * hi, len(x) // 2):
        r, amp = alternation(x, fs, L / fs)
        if r < differ_r or amp < same_amp:  # two different waves per heartbeat (NaN: no)
            L, _ = _lag_peak(ac, 2 * L)
    return L / fs, float(np.clip(ac[L], 0.0, 1.0))


def local_period(periods_s: np.ndarray, starts: np.ndarray, n: int, window: int,
                 tol: float = 1.4) -> np.ndarray:
    """Per-sample beat period (n,) from per-segment periods (S,) starting at starts (S,).

    The recording's median period is the prior: a segment whose period is nearer a half or a
    double of it (outside [1/tol, tol] x median) is an octave slip of that segment and takes
    the median instead. Linear interpolation between segment centres.
    """
    p = np.asarray(periods_s, dtype=np.float64)
    med = float(np.median(p))
    p = np.where((p > med / tol) & (p < med * tol), p, med)
    centres = np.asarray(starts, dtype=np.float64) + 0.5 * window
    return np.interp(np.arange(n), centres, p)


def track_beats(score: np.ndarray, cand: np.ndarray, period: np.ndarray,
                tightness: float = 2.0, restart: float = 3.0) -> np.ndarray:
    """Dynamic-programming beat tracking (Ellis 2007, on candidate peaks) -> chosen candidates.

    score (K,) the evidence of candidate k (matched-filter amplitude, typical beat ~1), cand (K,)
    sorted sample positions, period (K,) the local beat period in samples at each candidate.
    The chain maximises sum(score) - tightness * sum(log(gap / period)^2) over consecutive
    picks with 0.5 <= gap / period <= 2.1; a chain may also resume after a longer gap (an
    outage) at a cost `restart`. An extra pick half-way between two beats costs
    2 tightness log(2)^2 (~1.9 at 2, about twice a typical beat's score) of transition, so noise
    peaks are not taken; a weak beat at the expected spot costs nothing, so it is kept; skipping
    every other beat costs tightness log(2)^2 per skip, so a half-rate chain does not win either.
    Returns the indices into cand of the chosen beats, sorted.
    """
    score = np.asarray(score, dtype=np.float64)
    cand = np.asarray(cand, dtype=np.float64)
    K = cand.size
    if K == 0:
        return np.zeros(0, dtype=np.int64)
    C = np.zeros(K)
    prev = np.full(K, -1)
    best = np.zeros(K)  # best chain score ending at or before k
    arg = np.zeros(K, dtype=np.int64)
    for k in range(K):  # candidates in time order: the recursion is sequential
        P = period[k]
        lo = np.searchsorted(cand, cand[k] - 2.1 * P)
        hi = np.searchsorted(cand, cand[k] - 0.5 * P, side="right")
        val, src = 0.0, -1
        if hi > lo:
            v = C[lo:hi] - tightness * np.log((cand[k] - cand[lo:hi]) / P) ** 2
            i = int(np.argmax(v))
            val, src = float(v[i]), lo + i
        if lo > 0 and best[lo - 1] - restart > val:
            val, src = best[lo - 1] - restart, int(arg[lo - 1])
        if val <= 0:
            val, src = 0.0, -1
        C[k], prev[k] = score[k] + val, src
        better = k == 0 or C[k] > best[k - 1]
        best[k] = C[k] if better else best[k - 1]
        arg[k] = k if better else arg[k - 1]
    k, path = int(arg[-1]), []
    while k >= 0:
        path.append(k)
        k = int(prev[k])
    return np.array(path[::-1], dtype=np.int64)


def matched_filter(x: np.ndarray, fs: float, beats: np.ndarray, half_s: float = 0.25,
                   valid: np.ndarray | None = None,
                   min_share: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares amplitude of the recording's median beat at every lag -> (m (T,), template).

    The template is the median of x over +-half_s around the given beat positions (samples),
    made zero-mean; m[t] = <x[t - H : t + H], template> / |template|^2, so a beat like the
    typical one scores ~1 and white noise is suppressed by the template's bandwidth.
    `valid` (T,) bool (delivered samples; gap fill is not data): the least-squares amplitude
    over the delivered samples only, m[t] = sum_v x tmpl / sum_v tmpl^2, so a loss burst over
    a beat's main wave no longer hands the beat to a side lobe of its neighbour wave (whose
    lag still sees data); the denominator is floored at `min_share` of |template|^2, so a lag
    with little data left scores low rather than arbitrary.
    """
    x = np.asarray(x, dtype=np.float64)
    H = int(round(half_s * fs))
    b = np.round(np.asarray(beats)).astype(np.int64)
    b = b[(b >= H) & (b + H < len(x))]
    if b.size < 3:
        return np.zeros_like(x), np.zeros(2 * H + 1)
    tmpl = np.median(x[b[:, None] + np.arange(-H, H + 1)[None, :]], axis=0)
    tmpl = tmpl - tmpl.mean()
    energy = tmpl @ tmpl + 1e-12
    if valid is None:
        return signal.correlate(x, tmpl, mode="same") / energy, tmpl
    w = np.asarray(valid, dtype=np.float64)
    num = signal.correlate(x * w, tmpl, mode="same")
    den = signal.correlate(w, tmpl * tmpl, mode="same")
    return num / np.maximum(den, min_share * energy), tmpl


def segment_periods(x: np.ndarray, fs: float, window_s: float = 10.0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Octave-checked beat period (s) of each `window_s` segment of x (T,) (`beat_period`; a
    tail shorter than 1.6 s takes 0.8 s) -> (periods (S,), segment starts (S,) in samples)."""
    x = np.asarray(x, dtype=np.float64)
    n = int(window_s * fs)
    starts = np.arange(0, max(len(x) - n // 2, 1), n)
    return np.array([beat_period(x[s:s + n], fs)[0] if len(x[s:s + n]) > 1.6 * fs else 0.8
                     for s in starts]), starts


def find_jpeaks(x: np.ndarray, fs: float, polarity: str = "auto",
                window_s: float = 10.0, wave_shift_s: float = 0.0,
                tightness: float = 0.0, min_score: float = 0.0,
                early_ratio: float = 0.0, periods_s: np.ndarray | None = None,
                valid: np.ndarray | None = None,
                score_share: float | None = None) -> np.ndarray:
    """Beat times (s) of the dominant peak per cycle. x (T,), uniform at fs.

    The refractory distance comes from the octave-checked period (`beat_period`) of each
    `window_s` segment (clipped to >= 0.33 s), so a heart-rate change across a long recording
    is followed and a sub-harmonic (every other beat) or a second wave per beat does not set it.
    `wave_shift_s` > 0 adds a coarse `template_refine` pass before the fine one: each beat is
    aligned to a +-(wave_shift_s + 0.1 s) median template (the whole complex, e.g. AO ... AC of
    an SCG beat) at shifts up to +-wave_shift_s, so a cycle whose largest peak is a *different
    wave* (AC picked instead of AO, one LVET ~ 0.28 s late) is moved onto the right one.
    `tightness` > 0 replaces the picks by the best rhythm-consistent chain of matched-filter
    peaks (`track_beats`; its weight of rhythm against evidence) before the fine alignment;
    matched-filter peaks below `min_score` x the typical beat's are not candidates (tightness 2,
    min_score 0 chosen on training-family validation subjects: min_score 0.35 lowered (b)'s IBI
    error but gave the single-axis arm 4.5 % octave errors through runs of missed beats).
    `early_ratio` > 0 lets a premature beat win over the rhythm (`prefer_early`): a tracked
    beat moves to a candidate earlier in its cycle whose score is at least early_ratio times its
    own. `periods_s` (S,) replaces the segments' own periods (`segment_periods` of another
    signal of the same beats, e.g. the fused BCG's octave-checked periods for AO on the SCG).
    `valid` (T,) bool: the final alignment sees only data samples (`template_refine`).
    `score_share` (with `valid` and tightness > 0): the tracker's candidates are scored on the
    delivered samples only (`matched_filter(valid=..., min_share=score_share)`); None: on the
    whole signal, gap fill included.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size < int(fs):
        raise DataError(f"beat detection needs a 1-D signal of >= 1 s, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise DataError("beat detection input contains NaN/inf")
    if polarity == "auto" and stats.skew(x) < 0 or polarity == "negative":
        x = -x
    n = int(window_s * fs)
    dist, starts = segment_periods(x, fs, window_s)
    if periods_s is not None:
        dist = np.asarray(periods_s, dtype=np.float64)
        if dist.shape != starts.shape or not np.all(np.isfinite(dist) & (dist > 0)):
            raise DataError(f"periods_s must be {starts.size} positive periods (one per "
                            f"{window_s:g}-s segment), got shape {dist.shape}")
    distance = max(0.33, 0.6 * float(np.median(dist))) * fs
    scale = np.median(np.abs(x - np.median(x))) * 1.4826 + 1e-12
    idx, props = signal.find_peaks(x, distance=distance, prominence=0.5 * scale)
    if idx.size:  # drop peaks far below the typical beat (noise between/around beats)
        idx = idx[props["prominences"] >= 0.25 * np.median(props["prominences"])]

    def wave_align(idx):
        if wave_shift_s > 0 and idx.size:
            coarse = template_refine(x, fs, idx, half_s=wave_shift_s + 0.1,
                                     max_shift_s=wave_shift_s, at_peak=False)
            idx = np.unique(np.clip(np.round(coarse), 0, len(x) - 1).astype(np.int64))
            idx = idx[np.r_[True, np.diff(idx) >= distance]]  # two picks moved onto one beat
        return idx

    idx = wave_align(idx)
    if tightness > 0 and idx.size >= 3:
        idx = _tracked(x, fs, idx, dist, starts, n, tightness, min_score, early_ratio,
                       None if score_share is None else valid, score_share or 0.0)
    if valid is not None and np.shape(valid) != x.shape:
        raise DataError(f"valid must be a (T,) mask like the signal {x.shape}, got "
                        f"{np.shape(valid)}")
    return np.sort(template_refine(x, fs, idx, valid=valid)) / fs


def _tracked(x: np.ndarray, fs: float, idx: np.ndarray, periods_s: np.ndarray,
             starts: np.ndarray, window: int, tightness: float,
             min_score: float, early_ratio: float = 0.0,
             valid: np.ndarray | None = None, min_share: float = 0.0) -> np.ndarray:
    """Peak picks -> the beats of the best rhythm-consistent chain of matched-filter peaks
    (scored on the `valid` samples only where given, `matched_filter`)."""
    m, _ = matched_filter(x, fs, template_refine(x, fs, idx), valid=valid, min_share=min_share)
    typical = np.median(m[idx])
    if not typical > 0:
        return idx
    # a peak below min_score of the typical beat is not a beat: a gap in the chain (a missed
    # beat, no IBI) costs less than a beat timed on noise, or a wrongly placed ectopic beat
    cand, _ = signal.find_peaks(m, height=min_score * typical, distance=max(1, int(0.1 * fs)))
    period = local_period(periods_s, starts, len(x), window) * fs
    score = np.clip(m[cand] / typical, 0.0, 3.0)
    chosen = track_beats(score, cand, period[cand], tightness)
    if early_ratio > 0:
        chosen = prefer_early(score, cand, chosen, period[cand], early_ratio)
    return cand[chosen]


def prefer_early(score: np.ndarray, cand: np.ndarray, chosen: np.ndarray, period: np.ndarray,
                 ratio: float, earliest: float = 0.45, min_lead: float = 0.1,
                 min_score: float = 0.3) -> np.ndarray:
    """Premature (ectopic) beats against the rhythm prior -> chosen candidate indices, sorted.

    score (K,), cand (K,) sorted sample positions, period (K,) local period in samples,
    chosen (N,) indices into cand (a `track_beats` chain). A premature beat comes 0.55-0.8 of a
    period early (then a compensatory pause) and is weaker; the chain's transition cost can
    prefer a weak peak at the expected spot to it. Here each chosen beat k >= 1 moves to the
    strongest candidate in [cand[chosen[k-1]] + earliest * period, cand[chosen[k]] -
    min_lead * period] when that candidate's score is >= ratio x the chosen one's and >=
    min_score (the evidence clearly favours the early beat, and it is a beat: a premature beat
    has about half a normal one's amplitude); a beat moves at most once, the count never
    changes.
    """
    out = np.asarray(chosen, dtype=np.int64).copy()
    for k in range(1, out.size):  # a beat per second: the chain, not samples
        c, p = out[k], period[out[k]]
        lo = np.searchsorted(cand, cand[out[k - 1]] + earliest * p, side="left")
        hi = np.searchsorted(cand, cand[c] - min_lead * p, side="right")
        if hi > lo:
            a = lo + int(np.argmax(score[lo:hi]))
            if score[a] >= max(ratio * score[c], min_score):
                out[k] = a
    return out


def find_ao(scg: np.ndarray, fs: float, wave_shift_s: float = 0.3,
            periods_s: np.ndarray | None = None, tightness: float = 0.0) -> np.ndarray:
    """AO times (s): the dominant positive SCG peak per cycle, wave identity checked against the
    recording's median AO...AC complex (a cycle whose AC outgrew its AO keeps its AO).
    periods_s: the 10-s segments' beat periods from another signal (`segment_periods`);
    tightness > 0: the best rhythm-consistent chain instead of the picks (`find_jpeaks`)."""
    return find_jpeaks(scg, fs, polarity="positive", wave_shift_s=wave_shift_s,
                       periods_s=periods_s, tightness=tightness)


def anchored_ao(scg: np.ndarray, fs: float, ao_pred_s: np.ndarray,
                half_s: float, refine: bool = True) -> np.ndarray:
    """AO times (s), one per predicted AO `ao_pred_s` (s, sample 0 = 0 s): the SCG's largest
    sample within +-round(half_s fs) samples of the prediction (both edges included), timed as
    `find_ac` times AC (`template_refine`; `refine=False` returns the picked samples / fs).
    Predictions whose window leaves the recording are dropped, NaN ones too; the result is
    sorted. Predictions closer than the window plus the refinement's shift may give two equal
    times (J peaks, the usual predictions, are >= 0.33 s apart). A window below one sample is a
    one-line DataError."""
    scg = np.asarray(scg, dtype=np.float64)
    H = int(round(half_s * fs))
    if H < 1:
        raise DataError(f"anchored_ao: half_s = {half_s} s is below one sample at {fs} Hz")
    pred = np.asarray(ao_pred_s, dtype=np.float64)
    pred = pred[np.isfinite(pred)]
    base = np.round(pred * fs).astype(np.int64)
    base = base[(base - H >= 0) & (base + H < len(scg))]
    if base.size == 0:
        return np.zeros(0)
    idx = base[:, None] + np.arange(-H, H + 1)[None, :]
    best = idx[np.arange(len(idx)), np.argmax(scg[idx], axis=1)]
    if not refine:
        return np.sort(best / fs)
    return np.sort(template_refine(scg, fs, best, half_s=0.1, max_shift_s=0.04) / fs)


def find_ac(scg: np.ndarray, fs: float, ao_s: np.ndarray) -> np.ndarray:
    """AC times (s): dominant peak in AO + [0.6, 1.4] * LVET_prior (vectorised over beats)."""
    scg = np.asarray(scg, dtype=np.float64)
    if ao_s.size < 2:
        return np.full(ao_s.size, np.nan)
    hr = 60.0 / np.median(np.diff(ao_s))
    lvet = (413 - 1.7 * hr) / 1000
    lo, hi = int(0.6 * lvet * fs), int(1.4 * lvet * fs)
    base = np.round(ao_s * fs).astype(np.int64)
    idx = base[:, None] + np.arange(lo, hi + 1)[None, :]
    ok = (idx < len(scg)).all(axis=1)
    out = np.full(ao_s.size, np.nan)
    if ok.any():
        win = scg[idx[ok]]
        best = idx[ok][np.arange(ok.sum()), np.argmax(win, axis=1)]
        out[ok] = template_refine(scg, fs, best, half_s=0.1, max_shift_s=0.04) / fs
    return out


def segment_hr(beats_s: np.ndarray, duration_s: float, seg_s: float = 10.0,
               fallback: np.ndarray | None = None, fs: float = 100.0) -> np.ndarray:
    """HR (bpm) per non-overlapping segment: 60 / median plausible IBI, else the autocorrelation
    period of `fallback` in that segment, else NaN. -> (S,)."""
    n_seg = max(int(duration_s // seg_s), 1)
    edges = np.arange(n_seg + 1) * seg_s
    ibi = np.diff(beats_s)
    mid = beats_s[1:]
    ok = (ibi > 0.33) & (ibi < 1.5)
    seg = np.searchsorted(edges, mid, side="right") - 1
    hr = np.full(n_seg, np.nan)
    for k in range(n_seg):  # loop over segments (a handful), not samples
        sel = ok & (seg == k)
        if sel.sum() >= 2:
            hr[k] = 60.0 / np.median(ibi[sel])
        elif fallback is not None:
            s, e = int(edges[k] * fs), int(edges[k + 1] * fs)
            hr[k] = 60.0 / beat_period(fallback[s:e], fs)[0]
    return hr


def match_beats(det_s: np.ndarray, r_s: np.ndarray) -> dict:
    """Assign detections to cardiac cycles [R_k - 0.15 RR_k, R_k+1 - 0.15 RR_k).

    Returns "slot" (D,) cycle index or -1, "count" (B-1,) detections per cycle, "first" (B-1,)
    the detection time per cycle (NaN if none).
    """
    r_s = np.asarray(r_s, dtype=np.float64)
    if r_s.size < 3:
        raise DataError(f"need >= 3 reference beats to score, got {r_s.size}")
    rr = np.diff(r_s)
    edges = r_s[:-1] - 0.15 * rr
    edges = np.append(edges, r_s[-1] - 0.15 * rr[-1])
    slot = np.searchsorted(edges, det_s, side="right") - 1
    slot[(slot < 0) | (slot >= rr.size)] = -1
    count = np.bincount(slot[slot >= 0], minlength=rr.size)
    first = np.full(rr.size, np.nan)
    valid = slot >= 0
    # the first detection of each cycle (detections are sorted)
    order = np.flatnonzero(valid)
    _, pos = np.unique(slot[order], return_index=True)
    first[slot[order][pos]] = det_s[order][pos]
    return {"slot": slot, "count": count, "first": first}


def hrv(ibi_s: np.ndarray) -> tuple[float, float]:
    """(SDNN, RMSSD) in ms from successive intervals (s)."""
    ibi = np.asarray(ibi_s) * 1000
    if ibi.size < 3:
        return float("nan"), float("nan")
    return float(np.std(ibi)), float(np.sqrt(np.mean(np.diff(ibi) ** 2)))


def beat_metrics(det_s: np.ndarray, truth: dict, fallback: np.ndarray | None = None,
                 seg_s: float = 10.0, exclude: np.ndarray | None = None) -> dict:
    """HR/IBI/HRV/missed/extra of detected beat times against truth["r_s"].

    `exclude` (optional, (T,) bool on the fs_ref grid) drops segments that are mostly excluded
    (e.g. rejected windows) from the HR error.
    """
    det_s = np.sort(np.asarray(det_s, dtype=np.float64))
    r_s = truth["r_s"]
    fs = float(truth["fs_ref"])
    dur = len(truth["t"]) / fs
    mt = match_beats(det_s, r_s)
    single = mt["count"] == 1
    pair = single[:-1] & single[1:]
    d_ibi = np.diff(mt["first"])[pair]
    r_ibi = np.diff(r_s)[:-1][pair]
    ibi_err = np.abs(d_ibi - r_ibi) * 1000
    hr_est = segment_hr(det_s, dur, seg_s, fallback, fs)
    hr_ref = segment_hr(r_s, dur, seg_s)
    err = np.abs(hr_est - hr_ref)
    if exclude is not None:
        n_seg = len(err)
        frac = np.array([exclude[int(k * seg_s * fs):int((k + 1) * seg_s * fs)].mean()
                         for k in range(n_seg)])
        err = err[frac < 0.5]
    det_ibi = np.diff(det_s)
    det_ibi = det_ibi[(det_ibi > 0.33) & (det_ibi < 1.5)]
    if det_ibi.size:  # HRV from normal-to-normal intervals: drop missed/extra-beat artefacts
        med = np.median(det_ibi)
        det_ibi = det_ibi[(det_ibi > 0.7 * med) & (det_ibi < 1.3 * med)]
    sd_d, rm_d = hrv(det_ibi)
    sd_r, rm_r = hrv(np.diff(r_s))
    n = mt["count"].size
    return {
        "hr_mae": float(np.nanmean(err)) if err.size and np.isfinite(err).any() else float("nan"),
        "ibi_mae_ms": float(ibi_err.mean()) if ibi_err.size else float("nan"),
        "sdnn_err_ms": abs(sd_d - sd_r), "rmssd_err_ms": abs(rm_d - rm_r),
        "missed_pct": 100.0 * float((mt["count"] == 0).sum()) / n,
        "extra_pct": 100.0 * float(np.maximum(mt["count"] - 1, 0).sum()) / n,
        "n_ibi": int(ibi_err.size),
    }


def window_interval_ratios(det_s: np.ndarray, r_s: np.ndarray, duration_s: float,
                           window_s: float = 5.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The windows `octave_errors` scores: per `window_s` window of [0, duration_s) with >= 3
    detections and >= 3 R peaks, (its index, the detected median interval over the true one,
    the true median interval in s), three (M,) arrays."""
    det_s, r_s = np.sort(np.asarray(det_s, dtype=np.float64)), np.asarray(r_s, dtype=np.float64)
    ks, ratios, trues = [], [], []
    for k in range(int(duration_s // window_s)):  # a dozen windows per minute
        lo, hi = k * window_s, (k + 1) * window_s
        d = det_s[(det_s >= lo) & (det_s < hi)]
        r = r_s[(r_s >= lo) & (r_s < hi)]
        if d.size < 3 or r.size < 3:
            continue
        true = np.median(np.diff(r))
        ks.append(k)
        ratios.append(np.median(np.diff(d)) / true)
        trues.append(true)
    return np.array(ks, dtype=np.int64), np.array(ratios), np.array(trues)


def is_octave(ratio) -> np.ndarray:
    """An interval ratio nearer a half or a double than 1: outside [1/sqrt(2), sqrt(2)]."""
    ratio = np.asarray(ratio, dtype=np.float64)
    return ~((2 ** -0.5 <= ratio) & (ratio <= 2 ** 0.5))


def octave_errors(det_s: np.ndarray, r_s: np.ndarray, duration_s: float,
                  window_s: float = 5.0) -> tuple[int, int]:
    """(windows scored, windows with an octave error) of detected beats against R peaks.

    Per `window_s` window with >= 2 intervals on both sides (`window_interval_ratios`): the
    detected median interval over the true one; outside [1/sqrt(2), sqrt(2)] (nearer to a half
    or a double than to the truth, `is_octave`) is an octave error.
    """
    ks, ratios, _ = window_interval_ratios(det_s, r_s, duration_s, window_s)
    return len(ks), int(is_octave(ratios).sum())


def fiducial_metrics(ao_s: np.ndarray, ac_s: np.ndarray, truth: dict) -> dict:
    """AO / AC / LVET timing MAE (ms) over cycles with exactly one detected AO."""
    mt = match_beats(ao_s, truth["r_s"])
    k = np.flatnonzero(mt["count"] == 1)
    if k.size == 0:
        return {"ao_mae_ms": float("nan"), "ac_mae_ms": float("nan"), "lvet_mae_ms": float("nan")}
    det = np.flatnonzero(mt["slot"] >= 0)
    # detection index per cycle with one detection
    sl = mt["slot"][det]
    j = det[np.searchsorted(sl, k)]
    ao_t, ac_t = truth["ao_s"][k], truth["ac_s"][k]
    ao_e = np.abs(ao_s[j] - ao_t) * 1000
    ac_d = ac_s[j]
    ok = np.isfinite(ac_d)
    ac_e = np.abs(ac_d[ok] - ac_t[ok]) * 1000
    lv_e = np.abs((ac_d[ok] - ao_s[j][ok]) - (ac_t[ok] - ao_t[ok])) * 1000
    nan = float("nan")
    return {"ao_mae_ms": float(ao_e.mean()),
            "ac_mae_ms": float(ac_e.mean()) if ac_e.size else nan,
            "lvet_mae_ms": float(lv_e.mean()) if lv_e.size else nan}


def per_beat_pearson(scg_hat: np.ndarray, scg_ref: np.ndarray, r_idx: np.ndarray,
                     fs: float, pre_s: float = 0.05, post_s: float = 0.55) -> np.ndarray:
    """Pearson r per cardiac cycle over [R - pre_s, R + post_s] (vectorised) -> (B,)."""
    scg_hat = np.asarray(scg_hat, dtype=np.float64)
    scg_ref = np.asarray(scg_ref, dtype=np.float64)
    if scg_hat.shape != scg_ref.shape:
        raise DataError(f"reconstructed SCG shape {scg_hat.shape} != reference {scg_ref.shape}")
    off = np.arange(-int(pre_s * fs), int(post_s * fs) + 1)
    idx = np.asarray(r_idx)[:, None] + off[None, :]
    idx = idx[(idx[:, 0] >= 0) & (idx[:, -1] < len(scg_ref))]
    a = scg_hat[idx] - scg_hat[idx].mean(axis=1, keepdims=True)
    b = scg_ref[idx] - scg_ref[idx].mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    return np.where(den > 0, (a * b).sum(1) / np.where(den > 0, den, 1), np.nan)
