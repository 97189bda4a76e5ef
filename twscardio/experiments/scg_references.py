"""`python -m twscardio.experiments.scg_references`: what limits the reconstructed SCG's r.

On *validation*-split subjects of the training family (never the bench's test subjects), at the
bench's main setting (50 Hz, 10 % bursty loss, rest, 60 s), the pooled median per-beat Pearson r
(`beats.per_beat_pearson`, [R - 50 ms, R + 550 ms]) of:

* `net_d` - the network arm (d) (the bench's `--quick` weights), and `net_d_best_lag` - the same
  output shifted per recording by the lag (+-80 ms) that maximises its r (an oracle: is the
  network's waveform right but misplaced?);
* `template_true_ao_ac` - the SCG template (`beatsync.render_scg`) at the true AO and AC;
  `template_true_ao_weissler` - at the true AO with AC from the Weissler LVET regression;
* `template_j_oracle_lag` - at the J peaks of arm (b) minus each recording's true median J -> AO
  lag, AC by Weissler + the true LVET offset; `template_j_population_lag` - minus the median lag
  of all the subjects (one constant);
* `template_j_transit_blind` - as the oracle, but the lag errs by exactly the subject's head
  transit minus its mean (7.5 ms): the BCG cannot reveal the transit, so this is the ceiling of
  any lag estimate from the BCG;
* `sync_e` - arm (e) (`beatsync`: learned lag and LVET offset, blurred template).

Writes results/twscardio/scg_references.json.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from shared.cli import run
from shared.config import apply_overrides, from_dict, to_dict
from shared.io import atomic_write_json
from shared.log import get_logger, progress
from twscardio.beats import per_beat_pearson
from twscardio.beatsync import lvet_regression, render_scg, timing_targets
from twscardio.config import BenchConfig, ChannelConfig
from twscardio.data import subject_recording, subject_seed
from twscardio.pipeline import process

log = get_logger("twscardio.experiments.scg_references")


def _at_j(j: np.ndarray, lag: float, lvet_off: float, n: int, fs: float) -> np.ndarray:
    ao = np.sort(j) - lag
    ibi = np.diff(ao, prepend=ao[0] - np.median(np.diff(ao)))
    return render_scg(n, fs, ao, ao + lvet_regression(60.0 / np.clip(ibi, 0.33, 2.0)) + lvet_off)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="twscardio.experiments.scg_references",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", type=int, default=24, help="validation subjects")
    ap.add_argument("--first", type=int, default=100, help="first validation subject index")
    ap.add_argument("--out", default="results/twscardio/scg_references.json")
    args = ap.parse_args(argv)
    from twscardio.bench import QUICK, arm_configs
    from twscardio.train import get_model, get_timing_model

    bc = from_dict(BenchConfig, apply_overrides(to_dict(BenchConfig()),
                                                [f"{k}={v}" for k, v in QUICK.items()]))
    cfg = bc.train
    net, timing = get_model(arm_configs(bc)["d"]), get_timing_model(cfg)
    sc = replace(cfg.sim, fs_in=50.0, duration_s=60.0, channel=ChannelConfig(loss=0.1, burst=3.0))
    rows = []
    for i in progress(range(args.first, args.first + args.subjects), desc="validation subjects"):
        seed = subject_seed("val", i, cfg.seed)
        rec = subject_recording(sc, seed, randomised=True)
        tr = rec["truth"]
        fs, n = float(tr["fs_ref"]), len(tr["scg"])
        pb = lambda x: per_beat_pearson(np.asarray(x)[:n], tr["scg"], tr["r_idx"], fs)  # noqa
        d = process(rec, cfg, "d", net)["scg"][:n]
        j = process(rec, cfg, "b")["beats_all_s"]
        lag, off = timing_targets(j, tr)
        transit = rec["subject"].get("transit_s", 0.0)
        best = max(range(-8, 9), key=lambda k: np.nanmedian(pb(np.roll(d, k))))
        ac_w = tr["ao_s"] + lvet_regression(60.0 / np.diff(tr["r_s"], prepend=tr["r_s"][0] - 0.8))
        rows.append({"net_d": pb(d), "net_d_best_lag": pb(np.roll(d, best)),
                     "template_true_ao_ac": pb(render_scg(n, fs, tr["ao_s"], tr["ac_s"])),
                     "template_true_ao_weissler": pb(render_scg(n, fs, tr["ao_s"], ac_w)),
                     "template_j_oracle_lag": pb(_at_j(j, lag, off, n, fs)),
                     "template_j_transit_blind": pb(_at_j(j, lag - transit + 0.0075, off, n, fs)),
                     "sync_e": pb(process(rec, cfg, "e", timing)["scg"]),
                     "_lag": lag, "_j": j, "_off": off, "_n": n, "_tr": tr})
    pop = float(np.median([r["_lag"] for r in rows]))
    for r in rows:
        r["template_j_population_lag"] = per_beat_pearson(
            _at_j(r["_j"], pop, 0.0, r["_n"], 100.0), r["_tr"]["scg"], r["_tr"]["r_idx"], 100.0)
    keys = [k for k in rows[0] if not k.startswith("_")]
    res = {k: float(np.nanmedian(np.concatenate([r[k] for r in rows]))) for k in keys}
    res.update(subjects=args.subjects, first=args.first, setting="50 Hz, 10 % loss (burst 3), rest")
    log.info("%s", res)
    atomic_write_json(args.out, res)
    return 0


if __name__ == "__main__":
    run(main)
