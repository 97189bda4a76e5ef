"""`python -m twscardio.experiments.fusion_fallback`: when to re-fuse on the recording's beats.

`FusionConfig.refit_below_sqi` is chosen here on *validation*-split subjects of the training
family (never the bench's test subjects or the out-of-family generator). For every subject and
setting (the bench's rest settings and 25 Hz / 20 % / motion 3; 60 s), arm (b) runs with the
fallback off; a recording whose mean window SQI is below `--max-threshold` also runs with the
beat-synchronous refit forced (`fusion.refit_on_beats`). Per candidate threshold it prints the
summed change in HR / IBI MAE over the recordings the threshold would refit (also limited by
the share of windows where the head rotates), and the share of heartbeat-free windows rejected
with the fallback on at `--threshold` / `--max-rotating` (pure noise, bud out of the ear).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from shared.cli import run
from shared.io import atomic_write_json
from shared.log import get_logger, progress
from twscardio.beats import beat_metrics
from twscardio.config import ChannelConfig, TrainConfig
from twscardio.data import VALIDATION_SETTINGS, setting_sims, subject_recording, subject_seed
from twscardio.pipeline import process
from twscardio.simulator import simulate_no_beat

log = get_logger("twscardio.experiments.fusion_fallback")
SETTINGS = {**{k: (*v, 0.0) for k, v in VALIDATION_SETTINGS.items()},
            "25Hz loss20% motion3": (25.0, 0.2, 3.0)}
THRESHOLDS = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]


ROTATING = [0.0, 0.2, 0.5, 1.0]


def with_refit(cfg: TrainConfig, threshold: float, max_rotating: float = 1.0) -> TrainConfig:
    return replace(cfg, fusion=replace(cfg.fusion, refit_below_sqi=threshold,
                                       refit_max_rotating=max_rotating))


def score(rec: dict, cfg: TrainConfig) -> dict:
    o = process(rec, cfg, "b")
    m = beat_metrics(o["beats_all_s"], rec["truth"], fallback=o["fallback"])
    rot = o["fusion"]["gyro_rms"] > cfg.fusion.gate_gyro_rms
    return {"hr": m["hr_mae"], "ibi": m["ibi_mae_ms"], "sqi": float(np.mean(o["windows"]["sqi"])),
            "coverage": float(np.mean(o["windows"]["reliable"])), "rotating": float(rot.mean())}


def recordings(n: int, first: int, duration_s: float, max_threshold: float) -> list[dict]:
    """Per (subject, setting): the fallback off, and forced where the mean SQI is low."""
    cfg = TrainConfig()
    off, forced = with_refit(cfg, 0.0), with_refit(cfg, 1.0)
    rows = []
    for i in progress(range(first, first + n), desc="validation subjects"):
        seed = subject_seed("val", i, cfg.seed)
        for label, sc in setting_sims(cfg.sim, SETTINGS, duration_s).items():
            if sc.motion_level and i >= first + n // 2:  # the motion setting on half the subjects
                continue
            rec = subject_recording(sc, seed, randomised=True)
            row = {"subject": i, "setting": label, "off": score(rec, off)}
            if row["off"]["sqi"] < max_threshold:
                row["refit"] = score(rec, forced)
            rows.append(row)
    return rows


def no_beat_rejection(n: int, first: int, duration_s: float, threshold: float,
                      max_rotating: float) -> dict:
    """Share of heartbeat-free windows rejected, fallback off and on (`threshold`,
    `max_rotating`)."""
    cfg = TrainConfig()
    sc = replace(cfg.sim, fs_in=50.0, duration_s=duration_s,
                 channel=ChannelConfig(loss=0.1, burst=3.0))
    out = {}
    for kind in ("noise", "no_contact"):
        recs = [simulate_no_beat(sc, subject_seed("val", i, cfg.seed) + 2, kind)
                for i in range(first, first + n)]
        out[kind] = {name: float(np.mean([1 - process(r, c)["windows"]["reliable"].mean()
                                          for r in recs]))
                     for name, c in (("off", with_refit(cfg, 0.0)),
                                     ("on", with_refit(cfg, threshold, max_rotating)))}
    return out


def table(rows: list[dict]) -> list[dict]:
    """Per (threshold, largest rotating share): recordings refit, how many got a worse IBI,
    and the summed HR / IBI change (refit - off)."""
    out = []
    for t in THRESHOLDS:
        for rot in ROTATING:
            sel = [r for r in rows
                   if "refit" in r and r["off"]["sqi"] < t and r["off"]["rotating"] <= rot]
            d_hr = [r["refit"]["hr"] - r["off"]["hr"] for r in sel]
            d_ibi = np.array([r["refit"]["ibi"] - r["off"]["ibi"] for r in sel
                              if np.isfinite(r["refit"]["ibi"]) and np.isfinite(r["off"]["ibi"])])
            out.append({"threshold": t, "max_rotating": rot, "refit": len(sel),
                        "worse_ibi": int(np.sum(d_ibi > 0)), "d_hr_sum": float(np.sum(d_hr)),
                        "d_ibi_sum": float(np.sum(d_ibi))})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="twscardio.experiments.fusion_fallback",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", type=int, default=48, help="validation subjects")
    ap.add_argument("--first", type=int, default=0, help="first validation subject index")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--max-threshold", type=float, default=max(THRESHOLDS))
    ap.add_argument("--no-beat", type=int, default=12, help="heartbeat-free recordings per kind")
    ap.add_argument("--threshold", type=float, default=0.5,
                    help="refit_below_sqi for the heartbeat-free check")
    ap.add_argument("--max-rotating", type=float, default=0.2,
                    help="refit_max_rotating for the heartbeat-free check")
    ap.add_argument("--out", type=Path, default=Path("runs/twscardio/fusion_fallback.json"))
    a = ap.parse_args(argv)
    rows = recordings(a.subjects, a.first, a.duration, a.max_threshold)
    tab = table(rows)
    for r in rows:
        if "refit" in r:
            log.info("%s subject %d: off %s | refit %s", r["setting"], r["subject"],
                     r["off"], r["refit"])
    for t in tab:
        log.info("threshold %.1f, rotating <= %.1f: %d refit (%d worse IBI), sum dHR %+.2f bpm, "
                 "sum dIBI %+.1f ms", t["threshold"], t["max_rotating"], t["refit"],
                 t["worse_ibi"], t["d_hr_sum"], t["d_ibi_sum"])
    nb = no_beat_rejection(a.no_beat, a.first, a.duration, a.threshold, a.max_rotating)
    log.info("heartbeat-free windows rejected (off / on): %s", nb)
    atomic_write_json(a.out, {"args": {k: str(v) for k, v in vars(a).items()}, "rows": rows,
                              "table": tab, "no_beat_rejection": nb})
    return 0


if __name__ == "__main__":
    run(main)
