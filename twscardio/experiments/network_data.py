"""`python -m twscardio.experiments.network_data`: which training data the network arms need.

The full bench trains (c)/(d) on 3072 subjects x 60 s x 8000 steps (the setting this probe
chose with the prior; 6144 x 10 s before it), `--quick` on 1536 subjects x 10 s x 3000 steps;
former full settings are variants such as `short:n_subjects=6144,sim.duration_s=10` and, before
the prior, `few:n_subjects=96,sim.duration_s=60,steps=4000` and
`many3072:n_subjects=3072,sim.duration_s=10,steps=4000`. On training-family *validation*
subjects (split "val", never the bench's test subjects or the out-of-family generator) at
50 Hz / 10 % and 25 Hz / 20 % bursty loss, rest, 60 s (with `--motion` also the bench's 25 Hz /
20 % / motion-3 row), this scores each network set the way the bench scores arms (c)/(d)
(`eval.evaluate_recording`): HR and IBI MAE, median per-beat SCG r, AO and AC MAE, octave errors.
Network sets: "full" and "quick" (shipped weights) and any `--variant NAME:key=value,key=value`
(train overrides on the full setting; trained into the cache when missing, at the full setting
~5 min of simulation + ~3 min of training per arm on one core);
`--arms d` trains and scores arm (d) only; `--arms d,e` adds arm (e) (the beat-synchronous SCG,
its timing model) as a reference.

Writes results/twscardio/network_data.json.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from shared.cli import run
from shared.config import apply_overrides, from_dict, to_dict
from shared.errors import UserError
from shared.io import atomic_write_json
from shared.log import get_logger, progress, setup_logging
from twscardio.config import BenchConfig, ChannelConfig
from twscardio.data import subject_recording, subject_seed
from twscardio.eval import aggregate, evaluate_recording

log = get_logger("twscardio.experiments.network_data")

SETTINGS = {"50Hz loss10% rest": (50.0, 0.1, 0.0), "25Hz loss20% rest": (25.0, 0.2, 0.0)}
MOTION = {"25Hz loss20% motion3": (25.0, 0.2, 3.0)}  # with --motion (the bench's motion row)
KEEP = ("hr_mae", "ibi_mae_ms", "beat_r_median", "ao_mae_ms", "ac_mae_ms", "octave_pct",
        "missed_pct")


def network_sets(variants: list[str]) -> dict[str, BenchConfig]:
    """{name: bench config whose arms (c)/(d) are that network set}."""
    from twscardio.bench import QUICK

    full = BenchConfig()
    quick = {k: v for k, v in QUICK.items() if k.startswith("train.")}
    sets = {"full": full, "quick": _with(full, [f"{k}={v}" for k, v in quick.items()])}
    for text in variants:
        name, sep, body = text.partition(":")
        if not sep or not name or name in sets:
            raise UserError(f"--variant {text!r}: expected NAME:key=value,... with a new NAME")
        sets[name] = _with(full, [f"train.{kv}" for kv in filter(None, body.split(","))])
    return sets


def parse_arms(text: str) -> tuple[str, ...]:
    """"c,d" -> ("c", "d"): the network arms a probe run trains and scores; "e" adds the
    beat-synchronous arm (the set's timing model) as a reference."""
    arms = tuple(dict.fromkeys(a.strip() for a in text.split(",") if a.strip()))
    if not arms or any(a not in ("c", "d", "e") for a in arms):
        raise UserError(f"--arms {text!r}: expected a comma-separated subset of c, d, e")
    return arms


def _with(bc: BenchConfig, overrides: list[str]) -> BenchConfig:
    return from_dict(BenchConfig, apply_overrides(to_dict(bc), overrides))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="twscardio.experiments.network_data",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", type=int, default=24, help="validation subjects")
    ap.add_argument("--first", type=int, default=100, help="first validation subject index")
    ap.add_argument("--variant", action="append", default=[],
                    help="NAME:key=value,... train overrides, e.g. "
                         "many4000:n_subjects=1536,sim.duration_s=10")
    ap.add_argument("--arms", default="c,d",
                    help="network arms to train and score, comma-separated (c, d or c,d)")
    ap.add_argument("--motion", action="store_true",
                    help="also score the bench's motion setting (25 Hz / 20 %% loss, motion 3)")
    ap.add_argument("--out", default="results/twscardio/network_data.json")
    args = ap.parse_args(argv)
    setup_logging()
    from twscardio.bench import arm_configs
    from twscardio.train import get_model, get_timing_model

    arms = parse_arms(args.arms)
    sets = network_sets(args.variant)
    nets = {name: {arm: get_model(c) for arm, c in arm_configs(bc).items() if arm in arms}
            for name, bc in sets.items()}
    for name, bc in sets.items():
        if "e" in arms:
            nets[name]["e"] = get_timing_model(bc.train)
    cfg = BenchConfig().train
    out: dict = {"subjects": args.subjects, "first": args.first, "arms": list(arms),
                 "sets": {name: {"n_subjects": bc.train.n_subjects, "steps": bc.train.steps,
                                 "duration_s": bc.train.sim.duration_s,
                                 "val_window_r": {a: m.hist["val"]["window_r_median"]
                                                  for a, m in nets[name].items() if a != "e"}}
                          for name, bc in sets.items()}}
    for label, (fs_in, loss, motion) in {**SETTINGS, **(MOTION if args.motion else {})}.items():
        sc = replace(cfg.sim, fs_in=fs_in, duration_s=60.0, motion_level=motion,
                     channel=ChannelConfig(loss=loss, burst=3.0))
        run_cfg = replace(cfg, sim=sc)
        per_set: dict[str, list] = {name: [] for name in nets}
        for i in progress(range(args.first, args.first + args.subjects), desc=label):
            rec = subject_recording(sc, subject_seed("val", i, cfg.seed), randomised=True)
            for name, models in nets.items():
                per_set[name].append(evaluate_recording(rec, run_cfg, models))
        for name, res in per_set.items():
            agg = aggregate(res)
            out["sets"][name][label] = {a: {k: agg[a][k] for k in KEEP} for a in arms}
            log.info("%s %s: %s", label, name, out["sets"][name][label])
    atomic_write_json(args.out, out)
    return 0


if __name__ == "__main__":
    run(main)
