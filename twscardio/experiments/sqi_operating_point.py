"""`python -m twscardio.experiments.sqi_operating_point`: the SQI threshold on validation data.

The logistic calibration (`calibrate_sqi`) fixes the SQI's weights on training recordings; this
picks the operating point - `QualityConfig.threshold` - on *validation*-split subjects of the
training family (never the bench's test subjects or the out-of-family generator): clean-beat
recordings at the bench's rest settings (50 Hz / 10 % and 25 Hz / 20 % bursty loss, 60 s) and
heartbeat-free ones (pure noise, bud out of the ear) of the same subjects' conditions. It prints
and writes, per candidate threshold, the share of clean windows rejected and of no-beat windows
rejected, and the chosen threshold: the one with the largest margin to both targets, i.e. that
maximises min(no-beat rejection - `--no-beat-target`, `--clean-target` - clean rejection), the
clean share taken at the worse of the two settings and the no-beat share at the worse kind.
"""

from __future__ import annotations

import argparse

import numpy as np

from shared.cli import run
from shared.io import atomic_write_json
from shared.log import get_logger, progress
from twscardio.config import TrainConfig
from twscardio.data import VALIDATION_SETTINGS, setting_sims, subject_recording, subject_seed
from twscardio.pipeline import process
from twscardio.simulator import simulate_no_beat

log = get_logger("twscardio.experiments.sqi_operating_point")
SETTINGS = VALIDATION_SETTINGS


def window_sqi(n: int, duration_s: float, first: int) -> dict[str, np.ndarray]:
    """Per-window sqi of n validation subjects per setting (clean) and per no-beat kind."""
    cfg = TrainConfig()
    out: dict[str, list] = {}
    for i in progress(range(first, first + n), desc="validation subjects"):
        seed = subject_seed("val", i, cfg.seed)
        for label, sc in setting_sims(cfg.sim, SETTINGS, duration_s).items():
            out.setdefault(label, []).append(
                process(subject_recording(sc, seed, randomised=True), cfg)["windows"]["sqi"])
            if label.startswith("50Hz"):
                for kind in ("noise", "no_contact"):
                    out.setdefault(kind, []).append(process(simulate_no_beat(
                        sc, seed + 2, kind), cfg)["windows"]["sqi"])
    return {k: np.concatenate(v) for k, v in out.items()}


def _clean(r: dict) -> float:
    """A row's share of clean windows rejected, at the worse setting."""
    return max(r[f"rejected_{k}"] for k in SETTINGS)


def _no_beat(r: dict) -> float:
    """A row's share of heartbeat-free windows rejected, at the worse kind."""
    return min(r["rejected_noise"], r["rejected_no_contact"])


def choose(rows: list[dict], clean_target: float, no_beat_target: float) -> dict:
    """The row with the largest margin min(no-beat rejection - no_beat_target, clean_target -
    clean rejection) (clean at the worse setting, no-beat at the worse kind); ties, in exact
    arithmetic (margins rounded to 1e-12, so two routes to the same share compare equal), go
    to the lowest threshold (fewest windows lost)."""
    def margin(r):
        return round(min(_no_beat(r) - no_beat_target, clean_target - _clean(r)), 12)

    return max(rows, key=lambda r: (margin(r), -r["threshold"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="twscardio.experiments.sqi_operating_point",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", type=int, default=24, help="validation subjects")
    ap.add_argument("--first", type=int, default=300, help="first validation subject index")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--clean-target", type=float, default=0.05)
    ap.add_argument("--no-beat-target", type=float, default=0.95)
    ap.add_argument("--out", default="results/twscardio/sqi_operating_point.json")
    args = ap.parse_args(argv)
    s = window_sqi(args.subjects, args.duration, args.first)
    grid = np.round(np.arange(0.02, 0.61, 0.02), 2)
    rows = [{"threshold": float(g),
             **{f"rejected_{k}": float((v < g).mean()) for k, v in s.items()}} for g in grid]
    pick = choose(rows, args.clean_target, args.no_beat_target)
    for r in rows:
        log.info("threshold %.2f: clean rejected %.3f (worst setting), no-beat rejected %.3f",
                 r["threshold"], _clean(r), _no_beat(r))
    log.info("chosen: %s", pick)
    atomic_write_json(args.out, {"chosen": pick, "rows": rows, "windows": {
        k: int(v.size) for k, v in s.items()}, "subjects": args.subjects, "first": args.first})
    return 0


if __name__ == "__main__":
    run(main)
