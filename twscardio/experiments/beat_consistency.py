"""`python -m twscardio.experiments.beat_consistency`: the beat-consistency threshold.

`QualityConfig.min_beat_r` (`quality.beat_consistency`: the median r of a window's beats with
the recording's median beat) is chosen here on *validation*-split subjects of the training
family (never the bench's test subjects or the out-of-family generator), with the SQI
threshold fixed. Recordings: clean beats at the bench's rest settings (50 Hz / 10 % and
25 Hz / 20 % bursty loss, 60 s) and heartbeat-free ones (pure noise, bud out of the ear) at
both settings. Per candidate threshold: the share of clean windows rejected (worse setting) and
of heartbeat-free windows rejected (worst kind and setting). Rule: maximise heartbeat-free
rejection minus clean rejection (Youden's J); the chosen value is the middle of the range of
thresholds that reach the maximum. Also reported: arm (b)'s IBI MAE on the beats of accepted
windows (mean over recordings), with the check off and at the chosen value.
"""

from __future__ import annotations

import argparse

import numpy as np

from shared.cli import run
from shared.io import atomic_write_json
from shared.log import get_logger, progress
from twscardio.beats import beat_metrics
from twscardio.config import TrainConfig
from twscardio.data import VALIDATION_SETTINGS, setting_sims, subject_recording, subject_seed
from twscardio.pipeline import process
from twscardio.simulator import simulate_no_beat

log = get_logger("twscardio.experiments.beat_consistency")
SETTINGS = VALIDATION_SETTINGS
KINDS = ("noise", "no_contact")


def _accepted_ibi(r: dict, reliable: np.ndarray) -> float:
    """IBI MAE (ms) of the fused J peaks that fall in windows marked reliable."""
    fs, bounds, j = r["fs"], r["bounds"], r["j_s"]
    k = np.clip(np.searchsorted(bounds[:, 1], np.round(j * fs), side="right"), 0,
                len(bounds) - 1)
    return beat_metrics(j[reliable[k]], r["truth"])["ibi_mae_ms"]


def collect(n: int, first: int, duration_s: float) -> dict[str, list[dict]]:
    """Per recording kind ("<setting>" clean, "<setting> <kind>" heartbeat-free): per-recording
    window sqi, beat_r and (clean) the truth to score accepted beats."""
    cfg = TrainConfig()
    out: dict[str, list[dict]] = {}
    for i in progress(range(first, first + n), desc="validation subjects"):
        seed = subject_seed("val", i, cfg.seed)
        for label, sc in setting_sims(cfg.sim, SETTINGS, duration_s).items():
            rec = subject_recording(sc, seed, randomised=True)
            o = process(rec, cfg, "b")
            out.setdefault(label, []).append({
                **{k: o["windows"][k] for k in ("sqi", "beat_r", "bounds", "j_s")},
                "fs": o["prep"]["fs"], "truth": {"r_s": rec["truth"]["r_s"],
                                                 "fs_ref": rec["truth"]["fs_ref"],
                                                 "t": rec["truth"]["t"]}})
            for kind in KINDS:
                w = process(simulate_no_beat(sc, seed + 2, kind), cfg)["windows"]
                out.setdefault(f"{label} {kind}", []).append({"sqi": w["sqi"],
                                                              "beat_r": w["beat_r"]})
    return out


def rejected(recs: list[dict], threshold: float, min_beat_r: float) -> float:
    sqi = np.concatenate([r["sqi"] for r in recs])
    br = np.concatenate([r["beat_r"] for r in recs])
    return float(1.0 - ((sqi >= threshold) & (br >= min_beat_r)).mean())


def choose(rows: list[dict]) -> float:
    """The middle of the thresholds that maximise no-beat minus clean rejection."""
    j = np.array([r["no_beat"] - r["clean"] for r in rows])
    best = [r["min_beat_r"] for r, v in zip(rows, j) if v >= j.max() - 1e-12]
    return float(np.round(0.5 * (min(best) + max(best)), 2))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="twscardio.experiments.beat_consistency",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", type=int, default=48, help="validation subjects")
    ap.add_argument("--first", type=int, default=300, help="first validation subject index")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--out", default="results/twscardio/beat_consistency.json")
    args = ap.parse_args(argv)
    data = collect(args.subjects, args.first, args.duration)
    thr = TrainConfig().quality.threshold
    rows = []
    for g in np.round(np.arange(0.0, 0.91, 0.01), 2):
        per = {k: rejected(v, thr, g) for k, v in data.items()}
        rows.append({"min_beat_r": float(g), "rejected": per,
                     "clean": max(per[k] for k in SETTINGS),
                     "no_beat": min(v for k, v in per.items() if k not in SETTINGS)})
    pick = choose(rows)
    ibi = {label: {f"min_beat_r={g}": float(np.nanmean([
        _accepted_ibi(r, (r["sqi"] >= thr) & (r["beat_r"] >= g))
        for r in data[label]])) for g in (0.0, pick)} for label in SETTINGS}
    for r in rows[::5]:
        log.info("min_beat_r %.2f: clean rejected %.4f (worst setting), no-beat rejected %.4f",
                 r["min_beat_r"], r["clean"], r["no_beat"])
    log.info("chosen min_beat_r %.2f; accepted-window IBI MAE (b): %s", pick, ibi)
    atomic_write_json(args.out, {"chosen": pick, "sqi_threshold": thr, "rows": rows,
                                 "accepted_ibi_ms": ibi, "subjects": args.subjects,
                                 "first": args.first,
                                 "windows": {k: int(sum(len(r["sqi"]) for r in v))
                                             for k, v in data.items()}})
    return 0


if __name__ == "__main__":
    run(main)
