"""`python -m twscardio.experiments.premature_beats`: when a premature beat beats the rhythm.

`pipeline.J_EARLY_RATIO` (`beats.prefer_early`: a tracked beat moves to an earlier candidate
that many times stronger) is chosen here on *validation*-split subjects of the training family
(never the bench's test subjects or the out-of-family generator): the bench's rest settings
(50 Hz / 10 % and 25 Hz / 20 % bursty loss, 60 s), arms (a) and (b), per candidate ratio (0 =
off) the mean IBI and HR MAE over subjects and the octave errors (% of 5-s windows). Rule: the
lowest mean of (b)'s IBI MAE over the two settings, away from the ratios where it rises again.
`--extra` adds validation subjects by index (e.g. those whose fused signal holds no beat: mean
window SQI < 0.25 in `fusion_fallback_val240.json`); per-recording rows (with the recording's
mean window SQI) are written too.
"""

from __future__ import annotations

import argparse

import numpy as np

import twscardio.pipeline as pipeline
from shared.cli import run
from shared.io import atomic_write_json
from shared.log import get_logger
from twscardio.beats import beat_metrics, octave_errors
from twscardio.config import TrainConfig
from twscardio.data import VALIDATION_SETTINGS, validation_recordings

log = get_logger("twscardio.experiments.premature_beats")
SETTINGS = VALIDATION_SETTINGS


def sweep(subjects: list[int], duration_s: float, ratios: list[float]) -> tuple[dict, list]:
    """{ratio: {setting/arm: mean IBI, HR, octave %, missed %}} over validation subjects, and
    per-recording rows."""
    cfg = TrainConfig()
    per: dict = {r: {} for r in ratios}
    recs: list[dict] = []
    for i, label, rec in validation_recordings(cfg, subjects, SETTINGS, duration_s):
        row: dict = {"subject": i, "setting": label}
        for r in ratios:
            for arm in ("a", "b"):
                with pipeline.switched(J_EARLY_RATIO=r):
                    o = pipeline.process(rec, cfg, arm)
                m = beat_metrics(o["beats_all_s"], rec["truth"], fallback=o["fallback"])
                scored, bad = octave_errors(o["beats_all_s"], rec["truth"]["r_s"], duration_s)
                per[r].setdefault(f"{label} ({arm})", []).append(
                    [m["ibi_mae_ms"], m["hr_mae"], bad, scored, m["missed_pct"]])
                row[f"ibi_ms ({arm}) ratio {r}"] = m["ibi_mae_ms"]
                row["mean_sqi"] = float(np.mean(o["windows"]["sqi"]))
        recs.append(row)
    out = {}
    for r, rows in per.items():
        out[str(r)] = {}
        for key, v in rows.items():
            v = np.array(v, dtype=np.float64)
            out[str(r)][key] = {"ibi_mae_ms": float(np.nanmean(v[:, 0])),
                                "hr_mae": float(np.nanmean(v[:, 1])),
                                "octave_pct": float(100 * v[:, 2].sum() / max(v[:, 3].sum(), 1)),
                                "missed_pct": float(np.mean(v[:, 4]))}
    return out, recs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="twscardio.experiments.premature_beats",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", type=int, default=48, help="validation subjects")
    ap.add_argument("--first", type=int, default=148, help="first validation subject index")
    ap.add_argument("--extra", type=int, action="append", default=[],
                    help="further validation subject indices (repeatable)")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--ratio", type=float, action="append",
                    help="candidate ratios (repeatable; default 0 1 1.25 1.5 2 3 5)")
    ap.add_argument("--out", default="results/twscardio/premature_beats.json")
    args = ap.parse_args(argv)
    ratios = args.ratio or [0.0, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0]
    subjects = list(range(args.first, args.first + args.subjects)) + args.extra
    res, recs = sweep(subjects, args.duration, ratios)
    for r, rows in res.items():
        log.info("ratio %s: %s", r, ", ".join(f"{k} IBI {v['ibi_mae_ms']:.2f} HR {v['hr_mae']:.3f}"
                                            f" oct {v['octave_pct']:.2f}" for k, v in rows.items()))
    atomic_write_json(args.out, {"ratios": res, "recordings": recs, "subjects": subjects})
    return 0


if __name__ == "__main__":
    run(main)
