"""Physiological earbud-IMU simulator: in-ear BCG, chest SCG, ECG, motion, sensor and Bluetooth.

`simulate(cfg, seed)` returns one recording in the EarCardio layout (per bud: `relative_time`,
acceleration (g, gravity removed), rotation rate (rad/s), delivered samples only) plus ground
truth on the reference grid. Every random draw comes from `np.random.default_rng(seed)`.

Assumptions (ranges are literature-typical, not measured by us):

* **Rhythm.** Instantaneous HR = HR0 * (1 + RSA + LF) with respiratory sinus arrhythmia at the
  breathing rate (0.2-0.35 Hz, 2-6 %) and a 0.1 Hz Mayer/LF wave (1-4 %); R peaks where the
  integrated phase crosses an integer, plus 6 ms beat jitter. HR0 ~ U(hr_range).
* **ECG.** Gaussian P, Q, R, S, T waves at exact R times (T at 0.25*sqrt(RR) s).
* **Systolic time intervals** (Weissler regressions): PEP = 131 - 0.4 HR ms, LVET = 413 - 1.7 HR
  ms, each with a subject offset and per-beat jitter; AO = R + PEP - 40 ms (Q->R), AC = AO + LVET,
  MC = AO - 30 ms, MO = AC + 80 ms.
* **SCG** (chest, dorso-ventral): Gabor atoms at MC (-), AO (+, dominant), RE (+), AC (+), MO (-)
  with subject-specific amplitudes/frequencies, +-15 % respiratory amplitude modulation.
* **In-ear BCG.** Aortic flow q(u) ~ u^1.5 (1-u)^3 over [AO, AC]; force dq/dt through a
  per-subject 2nd-order head response (f0 4-8 Hz, zeta 0.2-0.4); a longitudinal and a weaker
  anterior-posterior component, 3-8 mg peak; the same head vector reaches both buds (common mode),
  rotated into each bud's frame (bud orientations differ by ~180 deg about the vertical plus
  +-25 deg), right bud lagging 1-5 ms. A small pitch rotation (~3 mrad/s) reaches the gyro.
* **Respiration sway**: 1-2 mg head acceleration and 10 mrad/s pitch at the breathing rate.
* **Motion** (rigid head rotating about the neck pivot, so accel = dw/dt x p + w x (w x p), with
  p the pivot->bud vector; accel and gyro share it): head turns/nods (0.3-3 Hz bursts, 0.25*level
  rad/s rms per axis), chewing/talking (3-8 Hz; rigid rotation plus non-rigid jaw vibration that
  differs between buds), optional walking (1.6-2.2 Hz vertical impacts, common to both buds).
* **Sensor.** White noise at the given densities, 4th-order Butterworth anti-alias at 0.4*fs_in
  (zero-phase), sampling at fs_in with clock drift, interval jitter and timestamp jitter,
  16-bit quantisation (+-2 g, +-1000 deg/s).
* **Bluetooth.** One Gilbert-Elliott channel per bud (`twscardio.channel`), packets of
  `samples_per_packet` samples.

`SimConfig.morphology = "randomised"` (the network's training family; reconstructed ranges)
widens every per-subject choice: BCG complex (flow shape exponents, head resonance f0 3-10 Hz,
zeta 0.15-0.6, a second resonance at 1.5-2.5 f0 with weight 0-0.6, head transit delay 0-15 ms,
longitudinal/AP ratio 0.1-1, 1.5-10 mg), coupling (BCG directions tilted up to 180 deg so any
axis may carry either polarity, per-axis ear-canal gains 0.4-1.6 per bud), rhythm (RSA 0-10 %,
LF 0-6 %; 30 % of subjects with premature beats at 0-6 % of beats, 0.55-0.8 RR early, half
amplitude, compensatory pause; 12 % AF-like: i.i.d. RR with CV 0.08-0.25), sensor noise (white
50-250 ug/sqrt(Hz) plus 1/f noise of 0-1x its rms in the 0-15 Hz band), clock drift up to
+-100 ppm and timestamp jitter 0-2 ms. "fixed" is the original single family above.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from twscardio.channel import GilbertElliottChannel, packet_loss_mask
from twscardio.config import SimConfig

__all__ = ["simulate", "simulate_no_beat", "draw_subject", "render_atoms", "BUD_CHANNELS"]

G = 9.81
BUD_CHANNELS = ["accelerationX", "accelerationY", "accelerationZ",
                "rotationRateX", "rotationRateY", "rotationRateZ"]


def _rot(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation matrix (3, 3)."""
    a = axis / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _random_tilt(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    return _rot(rng.normal(size=3), np.deg2rad(rng.uniform(-max_deg, max_deg)))


def draw_subject(rng: np.random.Generator, hr_range: list[float],
                 randomised: bool = False) -> dict:
    """Per-subject physiology and anatomy (see module docstring for the ranges). `randomised`
    draws the widened morphology family on top (the fixed draws come first, unchanged)."""
    flip = _rot(np.array([0.0, 0.0, 1.0]), np.pi)  # right bud faces the other way
    s = {
        "hr0": rng.uniform(*hr_range),
        "rsa": rng.uniform(0.02, 0.06), "lf": rng.uniform(0.01, 0.04),
        "f_resp": rng.uniform(0.2, 0.35), "f_lf": rng.uniform(0.08, 0.12),
        "phi": rng.uniform(0, 2 * np.pi, size=3),
        "pep_off": rng.normal(0, 0.008), "lvet_off": rng.normal(0, 0.012),
        "scg_amp": rng.uniform(0.8, 1.2, size=5) * np.array([-0.35, 1.0, 0.3, 0.6, -0.25]),
        "scg_f": rng.uniform(0.9, 1.1, size=5) * np.array([15.0, 12.5, 10.0, 12.0, 9.0]),
        "scg_sigma": rng.uniform(0.85, 1.15, size=5) * np.array([0.012, 0.016, 0.02, 0.016, 0.02]),
        "f0": rng.uniform(4.0, 8.0), "zeta": rng.uniform(0.2, 0.4),
        "bcg_mg": rng.uniform(3.0, 8.0), "bcg_ap": rng.uniform(0.3, 0.5),
        "d_long": _random_tilt(rng, 25) @ np.array([0.0, 0.0, 1.0]),
        "d_ap": _random_tilt(rng, 25) @ np.array([0.0, 1.0, 0.0]),
        "R_left": _random_tilt(rng, 25), "R_right": _random_tilt(rng, 25) @ flip,
        "lag_s": rng.uniform(0.001, 0.005),
    }
    if randomised:
        s.update(_randomised_morphology(rng, flip))
    return s


def _randomised_morphology(rng: np.random.Generator, flip: np.ndarray) -> dict:
    """The widened per-subject draws of the "randomised" family (module docstring)."""
    kind = rng.random()
    return {
        "rsa": rng.uniform(0.0, 0.10), "lf": rng.uniform(0.0, 0.06),
        "f0": rng.uniform(3.0, 10.0), "zeta": rng.uniform(0.15, 0.6),
        "f0b_ratio": rng.uniform(1.5, 2.5), "res_b": rng.uniform(0.0, 0.6),
        "flow_a": rng.uniform(1.0, 2.5), "flow_b": rng.uniform(2.0, 4.0),
        "transit_s": rng.uniform(0.0, 0.015),
        "bcg_mg": rng.uniform(1.5, 10.0), "bcg_ap": rng.uniform(0.1, 1.0),
        "d_long": _random_tilt(rng, 180) @ np.array([0.0, 0.0, 1.0]),
        "d_ap": _random_tilt(rng, 180) @ np.array([0.0, 1.0, 0.0]),
        "R_left": _random_tilt(rng, 40), "R_right": _random_tilt(rng, 40) @ flip,
        "gain_left": rng.uniform(0.4, 1.6, 3), "gain_right": rng.uniform(0.4, 1.6, 3),
        "ectopic_rate": rng.uniform(0.0, 0.06) if kind < 0.3 else 0.0,
        "af_cv": rng.uniform(0.08, 0.25) if 0.3 <= kind < 0.42 else 0.0,
        "noise_ug": rng.uniform(50.0, 250.0), "pink": rng.uniform(0.0, 1.0),
        "drift_ppm": rng.uniform(-100.0, 100.0), "ts_jitter_s": rng.uniform(0.0, 0.002),
    }


def render_atoms(n: int, fs: float, centers: np.ndarray, amps: np.ndarray, sigmas: np.ndarray,
                 freqs: np.ndarray, halfwidth_s: float) -> np.ndarray:
    """Sum of Gabor atoms A*exp(-tau^2/2s^2)*cos(2 pi f tau) on an n-sample grid at `fs`.

    Atoms (E,) are evaluated on a local window of +-halfwidth_s and scatter-added (bincount).
    """
    w = int(np.ceil(halfwidth_s * fs))
    off = np.arange(-w, w + 1)
    base = np.round(centers * fs).astype(np.int64)
    idx = base[:, None] + off[None, :]  # (E, 2w+1)
    tau = idx / fs - centers[:, None]
    val = amps[:, None] * np.exp(-0.5 * (tau / sigmas[:, None]) ** 2) * np.cos(
        2 * np.pi * freqs[:, None] * tau)
    ok = (idx >= 0) & (idx < n)
    return np.bincount(idx[ok], weights=val[ok], minlength=n)


def _beat_times(t: np.ndarray, fs: float, s: dict, rng: np.random.Generator) -> np.ndarray:
    ph = s["phi"]
    hr = s["hr0"] * (1 + s["rsa"] * np.sin(2 * np.pi * s["f_resp"] * t + ph[0])
                     + s["lf"] * np.sin(2 * np.pi * s["f_lf"] * t + ph[1]))
    phase = rng.uniform(0, 1) + np.cumsum(hr / 60.0) / fs
    i = np.flatnonzero(np.diff(np.floor(phase)) > 0) + 1
    frac = (np.ceil(phase[i - 1]) - phase[i - 1]) / (phase[i] - phase[i - 1])
    r = np.sort(t[i - 1] + frac / fs + rng.normal(0, 0.006, size=i.size))
    if s.get("af_cv", 0.0) > 0:  # AF-like: i.i.d. intervals around the mean
        rr = np.clip(rng.normal(1.0, s["af_cv"], r.size) * 60.0 / s["hr0"], 0.33, 2.0)
        r = r[0] + np.concatenate([[0.0], np.cumsum(rr[:-1])])
        r = r[r < t[-1]]
    return r


def _ectopics(r: np.ndarray, s: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Premature beats (0.55-0.8 RR early, then a compensatory pause) -> (r, premature flag)."""
    prem = np.zeros(r.size, dtype=bool)
    rate = s.get("ectopic_rate", 0.0)
    if rate <= 0 or r.size < 4:
        return r, prem
    r = r.copy()
    for k in np.flatnonzero(rng.random(r.size - 2) < rate) + 1:  # a few beats per recording
        if prem[k - 1]:
            continue
        r[k] = r[k - 1] + rng.uniform(0.55, 0.8) * (r[k + 1] - r[k - 1]) / 2
        prem[k] = True
    return r, prem


def _pink_noise(rng: np.random.Generator, n: int, fs: float, dims: int) -> np.ndarray:
    """Unit-rms 1/f noise (n, dims), flat below 0.1 Hz."""
    f = np.fft.rfftfreq(n, 1 / fs)
    spec = rng.normal(size=(f.size, dims)) + 1j * rng.normal(size=(f.size, dims))
    x = np.fft.irfft(spec / np.sqrt(np.maximum(f, 0.1))[:, None], n=n, axis=0)
    return x / (x.std(axis=0, keepdims=True) + 1e-12)


def _bandnoise(rng: np.random.Generator, n: int, fs: float, lo: float, hi: float,
               dims: int) -> np.ndarray:
    """Unit-rms band-limited Gaussian noise (n, dims)."""
    sos = signal.butter(2, [lo, hi], btype="band", fs=fs, output="sos")
    x = signal.sosfiltfilt(sos, rng.normal(size=(n, dims)), axis=0)
    return x / (x.std(axis=0, keepdims=True) + 1e-12)


def _envelope(rng: np.random.Generator, t: np.ndarray, rate: float, dur: tuple[float, float]):
    """Sum of Hann-shaped activity episodes (Poisson arrivals), clipped to [0, 1]."""
    T = t[-1] + 1 / (t[1] - t[0])
    k = rng.poisson(rate * T)
    if k == 0:
        return np.zeros_like(t)
    starts, lens = rng.uniform(-1, T, size=k), rng.uniform(*dur, size=k)
    u = (t[None, :] - starts[:, None]) / lens[:, None]
    env = np.where((u >= 0) & (u <= 1), np.sin(np.pi * np.clip(u, 0, 1)) ** 2, 0.0).sum(0)
    return np.clip(env, 0, 1)


def _motion(rng, t, fs, cfg: SimConfig, s: dict):
    """Head-frame angular velocity w (n,3), linear accel a_c (n,3, g), jaw vibration per bud."""
    n, m = t.size, cfg.motion_level
    w = np.zeros((n, 3))
    a_c = np.zeros((n, 3))
    jaw = np.zeros((2, n, 3))
    active = np.zeros(n)
    if m > 0:
        env_h = _envelope(rng, t, 0.1 * m, (0.8, 3.0))
        w += 0.25 * m * env_h[:, None] * _bandnoise(rng, n, fs, 0.3, 3.0, 3)
        env_c = _envelope(rng, t, 0.05 * m, (2.0, 6.0))
        w += 0.02 * m * env_c[:, None] * _bandnoise(rng, n, fs, 3.0, 8.0, 3)
        common = _bandnoise(rng, n, fs, 3.0, 8.0, 3)
        for b in range(2):  # jaw vibration: partly shared, partly bud-specific
            own = _bandnoise(rng, n, fs, 3.0, 8.0, 3)
            jaw[b] = 0.0007 * m * env_c[:, None] * (0.3 * common + 0.95 * own)
        active = np.maximum(env_h, env_c)
    if cfg.walking:
        f = rng.uniform(1.6, 2.2)
        ph = 2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)
        a_c[:, 2] += 0.12 * (np.cos(ph) + 0.5 * np.cos(2 * ph + 0.7) + 0.25 * np.cos(3 * ph))
        w[:, 0] += 0.1 * np.cos(ph + 0.4)
        active = np.ones(n)
    resp = np.sin(2 * np.pi * s["f_resp"] * t + s["phi"][0])
    a_c[:, 2] += 0.0015 * resp
    w[:, 0] += 0.01 * np.cos(2 * np.pi * s["f_resp"] * t + s["phi"][0])
    return w, a_c, jaw, active


def simulate(cfg: SimConfig, seed: int, subject: dict | None = None) -> dict:
    """One recording. Returns {"left", "right", "truth", "subject", "fs_in"}.

    left/right: {"relative_time": (n,), "acc": (n, 3) g, "gyro": (n, 3) rad/s} (delivered only).
    truth: fs_ref grid "t" (T,), "scg" (T,), "ecg" (T,), "bcg" (T,), "motion" (T,) bool;
    fiducial times "r_s", "ao_s", "ac_s", "mc_s" (B,) s and their indices "*_idx" on the grid;
    per bud "delivered_left"/"delivered_right" (n_all,) bool and "hr_true" mean HR.
    """
    rng = np.random.default_rng(seed)
    s = subject if subject is not None else draw_subject(rng, cfg.hr_range,
                                                         cfg.morphology == "randomised")
    fs = cfg.fs_sim
    n = int(round(cfg.duration_s * fs))
    t = np.arange(n) / fs

    # --- rhythm and systolic time intervals -------------------------------------------------
    r = _beat_times(t, fs, s, rng)
    r, premature = _ectopics(r, s, rng)
    rr = np.diff(r, prepend=r[0] - 60.0 / s["hr0"])
    hr_b = 60.0 / rr
    pep = (131 - 0.4 * hr_b) / 1000 + s["pep_off"] + rng.normal(0, 0.004, r.size)
    lvet = (413 - 1.7 * hr_b) / 1000 + s["lvet_off"] + rng.normal(0, 0.008, r.size)
    ao = r + pep - 0.040
    ac = ao + lvet
    mc, mo = ao - 0.030, ac + 0.080
    resp_at = lambda x: np.sin(2 * np.pi * s["f_resp"] * x + s["phi"][0])  # noqa: E731
    amp_b = (1 + 0.15 * resp_at(r)) * rng.normal(1.0, 0.05, r.size)
    amp_b = np.where(premature, 0.5 * amp_b, amp_b)  # less filling, a weaker beat

    # --- reference SCG and ECG on the fs_ref grid -----------------------------------------
    fr = cfg.fs_ref
    nr = int(round(cfg.duration_s * fr))
    centers = np.stack([mc, ao, ao + 0.07, ac, mo], axis=1)  # (B, 5)
    scg = render_atoms(nr, fr, centers.ravel(), (amp_b[:, None] * s["scg_amp"]).ravel(),
                       np.tile(s["scg_sigma"], r.size), np.tile(s["scg_f"], r.size), 0.08)
    qt = 0.25 * np.sqrt(rr)
    ecg_c = np.stack([r - 0.16, r - 0.03, r, r + 0.03, r + qt], axis=1)
    ecg_a = np.tile([0.12, -0.12, 1.0, -0.2, 0.3], r.size)
    ecg_s = np.tile([0.025, 0.01, 0.01, 0.01, 0.05], r.size)
    ecg = render_atoms(nr, fr, ecg_c.ravel(), ecg_a, ecg_s, np.zeros(ecg_a.size), 0.2)

    # --- in-ear BCG: aortic flow -> force -> head response --------------------------------
    k = np.clip(np.searchsorted(ao, t, side="right") - 1, 0, r.size - 1)
    u = (t - ao[k] - s.get("transit_s", 0.0)) / lvet[k]
    inside = (u >= 0) & (u < 1)
    uc = np.clip(u, 0, 1)
    q = np.where(inside, uc ** s.get("flow_a", 1.5) * (1 - uc) ** s.get("flow_b", 3.0), 0.0)
    q = q * amp_b[k]
    force = np.gradient(q) * fs
    w0 = 2 * np.pi * s["f0"]
    b, a = signal.bilinear([w0 ** 2], [1, 2 * s["zeta"] * w0, w0 ** 2], fs=fs)
    bcg_l = signal.lfilter(b, a, force)
    if s.get("res_b", 0.0) > 0:  # a second head/ear resonance (harmonic content)
        w1 = w0 * s["f0b_ratio"]
        b, a = signal.bilinear([w1 ** 2], [1, 2 * s["zeta"] * w1, w1 ** 2], fs=fs)
        bcg_l = bcg_l + s["res_b"] * signal.lfilter(b, a, force)
    bcg_l *= s["bcg_mg"] * 1e-3 / (np.percentile(np.abs(bcg_l), 99.5) + 1e-12)
    bcg_ap = np.gradient(bcg_l) * fs / (2 * np.pi * s["f0"]) * s["bcg_ap"]
    bcg_vec = bcg_l[:, None] * s["d_long"] + bcg_ap[:, None] * s["d_ap"]  # (n, 3) g
    w_bcg = np.outer(bcg_l / (np.abs(bcg_l).max() + 1e-12) * 0.003, [1.0, 0.0, 0.0])

    # --- motion (rigid head about the neck pivot) ----------------------------------------
    w, a_c, jaw, active = _motion(rng, t, fs, cfg, s)
    wdot = np.gradient(w, axis=0) * fs
    w_tot = w + w_bcg

    sos = signal.butter(4, 0.4 * cfg.fs_in, fs=fs, output="sos")
    acc_sd = s.get("noise_ug", cfg.accel_noise_ug) * 1e-6 * np.sqrt(fs / 2)
    gyr_sd = np.deg2rad(cfg.gyro_noise_dps) * np.sqrt(fs / 2)
    drift = rng.uniform(-1, 1) * cfg.clock_drift_ppm * 1e-6
    drift = s["drift_ppm"] * 1e-6 if "drift_ppm" in s else drift
    ts_jitter = s.get("ts_jitter_s", cfg.timestamp_jitter_s)
    lsb_a, lsb_g = 4.0 / 65536, 2 * np.deg2rad(1000) / 65536
    chan = GilbertElliottChannel(cfg.channel.loss, cfg.channel.burst)
    shared_loss = None
    out = {}
    for side, sign, R, lag, jb in (("left", -1.0, s["R_left"], 0.0, jaw[0]),
                                   ("right", 1.0, s["R_right"], s["lag_s"], jaw[1])):
        p = np.array([sign * 0.075, 0.0, 0.10])  # neck pivot -> bud, metres (head frame)
        rigid = (np.cross(wdot, p) + np.cross(w, np.cross(w, p))) / G
        acc_head = rigid + a_c + jb + bcg_vec
        imu = np.concatenate([acc_head @ R, w_tot @ R], axis=1)  # bud frame = R^T v
        imu[:, :3] *= s.get(f"gain_{side}", np.ones(3))  # ear-canal coupling per axis
        imu[:, :3] += rng.normal(0, acc_sd, (n, 3))
        if s.get("pink", 0.0) > 0:
            # 1/f noise at pink x the white noise's rms in the BCG band (0-15 Hz)
            in_band = s["noise_ug"] * 1e-6 * np.sqrt(15.0)
            imu[:, :3] += s["pink"] * in_band * _pink_noise(rng, n, fs, 3)
        imu[:, 3:] += rng.normal(0, gyr_sd, (n, 3))
        imu = signal.sosfiltfilt(sos, imu, axis=0)
        # sampling instants: drift, irregular interval, jitter; right bud sees the lag
        n_s = int(cfg.duration_s * cfg.fs_in) - 1
        dt = (1 + drift) / cfg.fs_in * np.clip(1 + cfg.rate_jitter * rng.normal(size=n_s), 0.3, 3)
        ts = rng.uniform(0, 1 / cfg.fs_in) + np.concatenate([[0.0], np.cumsum(dt[:-1])])
        ts = ts + rng.normal(0, ts_jitter, n_s)
        ts = np.maximum.accumulate(ts) + np.arange(n_s) * 1e-9
        keep = ts < t[-1] - lag
        ts = ts[keep]
        vals = np.stack([np.interp(ts - lag, t, imu[:, c]) for c in range(6)], axis=1)
        vals[:, :3] = np.round(vals[:, :3] / lsb_a) * lsb_a
        vals[:, 3:] = np.round(vals[:, 3:] / lsb_g) * lsb_g
        if cfg.channel.independent_buds or shared_loss is None:
            delivered = packet_loss_mask(ts.size, cfg.channel.samples_per_packet, chan, rng)
            shared_loss = delivered
        else:
            delivered = shared_loss[: ts.size]
            if delivered.size < ts.size:
                delivered = np.pad(delivered, (0, ts.size - delivered.size), constant_values=True)
        out[side] = {"relative_time": ts[delivered], "acc": vals[delivered, :3],
                     "gyro": vals[delivered, 3:]}
        out[f"delivered_{side}"] = delivered

    tr = np.arange(nr) / fr
    inb = (r >= 0) & (r < cfg.duration_s)
    idx = lambda x: np.clip(np.round(x * fr).astype(np.int64), 0, nr - 1)  # noqa: E731
    truth = {
        "fs_ref": np.float64(fr), "t": tr, "scg": scg, "ecg": ecg,
        "bcg": np.interp(tr, t, bcg_l), "motion": np.interp(tr, t, active) > 0.05,
        "r_s": r[inb], "ao_s": ao[inb], "ac_s": ac[inb], "mc_s": mc[inb],
        "r_idx": idx(r[inb]), "ao_idx": idx(ao[inb]), "ac_idx": idx(ac[inb]),
        "hr_true": np.float64(60.0 / np.mean(np.diff(r[inb]))),
        "delivered_left": out.pop("delivered_left"), "delivered_right": out.pop("delivered_right"),
    }
    return {"left": out["left"], "right": out["right"], "truth": truth, "subject": s,
            "fs_in": float(cfg.fs_in), "duration_s": float(cfg.duration_s)}


def simulate_no_beat(cfg: SimConfig, seed: int, kind: str = "noise") -> dict:
    """A recording without heartbeats, for SQI calibration (same layout as `simulate`).

    kind "noise": the delivered timestamps of a simulated recording, accel and gyro replaced by
    white Gaussian noise (accel rms log-uniform 0.05-20 mg). kind "no_contact": the simulator
    with the BCG coupling set to zero and no motion (a bud resting out of the ear: respiration
    sway, sensor noise and quantisation remain).
    """
    rng = np.random.default_rng(seed)
    if kind == "no_contact":
        s = draw_subject(rng, cfg.hr_range, cfg.morphology == "randomised")
        s["bcg_mg"] = 0.0
        from dataclasses import replace

        return simulate(replace(cfg, motion_level=0.0, walking=False), seed, subject=s)
    if kind != "noise":
        raise ValueError(f"unknown no-beat kind '{kind}' (use noise or no_contact)")
    rec = simulate(cfg, seed)
    level = 10 ** rng.uniform(np.log10(5e-5), np.log10(2e-2))
    for side in ("left", "right"):
        b = rec[side]
        b["acc"] = rng.normal(0, level, b["acc"].shape)
        b["gyro"] = rng.normal(0, 1e-3, b["gyro"].shape)
    return rec
