"""Signal enhancement of the lossy, irregular, low-rate IMU stream (paper sec. 2.2.1-2.2.2).

Timestamps reveal the gaps: an interval longer than `gap_factor / fs_nominal` is a gap of
round(dt * fs) - 1 missing samples. On the uniform output grid (fs_out, default 100 Hz):

* `validity_mask` marks grid points whose bracketing input samples are <= `max_short_gap`
  missing samples apart (short gaps are interpolated and trusted; long gaps are not);
* `time_since_valid` (s) is the time encoding the learned path consumes with the mask;
* `resample_uniform` upsamples the irregular samples (cubic spline, PCHIP, linear, or a
  band-limited least-squares fit, `bandlimited_interpolate`); inside long gaps the value is the
  straight line between the bracketing samples (linear fill), flagged invalid by the mask.

`enhance_bud` runs the stage on one bud: t (n,), x (n, C) -> x_out (T, C), mask (T,), tsv (T,).
`linear_fill_upsample` is baseline (a)'s front-end: linear fill on the nominal grid, then a
cubic spline, with no mask.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline, PchipInterpolator

from shared.errors import DataError
from twscardio.config import EnhanceConfig

__all__ = ["validate_stream", "check_timestamps", "estimate_rate", "detect_gaps", "validity_mask",
           "time_since_valid", "resample_uniform", "bandlimited_interpolate", "enhance_bud",
           "linear_fill_upsample", "output_grid"]


def validate_stream(t, x, name: str = "stream",
                    min_samples: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Check one bud's stream; return float arrays. DataError names the field on bad input."""
    t = np.asarray(t, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if t.ndim != 1:
        raise DataError(f"{name}.relative_time must be 1-D, got shape {t.shape}")
    if x.ndim != 2 or x.shape[0] != t.shape[0]:
        raise DataError(f"{name} samples must be (n, C) with n = len(relative_time) = {t.size}, "
                        f"got shape {x.shape}")
    if t.size < min_samples:
        raise DataError(f"{name} is empty or too short: {t.size} samples (need >= {min_samples})")
    if not np.all(np.isfinite(t)):
        raise DataError(f"{name}.relative_time contains NaN/inf")
    if not np.all(np.isfinite(x)):
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))[0]
        raise DataError(f"{name} samples contain NaN/inf (first at row {bad})")
    d = np.diff(t)
    if np.any(d <= 0):
        i = int(np.flatnonzero(d <= 0)[0])
        raise DataError(f"{name}.relative_time is not strictly increasing at row {i + 1} "
                        f"({t[i]:.6f} -> {t[i + 1]:.6f})")
    return t, x


# IMU output rates we accept from timestamps (the paper's devices: 15-100 Hz)
RATE_RANGE_HZ = (2.0, 2000.0)


def check_timestamps(t: np.ndarray, name: str = "stream", fs_in: float | None = None) -> float:
    """Timestamps must be seconds at an IMU rate, and agree with `fs_in` when given; -> rate (Hz).

    Milliseconds (median step 2..1000) and sample indices (integer steps of 1) are recognised
    and named, so a unit mistake is one clear error instead of an upsampling blow-up. The rate
    check reads the median step (robust to a minority of gaps) and the 10th-percentile step
    (packets keep their in-packet spacing even under heavy loss), so `fs_in` may sit between
    the two but not, say, a factor 2 off both.
    """
    t = np.asarray(t, dtype=np.float64)
    d = np.diff(t)
    if d.size == 0:
        raise DataError(f"{name}.relative_time needs >= 2 samples")
    med = float(np.median(d))
    if med >= 1.0 / RATE_RANGE_HZ[0]:
        if med == 1.0 and np.all(t == np.round(t)):
            raise DataError(f"{name}.relative_time looks like sample indices (integer steps of 1);"
                            f" pass seconds (divide by the sample rate)")
        if 2.0 <= med <= 1000.0:
            raise DataError(f"{name}.relative_time looks like milliseconds (median step {med:g}, "
                            f"{1000 / med:.3g} Hz if ms); pass seconds (divide by 1000)")
        raise DataError(f"{name}.relative_time median step {med:g} s ({1 / med:.3g} Hz) is not "
                        f"an IMU rate in seconds (expected {RATE_RANGE_HZ[0]:g}-"
                        f"{RATE_RANGE_HZ[1]:g} Hz)")
    if med < 1.0 / RATE_RANGE_HZ[1]:
        raise DataError(f"{name}.relative_time median step {med:.3g} s ({1 / med:.3g} Hz) is "
                        f"too fast for an IMU; timestamps must be in seconds")
    rate = 1.0 / med
    if fs_in is not None:
        fast = 1.0 / max(float(np.percentile(d, 10)), 1e-12)
        if not 0.75 * rate <= fs_in <= 1.33 * fast:
            raise DataError(f"{name}: fs_in = {fs_in:g} Hz disagrees with the timestamps (median "
                            f"step {med * 1000:.3g} ms = {rate:.3g} Hz)")
    return rate


def estimate_rate(t: np.ndarray) -> float:
    """Nominal rate (Hz) = 1 / median interval; robust to gaps (they are a minority)."""
    return float(1.0 / np.median(np.diff(t)))


def detect_gaps(t: np.ndarray, fs_nominal: float, gap_factor: float = 1.5):
    """Gaps from timestamps: (after_index (G,), n_missing (G,)). A gap follows sample i."""
    d = np.diff(t)
    i = np.flatnonzero(d > gap_factor / fs_nominal)
    missing = np.maximum(np.round(d[i] * fs_nominal).astype(np.int64) - 1, 1)
    return i, missing


def output_grid(t0: float, t1: float, fs_out: float) -> np.ndarray:
    """Uniform grid k/fs_out covering [t0, t1) (absolute times)."""
    k0, k1 = int(np.ceil(t0 * fs_out - 1e-9)), int(np.ceil(t1 * fs_out - 1e-9))
    return np.arange(k0, k1) / fs_out


def _bracket(t: np.ndarray, t_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the input sample at/just before each output time (clipped), and inside-ness."""
    j = np.clip(np.searchsorted(t, t_out, side="right") - 1, 0, t.size - 2)
    inside = (t_out >= t[0]) & (t_out <= t[-1])
    return j, inside


def validity_mask(t: np.ndarray, t_out: np.ndarray, fs_nominal: float,
                  max_short_gap: int = 2) -> np.ndarray:
    """bool (T,): True where the bracketing input samples are <= max_short_gap samples apart."""
    j, inside = _bracket(t, t_out)
    missing = np.round((t[j + 1] - t[j]) * fs_nominal).astype(np.int64) - 1
    return inside & (missing <= max_short_gap)


def time_since_valid(t: np.ndarray, t_out: np.ndarray) -> np.ndarray:
    """Seconds since the last delivered sample at each output time (T,); 0 before the first."""
    j = np.searchsorted(t, t_out, side="right") - 1
    return np.where(j >= 0, t_out - t[np.clip(j, 0, None)], 0.0)


def bandlimited_interpolate(t: np.ndarray, x: np.ndarray, t_out: np.ndarray, f_max: float,
                            period: float | None = None, ridge: float = 1e-8) -> np.ndarray:
    """Least-squares band-limited reconstruction from irregular samples.

    Fits x(t) = sum_{k: k/P <= f_max} a_k cos(2 pi k t / P) + b_k sin(2 pi k t / P) to the
    samples (ridge-regularised) and evaluates it on t_out. Exact (to round-off) for any
    trigonometric polynomial with period P and bandwidth <= f_max when the samples determine it.
    Shapes: t (n,), x (n, C), t_out (T,) -> (T, C). P defaults to 1.25 x the covered span.
    """
    x2 = x.reshape(len(t), -1)
    t0 = min(t[0], t_out[0])
    span = max(t[-1], t_out[-1]) - t0
    P = period if period is not None else 1.25 * span
    K = int(np.floor(f_max * P + 1e-9))

    def basis(tt: np.ndarray) -> np.ndarray:
        ang = 2 * np.pi * np.outer(tt - t0, np.arange(1, K + 1)) / P
        return np.concatenate([np.ones((tt.size, 1)), np.cos(ang), np.sin(ang)], axis=1)

    A = basis(t)
    lam = ridge * np.trace(A.T @ A) / A.shape[1]
    coef = np.linalg.solve(A.T @ A + lam * np.eye(A.shape[1]), A.T @ x2)
    return (basis(t_out) @ coef).reshape((t_out.size,) + x.shape[1:])


def resample_uniform(t: np.ndarray, x: np.ndarray, t_out: np.ndarray, method: str = "spline",
                     f_max: float | None = None) -> np.ndarray:
    """Interpolate irregular samples (n,) x (n, C) onto t_out (T,) -> (T, C); constant outside."""
    tc = np.clip(t_out, t[0], t[-1])
    if method == "spline":
        return CubicSpline(t, x, axis=0)(tc)
    if method == "pchip":
        return PchipInterpolator(t, x, axis=0)(tc)
    if method == "linear":
        j, _ = _bracket(t, tc)
        a = ((tc - t[j]) / (t[j + 1] - t[j]))[:, None]
        return (1 - a) * x[j] + a * x[j + 1]
    if method == "bandlimited":
        fs = estimate_rate(t)
        return bandlimited_interpolate(t, x, tc, f_max if f_max else 0.45 * fs)
    raise DataError(f"unknown interpolation method '{method}' "
                    "(use spline, pchip, linear or bandlimited)")


def enhance_bud(t, x, cfg: EnhanceConfig, t_out: np.ndarray, name: str = "bud",
                fs_nominal: float | None = None):
    """One bud: (n,), (n, C) -> x_out (T, C), mask (T,) bool, tsv (T,) s.

    Short gaps (<= cfg.max_short_gap samples) are filled by the chosen interpolator and marked
    valid; long gaps are filled by a straight line and marked invalid.
    """
    t, x = validate_stream(t, x, name)
    fs = fs_nominal or estimate_rate(t)
    y = resample_uniform(t, x, t_out, cfg.method)
    mask = validity_mask(t, t_out, fs, cfg.max_short_gap)
    inside = (t_out >= t[0]) & (t_out <= t[-1])
    lin = ~mask & inside
    if lin.any():
        y[lin] = resample_uniform(t, x, t_out[lin], "linear")
    return y, mask, time_since_valid(t, t_out)


def linear_fill_upsample(t, x, t_out: np.ndarray, name: str = "bud",
                         fs_nominal: float | None = None) -> np.ndarray:
    """Baseline (a) front-end: linear fill onto the nominal-rate grid, then a cubic spline."""
    t, x = validate_stream(t, x, name)
    fs = fs_nominal or estimate_rate(t)
    t_nom = t[0] + np.arange(int(np.floor((t[-1] - t[0]) * fs)) + 1) / fs
    x_nom = resample_uniform(t, x, t_nom, "linear")
    return CubicSpline(t_nom, x_nom, axis=0)(np.clip(t_out, t_nom[0], t_nom[-1]))
