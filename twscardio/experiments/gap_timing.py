"""`python -m twscardio.experiments.gap_timing`: J peaks timed on delivered samples only.

`pipeline.J_DATA_ONLY` (`beats.template_refine(valid=...)`: the final alignment of each beat to
the recording's median beat ignores samples where neither bud delivered) is chosen here on
*validation*-split subjects of the training family (never the bench's test subjects or the
out-of-family generator): 50 Hz / 10 %, 25 Hz / 20 % and 25 Hz / 30 % bursty loss, 60 s, arm
(b), off and on: mean IBI / HR MAE over subjects and octave errors (% of 5-s windows), and
per-recording rows with the recording's mean window SQI. `--extra` adds subjects by index.
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

log = get_logger("twscardio.experiments.gap_timing")
SETTINGS = {**VALIDATION_SETTINGS, "25Hz loss30%": (25.0, 0.3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="twscardio.experiments.gap_timing",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", type=int, default=48, help="validation subjects")
    ap.add_argument("--first", type=int, default=148, help="first validation subject index")
    ap.add_argument("--extra", type=int, action="append", default=[],
                    help="further validation subject indices (repeatable)")
    ap.add_argument("--out", default="results/twscardio/gap_timing.json")
    args = ap.parse_args(argv)
    cfg = TrainConfig()
    subjects = list(range(args.first, args.first + args.subjects)) + args.extra
    rows = []
    for i, label, rec in validation_recordings(cfg, subjects, SETTINGS):
        for on in (False, True):
            with pipeline.switched(J_DATA_ONLY=on):
                o = pipeline.process(rec, cfg, "b")
            m = beat_metrics(o["beats_all_s"], rec["truth"])
            scored, bad = octave_errors(o["beats_all_s"], rec["truth"]["r_s"], 60.0)
            rows.append({"subject": i, "setting": label, "data_only": on,
                         "ibi_mae_ms": m["ibi_mae_ms"], "hr_mae": m["hr_mae"],
                         "octave_bad": bad, "octave_scored": scored,
                         "mean_sqi": float(np.mean(o["windows"]["sqi"]))})
    summary = {}
    for label in SETTINGS:
        for on in (False, True):
            sel = [r for r in rows if r["setting"] == label and r["data_only"] == on
                   and r["subject"] in subjects[:args.subjects]]
            summary[f"{label} data_only={on}"] = {
                "ibi_mae_ms": float(np.nanmean([r["ibi_mae_ms"] for r in sel])),
                "hr_mae": float(np.nanmean([r["hr_mae"] for r in sel])),
                "octave_pct": float(100 * sum(r["octave_bad"] for r in sel)
                                    / max(sum(r["octave_scored"] for r in sel), 1))}
    log.info("%s", summary)
    atomic_write_json(args.out, {"summary (first --subjects only)": summary, "rows": rows,
                                 "subjects": subjects})
    return 0


if __name__ == "__main__":
    run(main)
