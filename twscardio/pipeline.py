"""The whole pipeline, neurokit2-style: `clean` -> `fuse` -> `reconstruct` -> `peaks` -> `process`.

* `prepare(rec, cfg)` - enhancement of both buds onto the uniform fs_out grid:
  X (T, 12) = [L acc, L gyro, R acc, R gyro], mask (T, 2), tsv (T, 2), plus baseline (a)'s
  linear-fill + spline front-end X_lin (T, 12).
* `network_features(prep, fus, prior)` - the learned path's input (T, 17): motion-cancelled
  accel (6), gyro (6), fused BCG (1), validity masks (2), time-since-valid encodings (2); with
  a prior (`sync_prior`: the beat-synchronous SCG of arm e) an 18th channel;
  `network_input(prep, fus, model, cfg)` - the input a given network takes.
* `reconstruct(model, feats, fs, window_s, hop_s)` - windowed, batched, Hann overlap-add.
* `process(rec, cfg, arm, model)` - arms (a) single axis, (b) fusion, (c)/(d) network, (e)
  beat-synchronous SCG (`twscardio.beatsync`: (b)'s J peaks, learned J -> AO timing); returns
  beat times and an info dict (fused signal, SCG, AO/AC, rejected windows).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from shared.errors import DataError
from shared.validate import finite_number
from twscardio.beats import anchored_ao, find_ac, find_ao, find_jpeaks, segment_periods
from twscardio.beatsync import synchronous_scg, timing_features
from twscardio.config import N_FEATURES, N_FEATURES_PRIOR, TrainConfig
from twscardio.enhance import (
    check_timestamps,
    enhance_bud,
    estimate_rate,
    linear_fill_upsample,
    output_grid,
    validate_stream,
)
from twscardio.fusion import (
    bandpass,
    best_axis,
    bud_agreement,
    fuse,
    refit_on_beats,
    window_bounds,
)
from twscardio.quality import NO_BEAT, assess_windows

__all__ = ["switched", "prepare", "network_features", "window_starts", "reconstruct", "process",
           "fused_with_fallback", "fused_j_peaks", "sync_prior", "prior_channel", "band_gyro",
           "timing_input", "network_input", "check_prior_model", "network_prior",
           "anchored_network_ao", "N_FEATURES_PRIOR", "N_FEATURES", "J_WAVE_SHIFT_S",
           "J_TIGHTNESS", "J_AO_ANCHOR_S", "j_peaks", "ao_peaks", "normalise_windows"]

# J peaks on BCG (arms a, b): each beat aligned to the recording's median complex at shifts up to
# this, so a cycle whose largest peak is another wave (I/K/L, a noise lobe) is moved onto the J
# wave (`beats.find_jpeaks`); chosen on the training family (IBI MAE 18.1 -> 14.3 ms at 50 Hz)
J_WAVE_SHIFT_S = 0.25
# J peaks are then re-chosen as the best rhythm-consistent chain of matched-filter peaks
# (`beats.track_beats`); the weight of rhythm against evidence, chosen on the training family
J_TIGHTNESS = 2.0
# a tracked beat moves to an earlier candidate this many times stronger (a premature beat the
# rhythm prior passed over; `beats.prefer_early`); 0 = off. Best on 48 training-family
# validation subjects at 1.5 (`python -m twscardio.experiments.premature_beats`: (b) IBI MAE
# 13.6 -> 12.0 ms at 50 Hz/10 %, 17.5 -> 15.4 ms at 25 Hz/20 %), but off: on recordings whose
# fused signal holds no beat it moves noise picks (results/twscardio/NOTES.md)
J_EARLY_RATIO = 0.0
# time the fused signal's J peaks on delivered samples only (gap fills, where neither bud
# delivered, masked out of the final alignment; `beats.template_refine(valid=...)`); on 48
# validation subjects (`python -m twscardio.experiments.gap_timing`) (b)'s IBI MAE 17.5 ->
# 16.8 ms at 25 Hz/20 %, 21.9 -> 20.0 ms at 25 Hz/30 %, 13.56 -> 13.58 ms at 50 Hz/10 %
J_DATA_ONLY = True
# score the tracker's candidates on delivered samples only (`beats.matched_filter(valid=...,
# min_share=...)`; None = on the whole fused signal, gap fill included): out of family at
# 25 Hz/20 % most wrong beats are a neighbour wave taken where a loss burst swallowed the J,
# but on 96 validation subjects (`python -m twscardio.experiments.tracker_gaps`) no floor beat
# None at both rates (0.75: 13.06 -> 13.04 ms at 50 Hz/10 %, 15.17 -> 15.23 ms at 25 Hz/20 %)
J_SCORE_SHARE: float | None = None
# AO of the network arms (c, d) on their SCG: > 0 picks it like the J peaks, by the rhythm
# tracker at this tightness where the head is still and plain picking where it rotates
# (`ao_peaks`); 0 = plain picking everywhere (`beats.find_ao`)
J_AO_TIGHTNESS = 0.0
# AO of the network arms (c, d) when the network takes the beat-synchronous prior: > 0 takes, for
# each of the prior's AO (a fused J peak minus the timing model's lag), the SCG's largest sample
# within +- this many seconds (`beats.anchored_ao`): one AO per fused J peak; 0 = `ao_peaks`
J_AO_ANCHOR_S = 0.0


@contextmanager
def switched(**values) -> Iterator[None]:
    """Set the module's J_* switches (`J_EARLY_RATIO`, `J_DATA_ONLY`, `J_SCORE_SHARE`, ...) for
    the block and restore them after it, also on an exception: what a probe that measures a
    switch on validation subjects needs."""
    unknown = [k for k in values if not (k.startswith("J_") and k in globals())]
    if unknown:
        raise ValueError(f"switched: no pipeline switch {unknown}")
    shipped = {k: globals()[k] for k in values}
    globals().update(values)
    try:
        yield
    finally:
        globals().update(shipped)


# a grid this many times denser than the recorded samples means a corrupt timestamp or duration
_MAX_UPSAMPLE = 64


def _bud(rec: dict, side: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(rec, dict) or side not in rec or not isinstance(rec[side], dict):
        raise DataError(f"recording has no '{side}' bud stream")
    b = rec[side]
    for key in ("relative_time", "acc", "gyro"):
        if key not in b:
            raise DataError(f"{side} bud stream lacks field '{key}'")
    try:
        acc, gyro = np.asarray(b["acc"], np.float64), np.asarray(b["gyro"], np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{side}: acc and gyro must be numeric (n, 3) arrays") from None
    if acc.ndim != 2 or acc.shape[1] != 3 or gyro.shape != acc.shape:
        raise DataError(f"{side}: acc and gyro must both be (n, 3), got {acc.shape}, {gyro.shape}")
    return validate_stream(b["relative_time"], np.concatenate([acc, gyro], axis=1), name=side)


def _check_recording(rec: dict, buds: dict, fs_out: float, t_range: tuple | None
                     ) -> tuple[tuple[float, float], float | None]:
    """The output time range and nominal input rate, checked against the streams themselves."""
    fs_in = rec.get("fs_in")
    if fs_in is not None:
        fs_in = finite_number(fs_in, "recording 'fs_in'", positive=True)
    for side, (t, _) in buds.items():
        check_timestamps(t, side, fs_in)
    if t_range is None:
        dur = rec.get("duration_s")
        if dur is not None and dur != 0:
            dur = finite_number(dur, "recording 'duration_s'", positive=True)
        t_range = (0.0, dur or max(buds["left"][0][-1], buds["right"][0][-1]))
    t0, t1 = (finite_number(v, "t_range") for v in t_range)
    n_in = max(len(t) for t, _ in buds.values())
    if (t1 - t0) * fs_out > _MAX_UPSAMPLE * n_in + 10 * fs_out:
        raise DataError(f"the recording spans {t1 - t0:.6g} s but has only {n_in} samples per bud "
                        f"(a corrupt timestamp or duration_s?)")
    if not any(np.ptp(x[:, :3], axis=0).any() for _, x in buds.values()):
        raise DataError("the accelerometer streams are constant (no signal in either bud)")
    return (t0, t1), fs_in


def prepare(rec: dict, cfg: TrainConfig, t_range: tuple[float, float] | None = None,
            baseline: bool = True) -> dict:
    """Enhance both buds onto the uniform grid covering t_range (default [0, duration))."""
    fs = cfg.enhance.fs_out
    buds = {side: _bud(rec, side) for side in ("left", "right")}
    t_range, fs_in = _check_recording(rec, buds, fs, t_range)
    t_out = output_grid(*t_range, fs)
    if t_out.size < 2 * fs:
        raise DataError(f"window too short: {t_out.size / fs:.2f} s (need >= 2 s)")
    X, X_lin, mask, tsv = [], [], [], []
    for side in ("left", "right"):
        t, x = buds[side]
        y, m, s = enhance_bud(t, x, cfg.enhance, t_out, name=side, fs_nominal=fs_in)
        X.append(y)
        mask.append(m)
        tsv.append(s)
        if baseline:
            X_lin.append(linear_fill_upsample(t, x, t_out, name=side, fs_nominal=fs_in))
    out = {"t": t_out, "fs": fs, "X": np.concatenate(X, axis=1),
           "mask": np.stack(mask, axis=1), "tsv": np.stack(tsv, axis=1),
           "fs_in": float(fs_in or estimate_rate(buds["left"][0]))}
    if baseline:
        out["X_lin"] = np.concatenate(X_lin, axis=1)
    return out


def band_gyro(prep: dict, cfg: TrainConfig) -> np.ndarray:
    """Both buds' gyro axes (T, 6) band-passed to the fusion's band: the rotational BCG the
    timing model's gyro complex is read from (`beatsync.gyro_complex`)."""
    return bandpass(np.concatenate([prep["X"][:, 3:6], prep["X"][:, 9:12]], axis=1), prep["fs"],
                    cfg.fusion.band_hz)


def timing_input(prep: dict, fus: dict, beats_s: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    """The timing model's features (1, F) of a recording: `beatsync.timing_features` of the fused
    signal and `band_gyro` at the J peaks `beats_s` (s), as `sync_prior` reads them through
    `beatsync.synchronous_scg`; a one-line DataError below 3 whole beat complexes."""
    return timing_features(fus["fused"], band_gyro(prep, cfg), beats_s, prep["fs"],
                           cfg.sync.pre_s, cfg.sync.post_s)


def sync_prior(prep: dict, fus: dict, beats_s: np.ndarray, timing, cfg: TrainConfig) -> dict:
    """Arm (e)'s beat-synchronous SCG, `beatsync.synchronous_scg`'s dict: "scg" (T,) is the
    template at the J peaks `beats_s` minus `timing`'s lag, blurred as cfg.sync says (zeros
    where fewer than 3 whole beat complexes exist), the network's prior channel."""
    return synchronous_scg(fus["fused"], band_gyro(prep, cfg), beats_s, prep["fs"], timing,
                           cfg.sync.pre_s, cfg.sync.post_s,
                           (cfg.sync.blur_ao_ms / 1000, cfg.sync.blur_ac_ms / 1000))


def prior_channel(prep: dict, fus: dict, timing, cfg: TrainConfig,
                  beats_s: np.ndarray | None = None) -> np.ndarray:
    """The network's prior channel (T,): `sync_prior`'s SCG from the J peaks `beats_s` (s; by
    default the fused signal's, `fused_j_peaks` over the fusion's windows with the rotating ones
    judged as `process` judges them), for training windows and inference alike."""
    return _prior(prep, fus, timing, cfg, beats_s)["scg"]


def _prior(prep: dict, fus: dict, timing, cfg: TrainConfig,
           beats_s: np.ndarray | None) -> dict:
    """`sync_prior` at the J peaks `beats_s`, by default `fused_j_peaks` over the fusion's
    windows, the rotating ones judged as `process` does."""
    if beats_s is None:
        fs = prep["fs"]
        bounds = window_bounds(prep["t"].size, fs, cfg.fusion.window_s)
        beats_s = fused_j_peaks(fus, fs, bounds, fus["gyro_rms"] > cfg.fusion.gate_gyro_rms)
    return sync_prior(prep, fus, beats_s, timing, cfg)


def check_prior_model(model):
    """The timing model of a network that takes the prior (None for one that does not); a
    one-line DataError when it has none attached."""
    if model.stem.in_channels != N_FEATURES_PRIOR:
        return None
    timing = getattr(model, "timing", None)
    if timing is None:
        raise DataError("this network takes the beat-synchronous prior; attach its timing "
                        "model as model.timing (twscardio.train.get_model does)")
    return timing


def network_prior(prep: dict, fus: dict, model, cfg: TrainConfig,
                  beats_s: np.ndarray | None = None) -> dict | None:
    """`sync_prior`'s dict for a network trained with the beat-synchronous prior (None for one
    without): its timing model attached as `model.timing`, the template settings it trained with
    as `model.prior_sync` (by default cfg.sync), from the J peaks `beats_s` (s; by default the
    fused signal's, `fused_j_peaks`, as `prior_channel` takes them)."""
    timing = check_prior_model(model)
    if timing is None:
        return None
    return _prior(prep, fus, timing, replace(cfg, sync=getattr(model, "prior_sync", cfg.sync)),
                  beats_s)


def anchored_network_ao(scg: np.ndarray, fs: float, prior: dict | None) -> np.ndarray | None:
    """The AO of a network's SCG anchored on its prior's (`beats.anchored_ao` at J_AO_ANCHOR_S),
    or None where the switch is off, the network has no prior (`network_prior` gave None) or
    the prior has fewer than 2 AO: then the caller picks AO its own way."""
    if J_AO_ANCHOR_S > 0 and prior is not None and prior["ao_s"].size >= 2:
        return anchored_ao(scg, fs, prior["ao_s"], J_AO_ANCHOR_S)
    return None


def network_input(prep: dict, fus: dict, model, cfg: TrainConfig,
                  beats_s: np.ndarray | None = None, prior: dict | None = None) -> np.ndarray:
    """The features `model` takes: the 17 channels, plus the beat-synchronous prior's SCG when it
    was trained with one (18 input channels; `network_prior`, or `prior`, its dict, when given)."""
    if prior is None:
        prior = network_prior(prep, fus, model, cfg, beats_s)
    if prior is None:
        return network_features(prep, fus)
    return network_features(prep, fus, prior["scg"])


def network_features(prep: dict, fus: dict, prior: np.ndarray | None = None) -> np.ndarray:
    """(T, 17) float32 features, (T, 18) with `prior` (T,) appended; the time encoding
    saturates at 0.5 s."""
    X = prep["X"]
    gyro = np.concatenate([X[:, 3:6], X[:, 9:12]], axis=1)
    tsv = np.clip(prep["tsv"] * prep["fs_in"], 0, 10) / 10.0  # in input-sample periods
    # each accel axis oriented so that its BCG adds to the fused BCG (sign of its fusion weight;
    # the fused sign is the onset polarity): the coupling may put either polarity on any axis
    acc = fus["acc_clean"] * np.where(fus["weights"] < 0, -1.0, 1.0)[None, :]
    cols = [acc, gyro, fus["fused"][:, None], prep["mask"].astype(np.float64), tsv]
    if prior is not None:
        cols.append(np.asarray(prior, dtype=np.float64)[:, None])
    return np.concatenate(cols, axis=1).astype(np.float32)


def normalise_windows(x: np.ndarray) -> np.ndarray:
    """Per-window, per-channel z-score of the 13 signal channels (B, C, L) and of the prior
    (channel 17, when present); masks/time kept.

    The public code z-scores with one scalar over all columns (time included); we do not.
    """
    sig = np.asarray(x[:, :13])
    out = np.concatenate([(sig - sig.mean(axis=2, keepdims=True))
                          / (sig.std(axis=2, keepdims=True) + 1e-6), x[:, 13:]], axis=1)
    if x.shape[1] > N_FEATURES:
        p = out[:, N_FEATURES:]
        out[:, N_FEATURES:] = (p - p.mean(axis=2, keepdims=True)) / (p.std(axis=2, keepdims=True)
                                                                    + 1e-6)
    return out


def window_starts(T: int, win: int, hop: int) -> np.ndarray:
    if T < win:
        raise DataError(f"recording shorter ({T} samples) than one network window ({win})")
    s = np.arange(0, T - win + 1, hop)
    if s[-1] != T - win:
        s = np.append(s, T - win)
    return s


def reconstruct(model, feats: np.ndarray, fs: float, window_s: float, hop_s: float,
                batch: int = 64) -> np.ndarray:
    """SCG (T,) from features (T, C): batched windows, Hann-weighted overlap-add."""
    import torch

    T = feats.shape[0]
    win, hop = int(round(window_s * fs)), int(round(hop_s * fs))
    if T < win:  # a short recording: zero-pad (masks 0 = no data) and crop the output
        pad = np.zeros((win - T, feats.shape[1]), dtype=feats.dtype)
        return reconstruct(model, np.concatenate([feats, pad]), fs, window_s, hop_s, batch)[:T]
    starts = window_starts(T, win, hop)
    idx = starts[:, None] + np.arange(win)[None, :]
    xw = normalise_windows(np.transpose(feats[idx], (0, 2, 1)))
    model.eval()
    with torch.no_grad():
        ys = [model(torch.from_numpy(np.ascontiguousarray(xw[i:i + batch])).float()).numpy()
              for i in range(0, len(xw), batch)]
    y = np.concatenate(ys, axis=0)  # (W, win)
    taper = np.hanning(win + 2)[1:-1]
    num = np.bincount(idx.ravel(), weights=(y * taper).ravel(), minlength=T)
    den = np.bincount(idx.ravel(), weights=np.broadcast_to(taper, y.shape).ravel(), minlength=T)
    return num / np.maximum(den, 1e-6)


def window_hr(beats_s: np.ndarray, bounds: np.ndarray, fs: float,
              period_s: np.ndarray) -> np.ndarray:
    """HR (bpm) per window (W,): 60 / median interval of the beats in it (>= 2 intervals),
    else 60 / the window's own period estimate."""
    b = np.sort(beats_s)
    ibi, mid = np.diff(b), b[1:]
    out = 60.0 / np.asarray(period_s, dtype=np.float64)
    for k, (s, e) in enumerate(bounds):  # a dozen windows per minute
        sel = (mid >= s / fs) & (mid < e / fs) & (ibi > 0.33) & (ibi < 1.5)
        if sel.sum() >= 2:
            out[k] = 60.0 / np.median(ibi[sel])
    return out


def _still_or_plain(tracked: np.ndarray, plain: np.ndarray, fs: float, bounds: np.ndarray,
                    still: np.ndarray) -> np.ndarray:
    """Tracked beats in still windows, plain picks in rotating ones, one beat where they meet."""
    def where_still(b):
        k = np.clip(np.searchsorted(bounds[:, 1], np.round(b * fs), side="right"), 0,
                    len(bounds) - 1)
        return still[k]

    b = np.sort(np.concatenate([tracked[where_still(tracked)], plain[~where_still(plain)]]))
    return b[np.r_[True, np.diff(b) >= 0.33]] if b.size else b


def ao_peaks(scg: np.ndarray, fs: float, periods_s: np.ndarray, bounds: np.ndarray,
             rotating: np.ndarray) -> np.ndarray:
    """AO times (s) of a reconstructed SCG (T,), with the segment periods `periods_s` of the
    fused BCG: `beats.find_ao` where the head rotates (and everywhere when J_AO_TIGHTNESS is 0),
    the rhythm tracker at J_AO_TIGHTNESS where it is still, as `j_peaks` does for J."""
    plain = find_ao(scg, fs, periods_s=periods_s)
    still = ~np.asarray(rotating, dtype=bool)
    if J_AO_TIGHTNESS == 0 or not still.any():
        return plain
    tracked = find_ao(scg, fs, periods_s=periods_s, tightness=J_AO_TIGHTNESS)
    return tracked if still.all() else _still_or_plain(tracked, plain, fs, bounds, still)


def j_peaks(sig: np.ndarray, fs: float, bounds: np.ndarray, rotating: np.ndarray,
            valid: np.ndarray | None = None) -> np.ndarray:
    """J peaks (s) of a BCG signal (T,): rhythm-tracked (`beats.track_beats`) in windows where
    the head is still, plain peak picking in windows (bounds (W, 2)) where it rotates
    (rotating (W,) bool): under motion the tracker follows a periodic artefact as faithfully as
    the heartbeat (chosen on training-family validation subjects at motion level 3).
    valid (T,) bool: data samples for the final alignment (`beats.find_jpeaks(valid=...)`)."""
    still = ~np.asarray(rotating, dtype=bool)
    tracked = find_jpeaks(sig, fs, wave_shift_s=J_WAVE_SHIFT_S, tightness=J_TIGHTNESS,
                          early_ratio=J_EARLY_RATIO, valid=valid,
                          score_share=J_SCORE_SHARE) \
        if still.any() else np.zeros(0)
    if still.all():
        return tracked
    plain = find_jpeaks(sig, fs, wave_shift_s=J_WAVE_SHIFT_S, valid=valid)
    return _still_or_plain(tracked, plain, fs, bounds, still)


def fused_j_peaks(fus: dict, fs: float, bounds: np.ndarray, rotating: np.ndarray) -> np.ndarray:
    """`j_peaks` of the fused signal of `fusion.fuse`'s output, timed on delivered samples when
    J_DATA_ONLY: the beats arms (b) and (e) report, and the network prior's."""
    return j_peaks(fus["fused"], fs, bounds, rotating,
                   fus["axis_valid"].any(axis=1) if J_DATA_ONLY else None)


def fused_with_fallback(fus: dict, both_valid: np.ndarray, bounds: np.ndarray,
                        rotating: np.ndarray, fs: float, cfg: TrainConfig) -> tuple[dict, dict]:
    """The fused signal and its window SQI (`quality.assess_windows`, judged with the fused
    signal's J peaks (`j_peaks`), kept as the window dict's "j_s"); where the recording's
    mean SQI is below cfg.fusion.refit_below_sqi (the fused signal holds no clear beat) and the
    head is mostly still (rotating (W,) bool: at most cfg.fusion.refit_max_rotating of the
    windows), the fusion re-weighted on its own beats (`fusion.refit_on_beats`) replaces it: a
    weak BCG whose RR varies loses its periodicity at any fixed lag, so the first fusion may
    weight noise. With cfg.fusion.refit_check the refit replaces it only if its two buds'
    parts agree better (`fusion.bud_agreement`); a refit found on wrong beats locks each bud's
    noise to them, which the buds do not share.
    fus gets "refit" (bool), and "refit_declined" True where the check kept the first fusion."""

    def assess(f):
        j = fused_j_peaks(f, fs, bounds, rotating)
        win = assess_windows(f["fused"], f["acc_clean"], both_valid, bounds, fs, cfg.quality,
                             cfg.fusion.period_range_s, beats_s=j)
        return {**win, "j_s": j}

    win = assess(fus)
    if (float(np.mean(win["sqi"])) >= cfg.fusion.refit_below_sqi
            or float(np.mean(rotating)) > cfg.fusion.refit_max_rotating):
        return {**fus, "refit": False}, win
    refit = refit_on_beats(fus, fs, lambda sig: j_peaks(sig, fs, bounds, rotating))
    if cfg.fusion.refit_check:
        hp = cfg.fusion.cross_bud_hp_hz
        before, after = bud_agreement(fus, fs, hp), bud_agreement(refit, fs, hp)
        if not after > before:  # NaN (a bud missing throughout): keep the first fusion
            return {**fus, "refit": False, "refit_declined": True}, win
    return {**refit, "refit": True}, assess(refit)


def _in_windows(beats_s: np.ndarray, t0: float, fs: float, bounds: np.ndarray,
                keep: np.ndarray) -> np.ndarray:
    """The beats (s) that fall in windows with keep[k] True."""
    k = np.searchsorted(bounds[:, 1], np.round((beats_s - t0) * fs), side="right")
    k = np.clip(k, 0, len(bounds) - 1)
    return beats_s[keep[k]]


def process(rec: dict, cfg: TrainConfig, arm: str = "b", model=None) -> dict:
    """Run one arm on a recording. The default is (b), fusion + J peaks: the network arms
    (c)/(d) are needed for the SCG, but their beats do not hold out of family (README).

    Returns "beats_s" (beats in windows with a reliable beat), "beats_all_s" (every detection),
    "windows" (`quality.assess_windows`: per-window sqi, beat_r, reliable, hr_bpm - NaN and
    status "no reliable beat" below the SQI threshold or the beat consistency; j_s the fused
    signal's J peaks it judged), "rejected_mask" (T,) (unreliable or too much
    rotation), "fallback" (the beat signal), and per arm the fusion / SCG / AO / AC outputs.
    """
    if arm not in ("a", "b", "c", "d", "e"):
        raise DataError(f"unknown arm '{arm}' (use a, b, c, d or e)")
    if arm in ("c", "d") and model is None:
        raise DataError(f"arm '{arm}' needs a trained BCG->SCG model")
    if arm == "e" and model is None:
        raise DataError("arm 'e' needs a trained timing model (twscardio.train.get_timing_model)")
    prep = prepare(rec, cfg, baseline=(arm == "a"))
    fs = prep["fs"]
    T = prep["t"].size
    bounds = window_bounds(T, fs, cfg.fusion.window_s)
    # the SQI judges the input (enhanced, motion-cancelled, fused), the same for every arm
    fus = fuse(prep["X"], prep["mask"], fs, cfg.fusion)
    moving = fus["gyro_rms"] > cfg.fusion.reject_gyro_rms
    rotating = fus["gyro_rms"] > cfg.fusion.gate_gyro_rms  # the canceller is at work
    fus, win = fused_with_fallback(fus, prep["mask"].all(axis=1), bounds, rotating, fs, cfg)
    out = {"fusion": fus, "prep": prep}
    if arm == "a":
        acc = np.concatenate([prep["X_lin"][:, 0:3], prep["X_lin"][:, 6:9]], axis=1)
        acc_bp = bandpass(acc, fs, cfg.fusion.band_hz)
        ax = best_axis(acc_bp, fs, cfg.fusion)
        sig = acc_bp[:, ax]
        out.update(fallback=sig, axis=ax,
                   beats_all_s=j_peaks(sig, fs, bounds, rotating))
    elif arm == "b":
        out.update(beats_all_s=win["j_s"], fallback=fus["fused"])
    elif arm == "e":
        j = win["j_s"]
        syn = sync_prior(prep, fus, j, model, cfg)
        out.update(beats_all_s=syn["ao_s"], fallback=fus["fused"], scg=syn["scg"],
                   ao_s=syn["ao_s"], ac_s=syn["ac_s"], j_s=j, lag_s=syn["lag_s"])
    else:
        try:
            syn = network_prior(prep, fus, model, cfg, win["j_s"])
            feats = network_input(prep, fus, model, cfg, prior=syn)
        except DataError as e:
            raise DataError(f"arm '{arm}': {e}") from None
        scg = reconstruct(model, feats, fs, cfg.window_s, cfg.hop_s)
        ao = anchored_network_ao(scg, fs, syn)
        if ao is None:
            # the refractory distance from the fused BCG's octave-checked periods: an SCG has
            # two waves (AO, AC) per beat, the BCG's envelope one hump (chosen on validation
            # subjects: (d)'s octave errors 1.2-1.7 -> 0.9-1.0 % at 25 Hz/20 %, HR MAE lower,
            # IBI +-0.5 ms)
            ao = ao_peaks(scg, fs, segment_periods(fus["fused"], fs)[0], bounds, rotating)
        out.update(beats_all_s=ao, fallback=scg, scg=scg, ao_s=ao, ac_s=find_ac(scg, fs, ao))
    rejected = ~win["reliable"] | moving
    win["hr_bpm"] = np.where(rejected, np.nan, window_hr(out["beats_all_s"], bounds, fs,
                                                         win["period_s"]))
    win["status"] = [NO_BEAT if r else "ok" for r in rejected]
    rej = np.zeros(T, dtype=bool)
    for (s, e), r in zip(bounds, rejected):
        rej[s:e] = r
    out.update(windows=win, rejected_mask=rej,
               beats_s=_in_windows(out["beats_all_s"], 0.0, fs, bounds, ~rejected))
    return out
