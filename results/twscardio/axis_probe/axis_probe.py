"""Measurement only, on training-family validation subjects: does arm (a)'s choice of axis carry
its octave errors? Per recording (rest settings 50 Hz / 10 % and 25 Hz / 20 %, 60 s), arm (a)'s
octave windows on the shipped axis (`fusion.best_axis`), on each of the six accel axes, and on
the axis the true in-ear BCG explains best (an oracle no method has: the multiple correlation of
the band-passed axis with the longitudinal BCG and its derivative, the shape of the
anterior-posterior component the simulator adds). Usage (repository root): python
results/twscardio/axis_probe/axis_probe.py FIRST N OUT.json
"""
import json
import sys

import numpy as np

from twscardio import pipeline
from twscardio.beats import octave_errors
from twscardio.config import TrainConfig
from twscardio.data import VALIDATION_SETTINGS, validation_recordings
from twscardio.fusion import bandpass, best_axis, fuse, window_bounds


def explained(y: np.ndarray, basis: np.ndarray) -> float:
    """Multiple correlation of y (T,) with the columns of basis (T, K) (least squares)."""
    y = y - y.mean()
    b = basis - basis.mean(axis=0)
    coef, *_ = np.linalg.lstsq(b, y, rcond=None)
    fit = b @ coef
    return float(np.sqrt(max(fit @ fit, 0.0) / max(y @ y, 1e-30)))


def probe(first: int, n: int) -> dict:
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
        scored, bad = [], []
        for ax in range(6):
            j = pipeline.j_peaks(acc_bp[:, ax], fs, bounds, rotating)
            s, b = octave_errors(j, rec["truth"]["r_s"], T / fs)
            scored.append(int(s))
            bad.append(int(b))
        tr = rec["truth"]
        bcg = np.interp(prep["t"] - prep["t"][0], tr["t"] - tr["t"][0], tr["bcg"])
        basis = bandpass(np.stack([bcg, np.gradient(bcg)], axis=1), fs, cfg.fusion.band_hz)
        r = [explained(acc_bp[:, ax], basis) for ax in range(6)]
        rows.append({"subject": i, "setting": label, "scored_per_axis": scored,
                     "bad_per_axis": bad, "shipped_axis": best_axis(acc_bp, fs, cfg.fusion),
                     "oracle_axis": int(np.argmax(r)), "r_per_axis": r})
    summary = {}
    for label in sorted({r["setting"] for r in rows}):
        rs = [r for r in rows if r["setting"] == label]

        def pct(pick, rs=rs):
            return 100 * sum(r["bad_per_axis"][pick(r)] for r in rs) / sum(
                r["scored_per_axis"][pick(r)] for r in rs)

        summary[label] = {
            "shipped_pct": pct(lambda r: r["shipped_axis"]),
            "oracle_axis_pct": pct(lambda r: r["oracle_axis"]),
            "fewest_octaves_axis_pct": pct(lambda r: int(np.argmin(
                np.array(r["bad_per_axis"]) / np.maximum(r["scored_per_axis"], 1)))),
            "recordings_with_octaves_shipped": sum(r["bad_per_axis"][r["shipped_axis"]] > 0
                                                   for r in rs),
            "scored_shipped": sum(r["scored_per_axis"][r["shipped_axis"]] for r in rs)}
    return {"first": first, "subjects": n, "summary": summary, "rows": rows}


if __name__ == "__main__":
    out = probe(int(sys.argv[1]), int(sys.argv[2]))
    print(json.dumps(out["summary"], indent=1))
    with open(sys.argv[3], "w") as fh:
        json.dump(out, fh, indent=1)
