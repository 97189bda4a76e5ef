"""`python -m twscardio.experiments.polarity_check`: does the fused BCG keep the true BCG's sign?

For held-out subjects of each simulator family (rates 15-100 Hz, 20 % loss, motion 0-2), the sign
of corr(fused, true head-frame BCG) is compared with two sign rules applied to the same fused
signal: positive skewness (the earlier rule) and `fusion.onset_polarity` (the first lobe of the
median beat complex, the current one). The network maps the fused BCG to a chest SCG of fixed
polarity, so a rule that gets the sign wrong for some subjects makes that target ambiguous.
Prints the share of subjects each rule gets right, per family and recording length.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
from scipy import stats

from shared.cli import run
from shared.log import get_logger, setup_logging
from twscardio.config import ChannelConfig, TrainConfig
from twscardio.data import subject_seed
from twscardio.fusion import fuse, onset_polarity
from twscardio.pipeline import prepare
from twscardio.simulator import draw_subject, simulate

log = get_logger("twscardio.experiments.polarity_check")


def agreement(family: str, n: int, duration_s: float) -> dict[str, float]:
    """Share of n subjects whose sign each rule gets right (vs the true BCG)."""
    cfg = TrainConfig()
    sim = replace(cfg.sim, morphology=family, duration_s=duration_s,
                  channel=ChannelConfig(loss=0.2))
    hits = {"skewness": 0, "onset_polarity": 0}
    for i in range(n):
        seed = subject_seed("test", 100 + i, 0)
        sub = draw_subject(np.random.default_rng(seed), sim.hr_range, family == "randomised")
        rec = simulate(replace(sim, fs_in=[15.0, 25.0, 50.0, 100.0][i % 4],
                               motion_level=float(i % 3)), seed * 7 + 1, subject=sub)
        prep = prepare(rec, cfg, baseline=False)
        fus = fuse(prep["X"], prep["mask"], cfg.enhance.fs_out, cfg.fusion)
        x = fus["fused"]
        truth = np.sign(np.corrcoef(x, rec["truth"]["bcg"][:x.size])[0, 1])
        hits["skewness"] += int(np.sign(stats.skew(x)) == truth)
        rule = onset_polarity(x, cfg.enhance.fs_out, float(np.median(fus["period_s"])))
        hits["onset_polarity"] += int(rule == truth)
    return {k: v / n for k, v in hits.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="twscardio.experiments.polarity_check",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", type=int, default=40, help="subjects per family")
    args = ap.parse_args(argv)
    setup_logging()
    for duration in (30.0, 5.0):
        for family in ("fixed", "randomised"):
            log.info("%s family, %g-s recordings: %s", family, duration,
                     agreement(family, args.subjects, duration))
    return 0


if __name__ == "__main__":
    run(main)
