"""`python -m twscardio.experiments.stream_tail`: streaming HR error tails on validation subjects.

Pushes training-family *validation* recordings (split "val", 60 s, 50 Hz / 10 % bursty loss,
rest; never the bench's test subjects or the out-of-family generator) packet by packet through
`StreamingMonitor` without a model (arm b) and scores each update against the true HR of its
window (`bench.stream_errors`): mean, median, p95, share > 10 bpm off and coverage, for each
`RobustHeartRate` setting given as `--variant memory_s=5,tol=0.2,octave=1.6` (repeatable; the
default setting when none is given). This is how the streaming HR's settings were chosen.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from shared.cli import run
from shared.errors import UserError
from shared.io import atomic_write_json
from shared.log import get_logger, progress
from twscardio.bench import stream, stream_errors
from twscardio.config import ChannelConfig, TrainConfig
from twscardio.data import subject_recording, subject_seed
from twscardio.stream import RobustHeartRate

log = get_logger("twscardio.experiments.stream_tail")


def parse_variant(text: str) -> dict[str, float]:
    """"memory_s=5,tol=0.2" -> {"memory_s": 5.0, "tol": 0.2} (RobustHeartRate's arguments)."""
    allowed = ("memory_s", "tol", "dedup_s", "octave")
    out = {}
    for part in filter(None, text.split(",")):
        key, _, val = part.partition("=")
        if key not in allowed:
            raise UserError(f"--variant: unknown setting '{key}' (use {', '.join(allowed)})")
        try:
            out[key] = float(val)
        except ValueError:
            raise UserError(f"--variant: {key}={val!r} is not a number") from None
    return out


def tails(errors: list[np.ndarray]) -> dict[str, float]:
    e = np.concatenate(errors)
    f = e[np.isfinite(e)]
    return {"mean": float(f.mean()), "median": float(np.median(f)),
            "p95": float(np.percentile(f, 95)), "share_gt10": float((f > 10).mean()),
            "coverage": float(f.size / e.size), "updates": int(e.size)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="twscardio.experiments.stream_tail",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", type=int, default=48, help="validation subjects")
    ap.add_argument("--first", type=int, default=100, help="first validation subject index")
    ap.add_argument("--variant", action="append", default=None, help="RobustHeartRate settings")
    ap.add_argument("--out", default="results/twscardio/stream_tail_val100.json")
    args = ap.parse_args(argv)
    variants = {v: parse_variant(v) for v in (args.variant or [""])}
    cfg = TrainConfig()
    sc = replace(cfg.sim, fs_in=50.0, duration_s=60.0, channel=ChannelConfig(loss=0.1, burst=3.0))
    cfg = replace(cfg, sim=sc)
    errors: dict[str, list] = {v: [] for v in variants}
    for i in progress(range(args.first, args.first + args.subjects), desc="validation subjects"):
        seed = subject_seed("val", i, cfg.seed)
        rec = subject_recording(sc, seed, randomised=True)
        for name, kw in variants.items():
            ups = stream(rec, cfg, None, hr=RobustHeartRate(**kw))
            errors[name].append(stream_errors(ups, rec["truth"]))
    res = {name or "default": tails(e) for name, e in errors.items()}
    for name, t in res.items():
        log.info("%s: mean %.2f bpm, median %.2f, p95 %.2f, > 10 bpm %.2f %%, coverage %.3f",
                 name, t["mean"], t["median"], t["p95"], 100 * t["share_gt10"], t["coverage"])
    atomic_write_json(args.out, {"subjects": args.subjects, "first": args.first, "tails": res})
    return 0


if __name__ == "__main__":
    run(main)
