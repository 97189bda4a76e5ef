"""Real-time streaming API (paper: real-time app).

`StreamingMonitor.push(side, relative_time, acc, gyro)` takes packets as they arrive from each
bud (any number of samples, timestamps increasing per bud) and returns the `Update`s that became
due: every `hop_s` of signal it processes the latest `window_s` window (enhancement -> fusion ->
BCG->SCG network -> AO beats) and emits HR, the beats and the SCG of the segment
[t_end - hop_s - lookahead_s, t_end - lookahead_s). The lookahead gives the non-causal network
its right context, so the latency from a sample's arrival to its SCG is bounded by
hop_s + lookahead_s + the processing time of one window (`Update.proc_s`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from shared.errors import DataError
from shared.validate import finite_number
from twscardio.beats import beat_period, find_ao, find_jpeaks
from twscardio.config import TrainConfig
from twscardio.enhance import check_timestamps
from twscardio.fusion import fuse
from twscardio.pipeline import network_features, prepare, reconstruct

__all__ = ["StreamingMonitor", "Update"]

_UNITS_MIN_SAMPLES = 8  # timestamps are checked for units/rate once a bud has this many
_MAX_TIME_S = 1e8  # ~3 years of stream time; larger timestamps are corrupt (and lose precision)


@dataclass
class Update:
    """One emission: t_end (s, stream time), hr_bpm (NaN if undecidable), beats_s (absolute),
    scg (hop samples at fs_out, NaN without a model), scg_t0 (time of scg[0]), rejected, proc_s."""

    t_end: float
    hr_bpm: float
    beats_s: np.ndarray
    scg: np.ndarray
    scg_t0: float
    rejected: bool
    proc_s: float
    info: dict = field(default_factory=dict)


class StreamingMonitor:
    """Packet-in, HR/SCG-out processor with bounded latency. See the module docstring."""

    def __init__(self, cfg: TrainConfig, model=None, window_s: float = 5.0, hop_s: float = 1.0,
                 lookahead_s: float = 0.7, fs_in: float | None = None):
        if not 0 < hop_s <= window_s or not 0 <= lookahead_s < window_s - hop_s:
            raise DataError("need 0 < hop_s <= window_s and 0 <= lookahead_s < window_s - hop_s")
        if fs_in is not None:
            fs_in = finite_number(fs_in, "fs_in", positive=True)
        self.cfg, self.model = cfg, model
        self.window_s, self.hop_s, self.lookahead_s = window_s, hop_s, lookahead_s
        self.fs_in = fs_in
        self._buf: dict[str, list[np.ndarray]] = {"left": [], "right": []}
        self._last_t = {"left": -np.inf, "right": -np.inf}
        self._units_checked = {"left": False, "right": False}
        self._head: dict[str, list[float]] = {"left": [], "right": []}  # first timestamps
        self._next_emit: float | None = None

    def push(self, side: str, relative_time, acc, gyro) -> list[Update]:
        """Append one packet of `side` ('left'/'right'); return the updates now due."""
        if side not in self._buf:
            raise DataError(f"unknown bud '{side}' (use 'left' or 'right')")
        t = np.atleast_1d(np.asarray(relative_time, dtype=np.float64))
        a = np.atleast_2d(np.asarray(acc, np.float64))
        g = np.atleast_2d(np.asarray(gyro, np.float64))
        if t.ndim != 1 or a.shape != (t.size, 3) or g.shape != (t.size, 3):
            raise DataError(f"{side} packet: need relative_time (n,), acc (n, 3), gyro (n, 3); got "
                            f"{t.shape}, {a.shape}, {g.shape}")
        if t.size == 0:
            return []
        if not (np.isfinite(t).all() and np.isfinite(a).all() and np.isfinite(g).all()):
            raise DataError(f"{side} packet contains NaN/inf")
        if np.abs(t).max() > _MAX_TIME_S:
            raise DataError(f"{side} packet: relative_time beyond {_MAX_TIME_S:g} s (corrupt?)")
        if np.any(np.diff(t) <= 0) or t[0] <= self._last_t[side]:
            raise DataError(f"{side} packet: timestamps not increasing "
                            f"(last {self._last_t[side]:.4f}, got {t[0]:.4f})")
        self._buf[side].append(np.concatenate([t[:, None], a, g], axis=1))
        if not self._units_checked[side]:
            self._check_units(side, t)
        self._last_t[side] = t[-1]
        if not any(self._units_checked.values()):
            return []  # no update before the timestamps' units are known
        if self._next_emit is None:
            self._next_emit = t[0] + self.window_s
        latest = max(self._last_t.values())
        if latest - self._next_emit > self.window_s:  # a gap: no update for windows without data
            self._next_emit += np.floor((latest - self.window_s - self._next_emit) / self.hop_s
                                        ) * self.hop_s
        out = []
        while latest >= self._next_emit:
            out.append(self._process(self._next_emit))
            self._next_emit += self.hop_s
        self._trim()
        return out

    def _check_units(self, side: str, t: np.ndarray) -> None:
        """Once a bud has delivered enough samples: seconds, an IMU rate, and fs_in agreeing."""
        head = self._head[side]
        head.extend(t.tolist())
        if len(head) < _UNITS_MIN_SAMPLES:
            return
        try:
            check_timestamps(np.array(head), side, self.fs_in)
        except DataError:  # the monitor stays usable if the caller fixes the units
            self._buf[side], self._head[side] = [], []
            self._last_t[side] = -np.inf
            raise
        self._units_checked[side] = True

    def _trim(self) -> None:
        keep_from = (self._next_emit or 0.0) - self.window_s - 1.0
        for side, parts in self._buf.items():
            if len(parts) > 1:
                arr = np.concatenate(parts)
                self._buf[side] = [arr[arr[:, 0] >= keep_from]]

    def _process(self, t_end: float) -> Update:
        t0 = time.perf_counter()
        rec = {"fs_in": self.fs_in}
        t_start = t_end - self.window_s
        for side, parts in self._buf.items():
            arr = np.concatenate(parts) if parts else np.zeros((0, 7))
            arr = arr[(arr[:, 0] >= t_start - 0.5) & (arr[:, 0] < t_end)]
            rec[side] = {"relative_time": arr[:, 0], "acc": arr[:, 1:4], "gyro": arr[:, 4:7]}
        fs = self.cfg.enhance.fs_out
        hop_n = int(round(self.hop_s * fs))

        def undecided(reason: str) -> Update:
            return Update(t_end, float("nan"), np.zeros(0), np.full(hop_n, np.nan),
                          t_end - self.hop_s - self.lookahead_s, True,
                          time.perf_counter() - t0, {"reason": reason})

        if min(len(rec[s]["relative_time"]) for s in ("left", "right")) < 8:
            return undecided("too few samples")
        try:
            prep = prepare(rec, self.cfg, t_range=(t_start, t_end), baseline=False)
        except DataError as e:  # one bad window (a flat or glitched segment) does not end a stream
            return undecided(str(e))
        fus = fuse(prep["X"], prep["mask"], fs, self.cfg.fusion)
        t_grid0 = prep["t"][0]
        if self.model is not None:
            scg = reconstruct(self.model, network_features(prep, fus), fs, self.window_s,
                              self.hop_s)
            beats = find_ao(scg, fs)
            sig = scg
        else:
            scg = np.full(prep["t"].size, np.nan)
            beats = find_jpeaks(fus["fused"], fs)
            sig = fus["fused"]
        ibi = np.diff(beats)
        ibi = ibi[(ibi > 0.33) & (ibi < 1.5)]
        hr = 60.0 / np.median(ibi) if ibi.size >= 2 else 60.0 / beat_period(sig, fs)[0]
        end = len(scg) - int(round(self.lookahead_s * fs))
        seg = scg[end - hop_n:end]
        return Update(t_end, float(hr), beats + t_grid0, seg, t_grid0 + (end - hop_n) / fs,
                      bool(fus["rejected"].any()), time.perf_counter() - t0)
