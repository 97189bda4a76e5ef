"""Measurement only, on training-family validation subjects: does arm (a)'s choice of axis carry
its octave errors? Per recording (rest settings 50 Hz / 10 % and 25 Hz / 20 %, 60 s), arm (a)'s
octave windows on the shipped axis (`fusion.best_axis`), on each of the six accel axes, and on
the axis whose band-passed signal correlates best with the true in-ear BCG (an oracle no method
has). Usage (repository root): python results/twscardio/axis_probe/axis_probe.py FIRST N OUT.json
"""
import json
import sys

import numpy as np

from twscardio import pipeline
from twscardio.beats import octave_errors
from twscardio.config import TrainConfig
from twscardio.data import VALIDATION_SETTINGS, validation_recordings
from twscardio.fusion import bandpass, best_axis, fuse, window_bounds

first, n, out_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
cfg = TrainConfig()
rows = []
for i, label, rec in validation_recordings(cfg, list(range(first, first + n)),
                                           VALIDATION_SETTINGS, 60.0):
    prep = pipeline.prepare(rec, cfg, baseline=True)
    fs, T = prep["fs"], prep["t"].size
    bounds = window_bounds(T, fs, cfg.fusion.window_s)
    fus = fuse(prep["X"], prep["mask"], fs, cfg.fusion)
    rotating = fus["gyro_rms"] > cfg.fusion.gate_gyro_rms
    acc = np.concatenate([prep["X_lin"][:, 0:3], prep["X_lin"][:, 6:9]], axis=1)
    acc_bp = bandpass(acc, fs, cfg.fusion.band_hz)
    dur = T / fs
    bad = []
    for ax in range(6):
        j = pipeline.j_peaks(acc_bp[:, ax], fs, bounds, rotating)
        scored, b = octave_errors(j, rec["truth"]["r_s"], dur)
        bad.append(int(b))
    tr = rec["truth"]
    bcg = np.interp(prep["t"] - prep["t"][0], tr["t"] - tr["t"][0],
                    np.linalg.norm(tr["bcg"], axis=1) if np.ndim(tr["bcg"]) > 1 else tr["bcg"])
    r = [abs(np.corrcoef(acc_bp[:, ax], bcg)[0, 1]) for ax in range(6)]
    shipped = best_axis(acc_bp, fs, cfg.fusion)
    rows.append({"subject": i, "setting": label, "scored": int(scored), "bad_per_axis": bad,
                 "shipped_axis": shipped, "oracle_axis": int(np.argmax(r)),
                 "r_per_axis": [float(v) for v in r]})
summary = {}
for label in sorted({r["setting"] for r in rows}):
    rs = [r for r in rows if r["setting"] == label]
    sc = sum(r["scored"] for r in rs)
    summary[label] = {
        "scored": sc,
        "shipped_pct": 100 * sum(r["bad_per_axis"][r["shipped_axis"]] for r in rs) / sc,
        "oracle_axis_pct": 100 * sum(r["bad_per_axis"][r["oracle_axis"]] for r in rs) / sc,
        "fewest_octaves_axis_pct": 100 * sum(min(r["bad_per_axis"]) for r in rs) / sc,
        "recordings_with_octaves_shipped": sum(r["bad_per_axis"][r["shipped_axis"]] > 0
                                               for r in rs)}
print(json.dumps(summary, indent=1))
with open(out_path, "w") as fh:
    json.dump({"first": first, "subjects": n, "summary": summary, "rows": rows}, fh, indent=1)
