"""`python -m twscardio.experiments.weak_stratum`: arm (b) under config variants, on validation
subjects of the training family and on validation subjects with a weak BCG.

The weak stratum (`refit_check.weak_recording`: every draw as the family makes it, the BCG
amplitude redrawn in `--weak-mg`) is where the fused signal holds little beat, as on the
out-of-family recordings the SQI rejects; the family stratum keeps a variant honest on
ordinary subjects, at rest (both bench rates) and, on half of them, at 25 Hz / 20 % with head
motion level 3. Validation-split subjects only: never the bench's test subjects or the
out-of-family generator.

Variants: `--variant NAME:key=value,...` (TrainConfig overrides, e.g.
`cb8:fusion.cross_bud=8`); "shipped" is the default config. Per variant, stratum and setting:
(b)'s mean HR and IBI MAE, octave-error windows, clean windows rejected, the fused signal's |r|
with the true BCG (a diagnosis: no method has the truth); and the share of heartbeat-free
windows rejected (pure noise, no contact; both rates).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from shared.cli import run
from shared.config import apply_overrides, from_dict, to_dict
from shared.errors import ConfigError
from shared.io import atomic_write_json
from shared.log import get_logger, progress, setup_logging
from twscardio.config import TrainConfig
from twscardio.data import VALIDATION_SETTINGS, setting_sims, subject_seed
from twscardio.experiments.refit_check import (
    add_stratum_arguments,
    no_beat_rejection,
    paired_ibi,
    pooled,
    score,
    weak_mg_range,
    weak_recording,
)

log = get_logger("twscardio.experiments.weak_stratum")
SETTINGS = {**{f"{k} rest": (*v, 0.0) for k, v in VALIDATION_SETTINGS.items()},
            "25Hz loss20% motion3": (25.0, 0.2, 3.0)}


def variants(texts: list[str]) -> dict[str, TrainConfig]:
    """"shipped" plus each `NAME:key=value,...` (a one-line UserError on a malformed one)."""
    out = {"shipped": TrainConfig()}
    for text in texts:
        name, _, body = text.partition(":")
        if not name or not body or name in out:
            raise ConfigError(f"--variant {text!r}: expected NAME:key=value,... with a new NAME")
        try:
            cfg = from_dict(TrainConfig, apply_overrides(to_dict(TrainConfig()),
                                                         body.split(",")))
            cfg.validate()
        except (ValueError, TypeError) as e:
            raise ConfigError(f"--variant {text!r}: {e}") from None
        out[name] = cfg
    return out


def rows_for(stratum: str, subjects: range, weak_mg, cfgs: dict[str, TrainConfig],
             duration_s: float) -> list[dict]:
    base = TrainConfig()
    rows = []
    for i in progress(subjects, desc=f"{stratum} subjects"):
        seed = subject_seed("val", i, base.seed)
        for label, sc in setting_sims(base.sim, SETTINGS, duration_s).items():
            moving = sc.motion_level > 0
            if moving and (weak_mg is not None or i >= subjects.start + len(subjects) // 2):
                continue  # motion: the family stratum's first half only
            rec = weak_recording(sc, seed, weak_mg)
            rows.append({"stratum": stratum, "subject": i, "setting": label,
                         **{name: score(rec, c) for name, c in cfgs.items()}})
    return rows


def summary(rows: list[dict], names: list[str]) -> list[dict]:
    """Per stratum, setting and variant: (b)'s mean IBI and HR, clean windows rejected, octave
    windows, mean |r|; and against shipped, paired: the mean IBI change over the recordings
    with an IBI under both ("d_ibi_paired") and how many lost their IBI ("ibi_lost": no
    consecutive matched beats under the variant, an IBI under shipped). "ibi_mean" averages
    each variant's own recordings with an IBI, so it is not a paired comparison."""
    out = []
    for stratum in sorted({r["stratum"] for r in rows}):
        for label in SETTINGS:
            sel = [r for r in rows if r["stratum"] == stratum and r["setting"] == label]
            if not sel:
                continue
            for name in names:
                c = [r[name] for r in sel]
                d_ibi, lost = paired_ibi(c, [r["shipped"] for r in sel])
                out.append({
                    "stratum": stratum, "setting": label, "variant": name, "recordings": len(c),
                    "d_ibi_paired": float(d_ibi.mean()) if d_ibi.size else float("nan"),
                    "ibi_lost": lost, **pooled(c)})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="twscardio.experiments.weak_stratum",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", action="append", default=[],
                    help="NAME:key=value,... (TrainConfig overrides); repeatable")
    add_stratum_arguments(ap)
    ap.add_argument("--out", type=Path, default=Path("runs/twscardio/weak_stratum.json"))
    a = ap.parse_args(argv)
    setup_logging()
    weak_mg = weak_mg_range(a)
    cfgs = variants(a.variant)
    rows = rows_for("family", range(a.first, a.first + a.subjects), None, cfgs, a.duration) \
        + rows_for("weak", range(a.weak_first, a.weak_first + a.weak), weak_mg, cfgs,
                   a.duration)
    tab = summary(rows, list(cfgs))
    for t in tab:
        log.info("%-6s %-20s %-10s IBI %6.2f ms (paired change %+.2f, lost %d), HR %6.3f bpm, "
                 "clean rejected %6.2f %%, octave %5.2f %%, |r| %.3f", t["stratum"],
                 t["setting"], t["variant"], t["ibi_mean"], t["d_ibi_paired"], t["ibi_lost"],
                 t["hr_mean"], 100 * t["clean_rejected"], t["octave_pct"], t["truth_r_mean"])
    # the heartbeat-free recordings of validation subjects 0..n-1, whatever --first (the same
    # recordings in every run)
    nb = no_beat_rejection(a.no_beat, 0, cfgs, a.duration)
    log.info("heartbeat-free windows rejected: %s", nb)
    atomic_write_json(a.out, {"args": {k: str(v) for k, v in vars(a).items()}, "rows": rows,
                              "summary": tab, "no_beat_rejection": nb})
    return 0


if __name__ == "__main__":
    run(main)
