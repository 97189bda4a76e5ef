"""Out-of-family test generator: earbud BCG made by a different process than `simulator`.

Used only to *test* (bench rows marked out-of-family); never for training, calibration or model
selection. Everything that could share an assumption with the training simulator is drawn from
another model:

* rhythm: ECGSYN's RR model (McSharry et al. 2003: an RR tachogram with Gaussian LF and HF
  spectral peaks) at 52-112 bpm, R peaks stepped through the tachogram; the truth ECG is
  ECGSYN's P-Q-R-S-T waves in beat phase, for display (the simulator: sinusoidal RSA + 0.1 Hz
  wave, phase integration). ECGSYN's ODE is not used: its adaptive-step solver made the R
  peaks depend on the CPU's SIMD level, so the test set differed from machine to machine;
* beat complex: parametric H-I-J-K-L waves (Gaussian lobes, J dominant), latencies from R plus
  3 % of the RR deviation, 3 ms jitter per wave (simulator: aortic flow -> force -> head
  resonance);
* coupling: uniform random BCG directions per bud, an independent second component (derivative
  shape), bud lag 0-8 ms (simulator: vectors tilted from the head axes);
* respiration: neurokit2 `rsp_simulate` (breathmetrics) waveform as sway and 10-25 % amplitude
  modulation (simulator: a sinusoid);
* drift and noise: low-passed random-walk drift, white + 1/f noise of random densities;
* sampling: linear-phase FIR anti-alias, +-60 ppm clock drift, 0-2 ms timestamp jitter, 14-bit
  +-4 g (simulator: Butterworth, 16-bit +-2 g);
* loss: Poisson loss events with log-normal burst lengths of mean `burst` packets, optional
  outages (simulator: Gilbert-Elliott, geometric bursts);
* reference SCG: Ricker wavelets at MC/AO/AC, PEP 70-130 ms, LVET 0.33 RR^0.5 (simulator: Gabor
  atoms, Weissler intervals).

The truth also holds each beat's J-lobe centre (`j_s`): the BCG fiducial a J-peak detector
times, which follows R by the J latency, its small RR dependence and a 3-ms jitter.

`simulate_out_of_family(cfg, seed, kind)` returns the `simulator.simulate` layout (left/right
streams, truth, fs_in, duration_s). kind "beats" (the default), "noise" (pink + white noise at
random levels, no heartbeat), "no_contact" (a bud resting on a surface: sensor noise, drift,
rare taps, no heartbeat). Reads cfg.fs_in, cfg.duration_s, cfg.fs_ref, cfg.channel (loss, burst,
samples_per_packet); `outage_s` > 0 adds 1-per-15-s outages of that length.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
from scipy import ndimage, signal

from twscardio.config import SimConfig

__all__ = ["simulate_out_of_family", "HR_RANGE", "KINDS"]

HR_RANGE = (52.0, 112.0)
KINDS = ("beats", "noise", "no_contact")
_FS = 250.0  # internal rate
_SEED_OFFSET = 7_700_000  # keeps these draws apart from every simulator seed in use


# ECGSYN's RR spectrum (McSharry et al. 2003): Gaussian peaks at the Mayer-wave (LF) and
# respiratory (HF) frequencies, their width, and the LF/HF power ratio
_RR_FS, _F_LF, _F_HF, _F_SD, _LF_HF = 4.0, 0.1, 0.25, 0.01, 0.5
# ECGSYN's P, Q, R, S, T waves: phase angles (rad from R), amplitudes, widths (rad)
_ECG_ANGLE = np.deg2rad([-70.0, -15.0, 0.0, 15.0, 100.0])
_ECG_AMP = np.array([1.2, -5.0, 30.0, -7.5, 0.75])
_ECG_WIDTH = np.array([0.25, 0.1, 0.1, 0.1, 0.4])


def _rr_tachogram(rng: np.random.Generator, hr: float, hr_sd: float,
                  n: int) -> np.ndarray:
    """RR intervals (s) at _RR_FS (n,): the bimodal-spectrum RR process, random phases, scaled
    to mean 60 / hr and SD 60 hr_sd / hr^2 (hr, hr_sd in bpm)."""
    f = np.fft.rfftfreq(n, 1 / _RR_FS)
    power = (_LF_HF * np.exp(-0.5 * ((f - _F_LF) / _F_SD) ** 2)
             + np.exp(-0.5 * ((f - _F_HF) / _F_SD) ** 2)) / (1 + _LF_HF)
    x = np.fft.irfft(np.sqrt(power) * np.exp(2j * np.pi * rng.random(f.size)), n=n)
    x = (x - x.mean()) / (x.std() + 1e-12)
    return 60.0 / hr + 60.0 * hr_sd / hr ** 2 * x


def _r_peaks(rr: np.ndarray, t0: float, end_s: float) -> np.ndarray:
    """R peaks (s) from t0 stepping through the tachogram rr (sampled at _RR_FS from t0):
    r_{k+1} = r_k + RR(r_k), until end_s."""
    grid = t0 + np.arange(rr.size) / _RR_FS
    r = [t0]
    while r[-1] < end_s:  # ~1 step per beat
        r.append(r[-1] + float(np.interp(r[-1], grid, rr)))
    return np.array(r)


def _ecg(r: np.ndarray, t: np.ndarray) -> np.ndarray:
    """ECGSYN's waves at the R peaks r (s) on the times t (display only): the phase of t in its
    R-R cycle, wrapped to (-pi, pi] about the nearer R, and z = sum a_i b_i^2
    exp(-(phase - angle_i)^2 / 2 b_i^2), the waveform ECGSYN's ODE draws on its limit cycle."""
    k = np.clip(np.searchsorted(r, t) - 1, 0, r.size - 2)
    phase = 2 * np.pi * (t - r[k]) / (r[k + 1] - r[k])
    phase = np.angle(np.exp(1j * phase))
    d = np.angle(np.exp(1j * (phase[:, None] - _ECG_ANGLE[None, :])))
    return (_ECG_AMP * _ECG_WIDTH ** 2 * np.exp(-0.5 * (d / _ECG_WIDTH) ** 2)).sum(axis=1)


@functools.lru_cache(maxsize=64)
def _rhythm(seed: int, duration_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ECG at _FS (display), R peaks (s) and a breathing waveform, over duration_s + 2 s."""
    import neurokit2 as nk

    rng = np.random.default_rng(seed)
    hr = float(rng.uniform(*HR_RANGE))
    hr_sd = float(rng.uniform(1.0, 4.0))
    n_s = int(np.ceil(duration_s)) + 2
    t0 = -float(rng.uniform(1.0, 2.0))  # the first R before the recording starts
    rr = _rr_tachogram(rng, hr, hr_sd, int(np.ceil((n_s - t0 + 5) * _RR_FS)))
    r = _r_peaks(rr, t0, n_s + 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rsp = nk.rsp_simulate(duration=n_s, sampling_rate=int(_FS), noise=0.0,
                              respiratory_rate=float(rng.uniform(10, 22)),
                              random_state=int(rng.integers(2**31)))
    ecg = _ecg(r, np.arange(int(n_s * _FS)) / _FS)
    rsp = (rsp - rsp.mean()) / (rsp.std() + 1e-12)
    return ecg, r[(r >= 0) & (r < n_s)], rsp


def _lobes(n: int, centres: np.ndarray, amps: np.ndarray, widths: np.ndarray,
           fs: float) -> np.ndarray:
    """Sum of Gaussian lobes A exp(-tau^2 / 2 w^2) on an n-sample grid (scatter-add)."""
    h = int(np.ceil(4 * widths.max() * fs))
    off = np.arange(-h, h + 1)
    idx = np.round(centres * fs).astype(np.int64)[:, None] + off[None, :]
    tau = idx / fs - centres[:, None]
    val = amps[:, None] * np.exp(-0.5 * (tau / widths[:, None]) ** 2)
    ok = (idx >= 0) & (idx < n)
    return np.bincount(idx[ok], weights=val[ok], minlength=n)


def _ricker(n: int, centres: np.ndarray, amps: np.ndarray, width: float, fs: float):
    h = int(np.ceil(5 * width * fs))
    off = np.arange(-h, h + 1)
    idx = np.round(centres * fs).astype(np.int64)[:, None] + off[None, :]
    u = ((idx / fs - centres[:, None]) / width) ** 2
    val = amps[:, None] * (1 - u) * np.exp(-u / 2)
    ok = (idx >= 0) & (idx < n)
    return np.bincount(idx[ok], weights=val[ok], minlength=n)


def _pink(rng: np.random.Generator, n: int, dims: int) -> np.ndarray:
    """Unit-rms 1/f noise (n, dims) by spectral shaping."""
    f = np.fft.rfftfreq(n, 1 / _FS)
    spec = (rng.normal(size=(f.size, dims)) + 1j * rng.normal(size=(f.size, dims)))
    spec /= np.sqrt(np.maximum(f, 0.05))[:, None]
    x = np.fft.irfft(spec, n=n, axis=0)
    return x / (x.std(axis=0, keepdims=True) + 1e-12)


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def _loss_mask(rng: np.random.Generator, n: int, cfg: SimConfig, outage_s: float,
               fs_in: float) -> np.ndarray:
    """Delivered samples (n,) bool: Poisson loss events, log-normal burst lengths (packets)."""
    spp = cfg.channel.samples_per_packet
    n_pk = -(-n // spp)
    keep = np.ones(n_pk, dtype=bool)
    loss, mean_len = cfg.channel.loss, cfg.channel.burst
    if loss > 0:
        sigma = 0.6
        p_start = loss / (mean_len * (1 - loss) + loss)
        starts = np.flatnonzero(rng.random(n_pk) < p_start)
        lens = np.maximum(1, np.round(rng.lognormal(np.log(mean_len) - sigma ** 2 / 2, sigma,
                                                     starts.size))).astype(np.int64)
        for s, ln in zip(starts, lens):  # loops over loss events (a few hundred), not samples
            keep[s:s + ln] = False
    if outage_s > 0:
        per_pk = spp / fs_in
        for t0 in np.arange(rng.uniform(3, 15), n_pk * per_pk, 15.0):
            keep[int(t0 / per_pk):int((t0 + outage_s) / per_pk)] = False
    return np.repeat(keep, spp)[:n]


def simulate_out_of_family(cfg: SimConfig, seed: int, kind: str = "beats",
                           outage_s: float = 0.0) -> dict:
    """One out-of-family recording (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind '{kind}' (use one of {', '.join(KINDS)})")
    rng = np.random.default_rng(seed + _SEED_OFFSET)
    dur = float(cfg.duration_s)
    n = int(round(dur * _FS))
    t = np.arange(n) / _FS
    ecg, r_all, rsp = _rhythm(seed + _SEED_OFFSET, dur)
    rsp = rsp[:n]
    r = r_all[(r_all > 0.2) & (r_all < dur - 0.2)]
    rr = np.diff(r, prepend=r[0] - np.median(np.diff(r)))
    # R->wave latencies follow the beat's RR only weakly (a few ms per 100 ms of RR)
    lat_shift = 0.03 * (np.clip(rr, 0.4, 1.6) - np.median(rr))

    # --- the BCG complex: H I J K L lobes per beat --------------------------------------
    lat0 = np.cumsum(rng.uniform([0.10, 0.05, 0.05, 0.05, 0.06], [0.16, 0.08, 0.09, 0.09, 0.10]))
    amp0 = np.array([rng.uniform(0.1, 0.3), -rng.uniform(0.3, 0.6), 1.0,
                     -rng.uniform(0.35, 0.7), rng.uniform(0.2, 0.4)])
    wid0 = rng.uniform(0.02, 0.04, 5)
    resp_at = np.interp(r, t, rsp)
    beat_amp = (1 + rng.uniform(0.1, 0.25) * resp_at) * rng.normal(1, 0.08, r.size)
    centres = r[:, None] + lat0[None, :] + lat_shift[:, None] + rng.normal(0, 0.003, (r.size, 5))
    amps = beat_amp[:, None] * amp0[None, :]
    widths = np.broadcast_to(wid0, centres.shape)
    bcg = _lobes(n, centres.ravel(), amps.ravel(), widths.ravel(), _FS)
    bcg *= rng.uniform(2.0, 7.0) * 1e-3 / (np.abs(bcg).max() + 1e-12)  # peak, g
    bcg2 = np.gradient(bcg) * _FS * rng.uniform(0.005, 0.02)  # a second, derivative component
    # --- reference SCG (Ricker wavelets) ------------------------------------------------
    pep = rng.uniform(0.07, 0.13) + rng.normal(0, 0.004, r.size)
    ao = r + pep
    ac = ao + 0.33 * np.sqrt(np.clip(rr, 0.4, 1.6)) + rng.normal(0, 0.006, r.size)
    mc = ao - 0.035
    fr = cfg.fs_ref
    nr = int(round(dur * fr))
    w_scg = rng.uniform(0.012, 0.02)
    scg = _ricker(nr, np.concatenate([mc, ao, ac]),
                  np.concatenate([-0.4 * beat_amp, beat_amp, 0.55 * beat_amp]), w_scg, fr)

    if kind != "beats":
        bcg = bcg * 0.0
        bcg2 = bcg2 * 0.0
    out = {}
    fs_in = float(cfg.fs_in)
    taps = np.zeros(n)
    if kind == "no_contact":
        k = rng.poisson(0.05 * dur)
        taps[rng.integers(0, n, k)] = rng.normal(0, 5e-3, k)
        taps = ndimage.gaussian_filter1d(taps, 0.01 * _FS)
    drift_sd = rng.uniform(2e-3, 1e-2)
    taps_fir = signal.firwin(129, 0.42 * fs_in, fs=_FS, window=("kaiser", 8.0))
    lsb_a, lsb_g = 8.0 / 16384, 2 * np.deg2rad(2000) / 16384
    for side in ("left", "right"):
        d1, d2 = _unit(rng), _unit(rng)
        lag = rng.uniform(0.0, 0.008) if side == "right" else 0.0
        shift = int(round(lag * _FS))
        b1, b2 = np.roll(bcg, shift), np.roll(bcg2, shift)
        acc = b1[:, None] * d1 + b2[:, None] * d2
        if kind == "beats":
            acc += np.outer(rsp, _unit(rng)) * rng.uniform(1e-3, 3e-3)
        walk = ndimage.gaussian_filter1d(np.cumsum(rng.normal(size=(n, 3)), axis=0), 2 * _FS,
                                         axis=0)
        acc += drift_sd * walk / (walk.std(axis=0) + 1e-12)
        white = rng.uniform(60, 200) * 1e-6 * np.sqrt(_FS / 2)
        acc += white * rng.normal(size=(n, 3)) + 0.5 * white * _pink(rng, n, 3)
        if kind == "noise":
            level = 10 ** rng.uniform(np.log10(1e-4), np.log10(2e-2))
            acc += level * (rng.normal(size=(n, 3)) + _pink(rng, n, 3))
        acc += taps[:, None] * _unit(rng)
        gyro = np.outer(np.gradient(b1) * _FS, _unit(rng)) * 0.05
        gyro += np.outer(rsp, _unit(rng)) * 0.008 + 0.002 * rng.normal(size=(n, 3))
        imu = signal.oaconvolve(np.concatenate([acc, gyro], axis=1), taps_fir[:, None],
                                mode="same", axes=0)
        drift = rng.uniform(-60, 60) * 1e-6
        n_s = int(dur * fs_in) - 1
        ts = rng.uniform(0, 1 / fs_in) + np.arange(n_s) * (1 + drift) / fs_in
        ts = ts + rng.normal(0, rng.uniform(0, 0.002), n_s)
        ts = np.maximum.accumulate(ts) + np.arange(n_s) * 1e-9
        ts = ts[ts < t[-1]]
        vals = np.stack([np.interp(ts, t, imu[:, c]) for c in range(6)], axis=1)
        vals[:, :3] = np.clip(np.round(vals[:, :3] / lsb_a) * lsb_a, -4, 4)
        vals[:, 3:] = np.round(vals[:, 3:] / lsb_g) * lsb_g
        keep = _loss_mask(rng, ts.size, cfg, outage_s, fs_in)
        out[side] = {"relative_time": ts[keep], "acc": vals[keep, :3], "gyro": vals[keep, 3:]}
        out[f"delivered_{side}"] = keep

    tr = np.arange(nr) / fr
    idx = lambda x: np.clip(np.round(x * fr).astype(np.int64), 0, nr - 1)  # noqa: E731
    truth = {"fs_ref": np.float64(fr), "t": tr, "scg": scg,
             "ecg": np.interp(tr, np.arange(len(ecg)) / _FS, ecg),
             "bcg": np.interp(tr, t, bcg), "motion": np.zeros(nr, dtype=bool),
             "r_s": r, "ao_s": ao, "ac_s": ac, "mc_s": mc, "j_s": centres[:, 2],
             "r_idx": idx(r), "ao_idx": idx(ao),
             "ac_idx": idx(ac), "hr_true": np.float64(60.0 / np.mean(np.diff(r))),
             "delivered_left": out.pop("delivered_left"),
             "delivered_right": out.pop("delivered_right"), "kind": kind}
    return {"left": out["left"], "right": out["right"], "truth": truth, "fs_in": fs_in,
            "duration_s": dur, "family": "out"}
