"""Data: simulated training windows, and loaders for the public formats.

* `subject_seed`, `draw_conditions`, `build_windows` - the network's training/validation data:
  simulated recordings (`twscardio.simulator`) under random rate / loss / motion, run through
  enhancement and fusion, cut into windows. Subjects of the splits never overlap (the public
  code's random window split leaks subjects; we split by subject).
* `setting_sims`, `VALIDATION_SETTINGS` - the recording conditions of named bench settings
  (rate, bursty loss, optionally motion), as the validation probes sweep them.
* `timing_dataset` - the beat-synchronous SCG's timing-model data (`twscardio.beatsync`): per
  simulated recording, the median fused-BCG complex at its J peaks and the true J -> AO lag.
* EarCardio CSV layout (`Code/dataset.py` of the public code): per window id, `l_<id>.csv`,
  `r_<id>.csv` (accelerationX/Y/Z, rotationRateX/Y/Z, relative_time), `scg_<id>.csv` (scg),
  `ecg_<id>.csv` (ecg); windows lacking any of the four are skipped.
  `write_earcardio` / `load_earcardio`.
* PhysioNet CEBS (WFDB): `load_cebs(record)` -> ECG/SCG/RESP arrays, `cebs_reference` -> a
  truth dict (R peaks by neurokit2, SCG at 100 Hz) usable by `twscardio.beats`.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

import numpy as np

from shared.errors import DataError
from shared.io import atomic_write_text
from shared.log import get_logger, progress
from shared.validate import brief, check_alloc, finite_number, read_text
from twscardio.config import REST_SHARE, ChannelConfig, SimConfig, TrainConfig
from twscardio.enhance import validate_stream
from twscardio.fusion import fuse
from twscardio.models import region_weights
from twscardio.pipeline import network_features, prepare, prior_channel, window_starts
from twscardio.simulator import BUD_CHANNELS, draw_subject, simulate

__all__ = ["subject_seed", "subject_recording", "setting_sims", "validation_recordings",
           "VALIDATION_SETTINGS",
           "draw_conditions", "build_windows",
           "timing_dataset", "write_earcardio", "load_earcardio", "load_cebs", "cebs_reference",
           "EARCARDIO_COLUMNS"]

log = get_logger(__name__)
EARCARDIO_COLUMNS = BUD_CHANNELS + ["relative_time"]
_SPLIT = {"train": 1, "val": 2, "test": 3}
# The bench's two headline rest settings, label -> (fs_in Hz, packet loss), as the validation
# probes (`twscardio.experiments`) sweep them.
VALIDATION_SETTINGS = {"50Hz loss10%": (50.0, 0.1), "25Hz loss20%": (25.0, 0.2)}


def subject_seed(split: str, i: int, seed: int = 0) -> int:
    """Disjoint seed ranges per split: subjects never overlap between train/val/test."""
    return _SPLIT[split] * 10_000_000 + seed * 10_000 + i


def subject_recording(sc: SimConfig, seed: int, randomised: bool | None = None) -> dict:
    """One recording under conditions `sc` of the subject that `seed` fixes: the subject drawn
    from `seed` (`draw_subject`; the randomised morphology family if `randomised`, by default
    when `sc.morphology` is "randomised"), the recording simulated from seed + 1."""
    if randomised is None:
        randomised = sc.morphology == "randomised"
    return simulate(sc, seed + 1,
                    subject=draw_subject(np.random.default_rng(seed), sc.hr_range, randomised))


def setting_sims(sim: SimConfig, settings: dict[str, tuple[float, ...]],
                 duration_s: float = 60.0, burst: float = 3.0) -> dict[str, SimConfig]:
    """Recording conditions per named setting: label -> (fs_in, loss) or (fs_in, loss,
    motion_level) gives `sim` at that input rate and length with a fresh Gilbert-Elliott channel
    `ChannelConfig(loss=loss, burst=burst)` (its other fields at their defaults, not `sim`'s);
    motion_level changes only where the setting names it."""
    out = {}
    for label, (fs_in, loss, *motion) in settings.items():
        sc = replace(sim, fs_in=fs_in, duration_s=duration_s,
                     channel=ChannelConfig(loss=loss, burst=burst))
        out[label] = replace(sc, motion_level=motion[0]) if motion else sc
    return out


def validation_recordings(cfg: TrainConfig, subjects: list[int],
                          settings: dict[str, tuple[float, ...]], duration_s: float = 60.0):
    """(subject index, setting label, recording) for each validation-split subject of the
    randomised family (`subject_seed("val", i, cfg.seed)`, a progress bar over subjects) under
    each named setting (`setting_sims(cfg.sim, settings, duration_s)`): the recordings on which
    the probes choose the pipeline's switches, never test or out-of-family data."""
    sims = setting_sims(cfg.sim, settings, duration_s)
    for i in progress(subjects, desc="validation subjects"):
        seed = subject_seed("val", i, cfg.seed)
        for label, sc in sims.items():
            yield i, label, subject_recording(sc, seed, randomised=True)


def draw_conditions(rng: np.random.Generator, cfg: TrainConfig,
                    rest_share: float = REST_SHARE) -> SimConfig:
    """Random recording conditions for training: rate, loss, burst, packet size, motion (0 with
    probability `rest_share`). The network's windows pass `cfg.rest_share`; the timing model's
    and the SQI's data keep the default, because another share would change their random
    streams (and so their data) while their recordings are set to rest anyway."""
    motion = 0.0 if rng.random() < rest_share else float(rng.uniform(0, cfg.max_motion))
    chan = ChannelConfig(loss=float(rng.uniform(0, cfg.max_loss)), burst=float(rng.uniform(1, 8)),
                         samples_per_packet=int(rng.integers(1, 5)),
                         independent_buds=cfg.sim.channel.independent_buds)
    return replace(cfg.sim, fs_in=float(rng.choice(cfg.fs_choices)), motion_level=motion,
                   channel=chan)


def recording_windows(rec: dict, cfg: TrainConfig, timing=None) -> dict[str, np.ndarray]:
    """Cut one simulated recording into network windows.

    Returns x (W, 17, L) float32 - (W, 18, L) when `timing`, a `beatsync.TimingModel`, is
    given: the beat-synchronous prior as the last channel - y (W, L) SCG z-scored per window,
    w (W, L) region weights.
    """
    tr = rec["truth"]
    fs = cfg.enhance.fs_out
    if abs(float(tr["fs_ref"]) - fs) > 1e-9:
        raise DataError(f"sim.fs_ref ({tr['fs_ref']}) must equal enhance.fs_out ({fs})")
    prep = prepare(rec, cfg, baseline=False)
    fus = fuse(prep["X"], prep["mask"], fs, cfg.fusion)
    # the prior as inference computes it (`pipeline.network_input`; no fusion fallback)
    prior = None if timing is None else prior_channel(prep, fus, timing, cfg)
    feats = network_features(prep, fus, prior)
    T = feats.shape[0]
    scg = tr["scg"][:T]
    wts = region_weights(T, fs, tr["ao_s"], tr["ac_s"], cfg.loss.lam, cfg.loss.sigma_ms / 1000)
    win, hop = int(round(cfg.window_s * fs)), int(round(cfg.hop_s * fs))
    idx = window_starts(T, win, hop)[:, None] + np.arange(win)[None, :]
    y = scg[idx]
    y = (y - y.mean(axis=1, keepdims=True)) / (y.std(axis=1, keepdims=True) + 1e-6)
    return {"x": np.transpose(feats[idx], (0, 2, 1)).astype(np.float32),
            "y": y.astype(np.float32), "w": wts[idx]}


def build_windows(cfg: TrainConfig, split: str, n_subjects: int, timing=None,
                  first: int = 0) -> dict[str, np.ndarray]:
    """Simulate subjects first..first+n_subjects-1 of `split`, cfg.recordings_per_subject
    recordings each -> windows (`recording_windows`; with the prior of `timing` if given)."""
    parts = []
    rng = np.random.default_rng(subject_seed(split, 9999, cfg.seed))
    jobs = [(i, r) for i in range(first, first + n_subjects)
            for r in range(cfg.recordings_per_subject)]
    for i, r in progress(jobs, desc=f"simulate {split}"):
        sc = draw_conditions(rng, cfg, cfg.rest_share)
        seed = subject_seed(split, i, cfg.seed)
        sub = draw_subject(np.random.default_rng(seed), sc.hr_range,
                           sc.morphology == "randomised")  # fixed by its seed
        rec = simulate(sc, seed * 7 + r + 1, subject=sub)
        parts.append(recording_windows(rec, cfg, timing))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def timing_dataset(cfg: TrainConfig, split: str, n_subjects: int,
                   first: int = 0) -> dict[str, np.ndarray]:
    """Timing-model data of subjects first..first+n_subjects-1 of a split: per recording (one per
    subject, conditions drawn as for the network but at rest, from a stream that starts afresh
    with each call; `cfg.sync.duration_s` long) features X (N, F) of its fused BCG at its J
    peaks (`beatsync.timing_features`) and targets Y (N, 2) (`beatsync.timing_targets`); a
    recording with too few beats gets a NaN row (dropped by `beatsync.fit_timing`)."""
    from twscardio.beatsync import timing_targets
    from twscardio.fusion import window_bounds
    from twscardio.pipeline import j_peaks, timing_input

    rng = np.random.default_rng(subject_seed(split, 9998, cfg.seed))
    n_feat = 2 * (int(round(cfg.sync.pre_s * cfg.enhance.fs_out))
                  + int(round(cfg.sync.post_s * cfg.enhance.fs_out)) + 1) + 1
    X, Y = np.full((n_subjects, n_feat), np.nan), np.full((n_subjects, 2), np.nan)
    for k in progress(range(n_subjects), desc=f"timing data {split}"):
        i = first + k
        sc = replace(draw_conditions(rng, cfg), duration_s=cfg.sync.duration_s, motion_level=0.0)
        seed = subject_seed(split, i, cfg.seed)
        rec = subject_recording(sc, seed)
        try:  # a recording without >= 3 whole beat complexes stays a NaN row
            prep = prepare(rec, cfg, baseline=False)
            fs = prep["fs"]
            fus = fuse(prep["X"], prep["mask"], fs, cfg.fusion)
            bounds = window_bounds(prep["t"].size, fs, cfg.fusion.window_s)
            J = j_peaks(fus["fused"], fs, bounds, fus["gyro_rms"] > cfg.fusion.gate_gyro_rms)
            X[k] = timing_input(prep, fus, J, cfg)
        except DataError:
            continue
        Y[k] = timing_targets(J, rec["truth"])
    return {"X": X, "Y": Y}


# ---------------------------------------------------------------------------------------------
# EarCardio CSV layout


def _csv_text(columns: list[str], data: np.ndarray) -> str:
    buf = io.StringIO()
    buf.write(",".join(columns) + "\n")
    np.savetxt(buf, np.atleast_2d(data), delimiter=",", fmt="%.9g")
    return buf.getvalue()


def write_earcardio(root: str | Path, rec: dict, window_s: float = 5.0) -> list[str]:
    """Write a simulated recording as EarCardio windows (ids 0..W-1) under `root`; -> ids."""
    root = Path(root)
    tr = rec["truth"]
    fs = float(tr["fs_ref"])
    ids = []
    n_win = int(rec["duration_s"] // window_s)
    for k in range(n_win):
        t0, t1 = k * window_s, (k + 1) * window_s
        for side, prefix in (("left", "l"), ("right", "r")):
            b = rec[side]
            sel = (b["relative_time"] >= t0) & (b["relative_time"] < t1)
            data = np.concatenate([b["acc"][sel], b["gyro"][sel],
                                   (b["relative_time"][sel] - t0)[:, None]], axis=1)
            atomic_write_text(root / f"{prefix}_{k}.csv", _csv_text(EARCARDIO_COLUMNS, data))
        s, e = int(round(t0 * fs)), int(round(t1 * fs))
        atomic_write_text(root / f"scg_{k}.csv", _csv_text(["scg"], tr["scg"][s:e, None]))
        atomic_write_text(root / f"ecg_{k}.csv", _csv_text(["ecg"], tr["ecg"][s:e, None]))
        ids.append(str(k))
    return ids


def _read_csv(path: Path, columns: list[str]) -> dict[str, np.ndarray]:
    """Read a numeric CSV with a header; DataError names the file and the missing column."""
    text = read_text(path)
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as e:
        raise DataError(f"{path}: malformed CSV ({brief(e)})") from None
    if not rows:
        raise DataError(f"{path}: empty file (no header)")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(f"{path}: missing column '{missing[0]}' (has {header})")
    body = [r for r in rows[1:] if r]
    if not body:
        raise DataError(f"{path}: no data rows")
    try:
        arr = np.array(body, dtype=np.float64)
    except ValueError:
        raise DataError(f"{path}: non-numeric or ragged rows") from None
    if arr.ndim != 2 or arr.shape[1] != len(header):
        raise DataError(f"{path}: rows have {arr.shape[-1]} fields, header has {len(header)}")
    if not np.all(np.isfinite(arr)):
        col = header[int(np.flatnonzero(~np.isfinite(arr).all(axis=0))[0])]
        raise DataError(f"{path}: NaN/inf in column '{col}'")
    return {c: arr[:, header.index(c)] for c in columns}


def load_earcardio(root: str | Path) -> list[dict]:
    """All complete windows under `root` (recursive), sorted by directory and id.

    Each: {"id", "dir", "left"/"right": {"relative_time", "acc" (n,3), "gyro" (n,3)},
    "scg" (m,), "ecg" (m,)}. Incomplete windows are skipped with a warning.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"EarCardio root not found: {root}")
    out = []
    for lpath in sorted(root.rglob("l_*.csv")):
        wid = lpath.stem[2:]
        paths = {p: lpath.with_name(f"{p}_{wid}.csv") for p in ("l", "r", "scg", "ecg")}
        if not all(p.is_file() for p in paths.values()):
            log.warning("skipping window %s in %s: not all of l/r/scg/ecg present", wid,
                        lpath.parent)
            continue
        win = {"id": wid, "dir": str(lpath.parent)}
        for side, p in (("left", "l"), ("right", "r")):
            cols = _read_csv(paths[p], EARCARDIO_COLUMNS)
            t, x = validate_stream(cols["relative_time"],
                                   np.stack([cols[c] for c in BUD_CHANNELS], axis=1),
                                   name=str(paths[p]))
            win[side] = {"relative_time": t, "acc": x[:, :3], "gyro": x[:, 3:]}
        win["scg"] = _read_csv(paths["scg"], ["scg"])["scg"]
        win["ecg"] = _read_csv(paths["ecg"], ["ecg"])["ecg"]
        out.append(win)
    if not out:
        raise DataError(f"no complete EarCardio windows (l_/r_/scg_/ecg_<id>.csv) under {root}")
    return out


# ---------------------------------------------------------------------------------------------
# PhysioNet CEBS (WFDB)


def load_cebs(record: str | Path) -> dict:
    """Read a CEBS WFDB record (path without extension, e.g. 'data/b001').

    Returns {"fs", "ecg" (lead II if present, else I), "scg", "resp" (or None), "sig_name"}.
    """
    import wfdb

    record = Path(str(record).removesuffix(".hea").removesuffix(".dat"))
    hea = record.with_suffix(".hea")
    if not hea.is_file():
        raise DataError(f"CEBS record header not found: {hea}")
    try:
        hdr = wfdb.rdheader(str(record))
    except Exception as e:  # wfdb raises many types for corrupt headers
        raise DataError(f"{hea}: unreadable WFDB header ({brief(e)})") from None
    finite_number(hdr.fs, f"{hea}: sampling frequency", positive=True)
    _check_record_line(hea, float(hdr.fs))
    if not hdr.n_sig or not hdr.sig_len or not hdr.file_name or not hdr.sig_name:
        raise DataError(f"{hea}: record has no samples")
    dat = {record.parent / str(n) for n in hdr.file_name}
    dat_bytes = sum(p.stat().st_size for p in dat if p.is_file())
    # p_signal is float64; every stored format takes >= 1 byte a sample (FLAC a bit less)
    check_alloc(8 * int(hdr.sig_len) * int(hdr.n_sig), dat_bytes, str(hea), "signals", ratio=32,
                slack=1 << 16)
    try:
        rec = wfdb.rdrecord(str(record))
    except Exception as e:  # wfdb raises many types for corrupt files
        raise DataError(f"{hea}: unreadable WFDB record ({brief(e)})") from None
    names = [str(n).strip().upper() for n in (rec.sig_name or [])]
    sig = rec.p_signal
    if sig is None or sig.ndim != 2 or sig.shape[0] == 0:
        raise DataError(f"{hea}: record has no samples")

    def chan(*cands: str) -> np.ndarray | None:
        for c in cands:
            if c in names:
                x = sig[:, names.index(c)].astype(np.float64)
                if not np.all(np.isfinite(x)):
                    raise DataError(f"{hea}: NaN in channel '{c}'")
                return x
        return None

    scg = chan("SCG")
    ecg = chan("II", "I", "ECG")
    if scg is None:
        raise DataError(f"{hea}: no 'SCG' channel (has {rec.sig_name})")
    if ecg is None:
        raise DataError(f"{hea}: no ECG channel 'I'/'II' (has {rec.sig_name})")
    fs = finite_number(rec.fs, f"{hea}: sampling frequency", positive=True)
    return {"fs": fs, "ecg": ecg, "scg": scg, "resp": chan("RESP"),
            "sig_name": list(rec.sig_name)}


def _check_record_line(hea: Path, fs: float) -> None:
    """wfdb falls back to 250 Hz when it cannot parse the record line's rate (e.g. '-100'):
    read the rate ourselves and require it to be the one wfdb used."""
    lines = [ln for ln in read_text(hea).splitlines() if ln.strip() and not ln.startswith("#")]
    fields = lines[0].split() if lines else []
    if len(fields) >= 3:
        token = fields[2].split("/")[0].split("(")[0]
        try:
            declared = float(token)
        except ValueError:
            raise DataError(f"{hea}: sampling frequency {fields[2]!r} is not a number") from None
        if not (declared > 0 and np.isclose(declared, fs)):
            raise DataError(f"{hea}: sampling frequency must be positive, got {fields[2]!r}")


def cebs_reference(cebs: dict, fs_ref: float = 100.0) -> dict:
    """Truth dict for `twscardio.beats`: R peaks (neurokit2 on the ECG), SCG resampled to fs_ref."""
    import neurokit2 as nk
    from scipy.signal import resample_poly

    fs = cebs["fs"]
    _, info = nk.ecg_peaks(nk.ecg_clean(cebs["ecg"], sampling_rate=int(fs)),
                           sampling_rate=int(fs))
    r_s = np.asarray(info["ECG_R_Peaks"], dtype=np.float64) / fs
    up, down = int(fs_ref), int(fs)
    g = np.gcd(up, down)
    scg = resample_poly(cebs["scg"], up // g, down // g)
    n = len(scg)
    return {"fs_ref": np.float64(fs_ref), "t": np.arange(n) / fs_ref, "scg": scg, "r_s": r_s,
            "r_idx": np.clip(np.round(r_s * fs_ref).astype(np.int64), 0, n - 1)}
