"""`python -m twscardio.experiments.octave_windows`: which 5-s windows carry octave errors, and why.

On *validation*-split subjects of the training family (never the bench's test subjects or the
out-of-family generator), bench rest settings (50 Hz / 10 % and 25 Hz / 20 % bursty loss, 60 s),
arms (a) and (b): every window with an octave error (`beats.octave_errors`' rule: detected over
true median interval outside [2^-1/2, 2^1/2]) is listed with its kind ("half": too many beats,
"double": every other beat missed) and its stage: "period" when the octave-checked period
(`beats.segment_periods`, same polarity rule as `find_jpeaks`) of the window's 10-s segment is
itself an octave of the true median interval there, else "picking" (the period was right, the
peaks or the tracker were not). Per recording also the segments' envelope periodicity (the
strength `beat_period` returns) and the true intervals' SD: low periodicity or a very irregular
rhythm leaves no octave-safe period to find.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats

import twscardio.pipeline as pipeline
from shared.cli import run
from shared.io import atomic_write_json
from shared.log import get_logger, setup_logging
from twscardio.beats import beat_metrics, beat_period, is_octave, window_interval_ratios
from twscardio.config import TrainConfig
from twscardio.data import VALIDATION_SETTINGS, validation_recordings

log = get_logger("twscardio.experiments.octave_windows")
WINDOW_S, SEGMENT_S = 5.0, 10.0


def recording_windows(det_s: np.ndarray, r_s: np.ndarray, x: np.ndarray, fs: float,
                      duration_s: float) -> tuple[int, list[dict], list[float]]:
    """(windows scored, octave windows with kind and stage, segment periodicity strengths)."""
    if stats.skew(x) < 0:  # the polarity `find_jpeaks(polarity="auto")` uses
        x = -x
    n = int(SEGMENT_S * fs)
    seg = [beat_period(x[s:s + n], fs) for s in range(0, max(len(x) - n // 2, 1), n)]
    ks, ratios, trues = window_interval_ratios(det_s, r_s, duration_s, WINDOW_S)
    bad = []
    for k, ratio, true in zip(ks, ratios, trues):
        if not is_octave(ratio):
            continue
        period = seg[min(int(k * WINDOW_S // SEGMENT_S), len(seg) - 1)][0]
        bad.append({"window": int(k), "ratio": float(ratio),
                    "kind": "half" if ratio < 1 else "double",
                    "stage": "period" if is_octave(period / true) else "picking",
                    "segment_period_s": period, "true_interval_s": float(true)})
    return len(ks), bad, [s for _, s in seg]


def survey(subjects: list[int], duration_s: float) -> dict:
    """Per setting/arm: octave windows (count, % of scored, by kind and stage), IBI/HR MAE; and
    per recording with an octave window its rows."""
    cfg = TrainConfig()
    per: dict = {}
    recs: list[dict] = []
    for i, label, rec in validation_recordings(cfg, subjects, VALIDATION_SETTINGS, duration_s):
        r_s = rec["truth"]["r_s"]
        for arm in ("a", "b"):
            o = pipeline.process(rec, cfg, arm)
            det = np.sort(o["beats_all_s"])
            m = beat_metrics(det, rec["truth"], fallback=o["fallback"])
            scored, bad, strength = recording_windows(
                det, r_s, np.asarray(o["fallback"], dtype=np.float64), o["prep"]["fs"],
                duration_s)
            per.setdefault(f"{label} ({arm})", []).append((scored, bad, m["ibi_mae_ms"],
                                                           m["hr_mae"]))
            if bad:
                recs.append({"subject": i, "setting": label, "arm": arm, "windows": bad,
                             "ibi_mae_ms": m["ibi_mae_ms"],
                             "segment_periodicity": strength,
                             "true_interval_sd_s": float(np.std(np.diff(r_s)))})
    out = {}
    for key, rows in per.items():
        bad = [w for _, b, _, _ in rows for w in b]
        scored = sum(s for s, _, _, _ in rows)
        out[key] = {"octave_windows": len(bad), "scored": scored,
                    "octave_pct": 100 * len(bad) / max(scored, 1),
                    "recordings_with_octaves": sum(bool(b) for _, b, _, _ in rows),
                    "by_kind": {c: sum(w["kind"] == c for w in bad) for c in ("half", "double")},
                    "by_stage": {c: sum(w["stage"] == c for w in bad)
                                 for c in ("period", "picking")},
                    "ibi_mae_ms": float(np.nanmean([r[2] for r in rows])),
                    "hr_mae": float(np.nanmean([r[3] for r in rows]))}
    return {"summary": out, "recordings": recs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="twscardio.experiments.octave_windows",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=144, help="validation subjects")
    ap.add_argument("--first", type=int, default=0, help="first validation subject index")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--out", default="results/twscardio/octave_windows.json")
    a = ap.parse_args(argv)
    setup_logging()
    res = survey(list(range(a.first, a.first + a.subjects)), a.duration)
    for key, s in res["summary"].items():
        log.info("%s: %d / %d octave windows (%.2f %%; half %d, double %d; period %d, picking "
                 "%d), IBI %.2f ms", key, s["octave_windows"], s["scored"], s["octave_pct"],
                 s["by_kind"]["half"], s["by_kind"]["double"], s["by_stage"]["period"],
                 s["by_stage"]["picking"], s["ibi_mae_ms"])
    atomic_write_json(a.out, {"subjects": [a.first, a.first + a.subjects],
                              "duration_s": a.duration, **res})
    return 0


if __name__ == "__main__":
    run(main)
