"""`python -m twscardio.experiments.fusion_method`: global periodic-component fusion vs per-window
periodic component analysis (`fusion.method`), arm (b), on training-family validation subjects.

For each method and setting (50 Hz / 10 % bursty loss, 25 Hz / 20 %), n validation subjects
(seeds of split "val", never test or out-of-family) x duration_s, at rest: HR MAE, IBI MAE,
octave-error share and |r| of the fused signal with the true BCG (per subject, then the mean and
the minimum) and of the oracle linear mix of the axes. `--family test` / `--family out` measure
the bench's in-family test subjects / the out-of-family generator's subjects instead (report
only; the method is chosen on validation). `--first` starts at another validation subject.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from shared.cli import run
from shared.log import get_logger, setup_logging
from twscardio.beats import beat_metrics, octave_errors
from twscardio.config import TrainConfig
from twscardio.data import subject_recording, subject_seed
from twscardio.eval import simulate_test
from twscardio.fusion import bandpass
from twscardio.outfamily import simulate_out_of_family
from twscardio.pipeline import process

log = get_logger("twscardio.experiments.fusion_method")
SETTINGS = {"50Hz/10%": (50.0, 0.1), "25Hz/20%": (25.0, 0.2)}


def recording(cfg: TrainConfig, i: int, family: str, first: int = 0) -> dict:
    """Subject i of the family; validation subjects are numbered from 100 + first."""
    if family == "out":
        return simulate_out_of_family(cfg.sim, i)
    if family == "test":
        return simulate_test(cfg, i, cfg.sim.duration_s)
    seed = subject_seed("val", 100 + first + i, cfg.seed)
    return subject_recording(cfg.sim, seed)


def fused_r(out: dict, truth: dict, band: list[float]) -> tuple[float, float]:
    """|Pearson r| of the fused signal with the true BCG (band-passed alike, on the fused grid),
    and that of the oracle: the least-squares linear mix of the 6 motion-cancelled axes."""
    t = out["prep"]["t"]
    ref = bandpass(np.interp(t, truth["t"], truth["bcg"]), out["prep"]["fs"], band)
    acc = out["fusion"]["acc_clean"]
    mix = acc @ np.linalg.lstsq(acc, ref, rcond=None)[0]
    return (float(abs(np.corrcoef(out["fusion"]["fused"], ref)[0, 1])),
            float(np.corrcoef(mix, ref)[0, 1]))


def measure(method: str, setting: str, n: int, duration_s: float, family: str,
            first: int = 0, **fusion) -> dict:
    fs_in, loss = SETTINGS[setting]
    cfg = TrainConfig()
    sim = replace(cfg.sim, fs_in=fs_in, duration_s=duration_s, motion_level=0.0,
                  channel=replace(cfg.sim.channel, loss=loss, burst=3.0))
    cfg = replace(cfg, sim=sim, fusion=replace(cfg.fusion, method=method, **fusion))
    rows = []
    for i in range(n):
        rec = recording(cfg, i, family, first)
        o = process(rec, cfg, "b")
        m = beat_metrics(o["beats_all_s"], rec["truth"], fallback=o["fallback"])
        sc, bad = octave_errors(o["beats_all_s"], rec["truth"]["r_s"], duration_s)
        rows.append([m["hr_mae"], m["ibi_mae_ms"], bad, sc,
                     *fused_r(o, rec["truth"], cfg.fusion.band_hz)])
    a = np.array(rows, dtype=np.float64)
    res = {"hr_mae": float(np.nanmean(a[:, 0])), "ibi_mae_ms": float(np.nanmean(a[:, 1])),
           "octave_pct": float(100 * a[:, 2].sum() / max(a[:, 3].sum(), 1)),
           "fused_r_mean": float(a[:, 4].mean()), "fused_r_min": float(a[:, 4].min()),
           "per_subject_ibi": [round(float(v), 1) for v in a[:, 1]],
           "oracle_r_mean": float(a[:, 5].mean()),
           "per_subject_r": [round(float(v), 2) for v in a[:, 4]],
           "per_subject_oracle_r": [round(float(v), 2) for v in a[:, 5]]}
    log.info("%s %s %s %s: HR %.2f bpm, IBI %.1f ms, octave %.1f %%, fused r mean %.2f min %.2f "
             "(oracle mix %.2f)",
             family, setting, method, fusion, res["hr_mae"], res["ibi_mae_ms"], res["octave_pct"],
             res["fused_r_mean"], res["fused_r_min"], res["oracle_r_mean"])
    log.info("  per-subject IBI %s r %s oracle %s", res["per_subject_ibi"],
             res["per_subject_r"], res["per_subject_oracle_r"])
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=12)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--family", choices=["in", "test", "out"], default="in",
                    help="in: validation subjects; test: the bench's held-out in-family subjects")
    ap.add_argument("--methods", default="global,pica")
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--first", type=int, default=0, help="first validation subject (a fresh set)")
    ap.add_argument("--context", type=float, default=2.5, help="pica_context_s")
    ap.add_argument("--shrink", type=float, default=0.0, help="pica_shrink")
    ap.add_argument("--period", choices=["scan", "window"], default="scan", help="pica_period")
    args = ap.parse_args(argv)
    setup_logging()
    for setting in args.settings.split(","):
        for method in args.methods.split(","):
            measure(method, setting, args.subjects, args.duration, args.family, args.first,
                    pica_context_s=args.context, pica_period=args.period,
                    pica_shrink=args.shrink)
    return 0


if __name__ == "__main__":
    run(main)
