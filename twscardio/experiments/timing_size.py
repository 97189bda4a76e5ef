"""`python -m twscardio.experiments.timing_size`: how many subjects arm (e)'s timing model needs.

Fits the timing model (`beatsync.fit_timing`, the config's width, epochs, lr, weight decay and
seed) on training-family subjects laid out as `--blocks` (each spec a comma list, as
`SyncConfig.blocks`: consecutive blocks of subjects, each drawing its recordings' conditions from
a fresh stream) for every `--members` count, and scores each on *validation* subjects (split
"val", 60 s, rest) at 50 Hz / 10 % and 25 Hz / 20 % bursty loss: arm (e)'s pooled median
per-beat SCG r with the model's lag and LVET offset on the pipeline's own J peaks (the template
and `--blur` of `beatsync.synchronous_scg`), and the mean |lag error| against each recording's
true median J -> AO lag. `--blur AO,AC ...` scores the first fit (first spec, first member
count) at each template blur (ms) as well. Never the bench's test subjects or the
out-of-family generator.

The training data come from `train.timing_data`, which caches each block on its own, so specs
that share leading blocks share their data.
Writes results/twscardio/timing_size.json.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from shared.cli import run
from shared.errors import DataError, UserError
from shared.io import atomic_write_json
from shared.log import get_logger, progress, setup_logging
from twscardio.beats import per_beat_pearson
from twscardio.beatsync import (
    fit_timing,
    render_scg,
    timing_targets,
    valve_times,
)
from twscardio.config import BenchConfig, TrainConfig
from twscardio.data import subject_recording, subject_seed

log = get_logger("twscardio.experiments.timing_size")

SETTINGS = {"50Hz loss10% rest": (50.0, 0.1), "25Hz loss20% rest": (25.0, 0.2)}


def validation_set(cfg: TrainConfig, first: int, n: int, fs_in: float, loss: float,
                   duration_s: float = 60.0) -> list:
    """Per validation subject: timing features, true (lag, LVET offset), the pipeline's J peaks
    and the reference SCG; features NaN where fewer than 3 whole complexes."""
    from twscardio.pipeline import process, timing_input

    sc = replace(cfg.sim, fs_in=fs_in, duration_s=duration_s, motion_level=0.0,
                 channel=replace(cfg.sim.channel, loss=loss, burst=3.0))
    run_cfg = replace(cfg, sim=sc)
    out = []
    for i in progress(range(first, first + n), desc=f"validation {fs_in:g} Hz"):
        rec = subject_recording(sc, subject_seed("val", i, cfg.seed), randomised=True)
        o = process(rec, run_cfg, "b")
        prep, fus, j = o["prep"], o["fusion"], np.sort(o["beats_all_s"])
        try:
            x = timing_input(prep, fus, j, run_cfg)
        except DataError:
            x = None
        tr = rec["truth"]
        out.append({"x": x, "y": timing_targets(j, tr), "j": j, "scg": tr["scg"],
                    "r_idx": tr["r_idx"], "fs": float(tr["fs_ref"])})
    return out


def score(val: list, pred: np.ndarray, blur_s: tuple[float, float]) -> dict[str, float]:
    """Pooled median per-beat r of the template at J - lag (AC from Weissler + the offset) and
    the mean |lag error| (ms); pred (N, 2) per validation subject (a NaN row: no SCG, as arm (e)
    outputs zeros there, whose beats have no r and so drop out of the pool)."""
    rs, errs = [], []
    for v, (lag, lvet_off) in zip(val, pred):
        n = len(v["scg"])
        if not np.isfinite([lag, lvet_off]).all() or len(v["j"]) < 3:
            s = np.zeros(n)
        else:
            ao, ac = valve_times(v["j"], lag, lvet_off)
            s = render_scg(n, v["fs"], ao, ac, blur_s=blur_s)
            errs.append(1000.0 * abs(lag - v["y"][0]))
        r = per_beat_pearson(s, v["scg"], v["r_idx"], v["fs"])
        rs.append(r[np.isfinite(r)])
    return {"r": float(np.median(np.concatenate(rs))),
            "lag_err_ms": float(np.mean(errs)) if errs else float("nan")}


def predictions(model, val: list) -> np.ndarray:
    """(N, 2) lag and LVET offset per validation subject; NaN rows where it has no features."""
    pred = np.full((len(val), 2), np.nan)
    for k, v in enumerate(val):
        if v["x"] is not None and np.isfinite(v["x"]).all():
            pred[k] = model.predict(v["x"])[0]
    return pred


def parse_ints(text: str, what: str, low: int = 1) -> list[int]:
    """"3000,6000" -> [3000, 6000]; a one-line UserError unless every value is >= low."""
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"{what} {text!r}: expected comma-separated integers") from None
    if not vals or min(vals) < low:
        raise UserError(f"{what} {text!r}: expected integers >= {low}")
    return vals


def main(argv: list[str] | None = None) -> int:
    """Fit every --blocks x --members layout, score it (and the first fit at each --blur) on
    validation subjects, write --out."""
    ap = argparse.ArgumentParser(prog="twscardio.experiments.timing_size",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", type=int, default=192, help="validation subjects")
    ap.add_argument("--first", type=int, default=200, help="first validation subject index")
    ap.add_argument("--blocks", nargs="+", default=["3000,6000"],
                    help="training-subject layouts, each a comma list (SyncConfig.blocks)")
    ap.add_argument("--members", nargs="+", default=["4"], help="ensemble sizes")
    ap.add_argument("--blur", nargs="*", default=[], help="AO,AC template blurs (ms) to score")
    ap.add_argument("--out", default="results/twscardio/timing_size.json")
    args = ap.parse_args(argv)
    specs = [parse_ints(b, "--blocks") for b in args.blocks]
    members = [m for text in args.members for m in parse_ints(text, "--members")]
    blurs = [parse_ints(b, "--blur", low=0) for b in args.blur]
    if any(len(b) != 2 for b in blurs):
        raise UserError("--blur: each value is AO,AC in ms")
    if args.subjects < 1 or args.first < 0:
        raise UserError("--subjects must be >= 1 and --first >= 0")
    setup_logging()
    from twscardio.train import timing_data

    cfg = BenchConfig().train
    s = cfg.sync
    blur0 = (s.blur_ao_ms / 1000.0, s.blur_ac_ms / 1000.0)
    val = {label: validation_set(cfg, args.first, args.subjects, fs, loss)
           for label, (fs, loss) in SETTINGS.items()}
    out: dict = {"subjects": args.subjects, "first": args.first,
                 "blur_ms": [s.blur_ao_ms, s.blur_ac_ms],
                 "fits": [], "blur_scan": []}
    first_model = None
    for spec in specs:
        data = timing_data(replace(cfg, sync=replace(s, blocks=spec)))
        for m in members:
            t0 = time.perf_counter()
            model = fit_timing(data["X"], data["Y"], s.hidden, s.epochs, s.lr, s.weight_decay,
                               cfg.seed, members=m)
            row = {"blocks": spec, "members": m, "fit_s": time.perf_counter() - t0,
                   **{label: score(v, predictions(model, v), blur0) for label, v in val.items()}}
            out["fits"].append(row)
            log.info("%s", row)
            if first_model is None:
                first_model = model
    for ao, ac in blurs:
        row = {"blur_ms": [ao, ac], **{label: score(v, predictions(first_model, v),
                                                    (ao / 1000.0, ac / 1000.0))
                                       for label, v in val.items()}}
        out["blur_scan"].append(row)
        log.info("%s", row)
    atomic_write_json(args.out, out)
    return 0


if __name__ == "__main__":
    run(main)
