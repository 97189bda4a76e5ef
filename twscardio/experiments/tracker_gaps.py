"""`python -m twscardio.experiments.tracker_gaps`: the rhythm tracker's evidence on delivered
samples only.

`pipeline.J_SCORE_SHARE` (`beats.matched_filter(valid=..., min_share=...)`: each tracker
candidate's score is the least-squares amplitude of the median beat over the samples some bud
delivered, its denominator floored at `min_share` of the template's energy; None scores the
whole signal, gap fill included) is chosen here on *validation*-split subjects of the training
family (never the bench's test subjects or the out-of-family generator): 50 Hz / 10 % and
25 Hz / 20 % bursty loss, 60 s, arm (b). Per candidate: mean IBI / HR MAE over subjects,
octave errors (% of 5-s windows) and missed beats (%), per-recording rows. Rule, fixed before
the run: the candidate with the lowest IBI MAE averaged over the two settings, adopted only if
it is below "off" at both.
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

log = get_logger("twscardio.experiments.tracker_gaps")
SETTINGS = VALIDATION_SETTINGS
CANDIDATES = [None, 0.75, 0.5, 0.25]


def sweep(subjects: list[int], shares: list) -> list[dict]:
    """Per (subject, setting, share): arm (b)'s IBI / HR MAE, octave windows, missed %."""
    cfg, rows = TrainConfig(), []
    for i, label, rec in validation_recordings(cfg, subjects, SETTINGS):
        for share in shares:
            with pipeline.switched(J_SCORE_SHARE=share):
                o = pipeline.process(rec, cfg, "b")
            m = beat_metrics(o["beats_all_s"], rec["truth"], fallback=o["fallback"])
            scored, bad = octave_errors(o["beats_all_s"], rec["truth"]["r_s"], 60.0)
            rows.append({"subject": i, "setting": label, "share": share,
                         "ibi_mae_ms": m["ibi_mae_ms"], "hr_mae": m["hr_mae"],
                         "missed_pct": m["missed_pct"], "octave_bad": bad,
                         "octave_scored": scored})
    return rows


def summarise(rows: list[dict], shares: list) -> dict:
    out = {}
    for share in shares:
        for label in SETTINGS:
            sel = [r for r in rows if r["setting"] == label and r["share"] == share]
            out[f"{label} share={share}"] = {
                "ibi_mae_ms": float(np.nanmean([r["ibi_mae_ms"] for r in sel])),
                "hr_mae": float(np.nanmean([r["hr_mae"] for r in sel])),
                "missed_pct": float(np.mean([r["missed_pct"] for r in sel])),
                "octave_pct": float(100 * sum(r["octave_bad"] for r in sel)
                                    / max(sum(r["octave_scored"] for r in sel), 1))}
    return out


def choose(summary: dict, shares: list) -> float | None:
    ibi = {s: [summary[f"{label} share={s}"]["ibi_mae_ms"] for label in SETTINGS] for s in shares}
    best = min(shares[1:], key=lambda s: np.mean(ibi[s]))
    return best if all(b < o for b, o in zip(ibi[best], ibi[shares[0]])) else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="twscardio.experiments.tracker_gaps",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", type=int, default=48, help="validation subjects")
    ap.add_argument("--first", type=int, default=148, help="first validation subject index")
    ap.add_argument("--out", default="results/twscardio/tracker_gaps.json")
    args = ap.parse_args(argv)
    subjects = list(range(args.first, args.first + args.subjects))
    rows = sweep(subjects, CANDIDATES)
    summary = summarise(rows, CANDIDATES)
    pick = choose(summary, CANDIDATES)
    for k, v in summary.items():
        log.info("%s: IBI %.2f ms, HR %.3f bpm, octave %.2f %%, missed %.2f %%", k,
                 v["ibi_mae_ms"], v["hr_mae"], v["octave_pct"], v["missed_pct"])
    log.info("chosen share: %s", pick)
    atomic_write_json(args.out, {"summary": summary, "chosen": pick, "rows": rows,
                                 "subjects": subjects})
    return 0


if __name__ == "__main__":
    run(main)
