"""`python -m edgeoar.experiments.lr_sweep [--quick] --try "train.lr_rgb=0.002" ...`: the
iteratively trained model of the bench under a few training settings, judged on the
VALIDATION split only (the test and out-of-family splits are never read).

Each `--try` is one setting: `key=value` overrides of the bench config joined by "&" (e.g.
"train.lr_rgb=0.002&train.lr_motion=0.006"); "" is the config as it is. Per setting: the
validation accuracy of each modality's per-step classifiers and of the IIE fusion after 1, 4,
8 and 16 frames (or the clip's length), the oracle exit fraction on validation
(`exits.oracle_exits`) and the IIE + MC operating point chosen on validation (fraction of the
frames, accuracy vs the full clip's, the accuracy-vs-frames AUC), the strict frame floor
(`exits.frame_floor`) at the same tolerance, and the fewest frames at which IIE reaches a few
absolute validation accuracies (0.80 ... 0.87: settings that move the full clip's accuracy
move the target's bar with it, these do not), and the ratio of IIE + MC's mean exit frame on
the temporal-only pairs to the other classes'. Models are trained through `train.get_model`, so the
bench reuses the chosen one from the cache. Writes sweep.json.
"""

from __future__ import annotations

import json

import numpy as np

from edgeoar.bench import QUICK
from edgeoar.config import BenchConfig
from edgeoar.data import load_split
from edgeoar.exits import compare_policies, frame_floor, oracle_exits, step_scores
from edgeoar.train import get_model, predict
from shared.cli import build_parser, parse_args, run
from shared.config import apply_overrides, from_dict, to_dict
from shared.io import atomic_write_json, make_run_dir
from shared.log import get_logger

log = get_logger("edgeoar.experiments.lr_sweep")


def validation_figures(bc: BenchConfig) -> dict:
    """Train (or take from the cache) the iterative model of `bc`; its validation figures."""
    model, info = get_model(bc.train)
    val = load_split(bc.train, "val")
    y, steps = val["label"], bc.train.stream.clip_frames
    p = predict(model, val)
    sc = step_scores(p["rgb"], p["motion"], p["gate"])
    at = sorted({min(t, steps) for t in (1, 4, 8, steps)})

    def acc(probs):
        ok = probs.argmax(-1) == y[:, None]
        return {t: round(float(ok[:, t - 1].mean()), 3) for t in at}

    res = compare_policies(sc, y, {"val": (sc, y)}, bc.exits.operating_rule(), bc.exits.conf_grid,
                           bc.exits.mc_grid, policies=("iie", "iie_mc", "full_clip"))
    full = res["full_clip"]["val"]["acc"]
    pts = res["iie"]["val"]["curve"]  # (n, 3) frac, acc, wrong early over IIE's tau_conf

    ex, early = res["iie_mc"]["val"]["exits"] + 1, val["early"]

    def frac_at(a):  # fewest frames of an IIE threshold reaching validation accuracy a
        ok = pts[pts[:, 1] >= a - 1e-9, 0]
        return round(float(ok.min()), 3) if len(ok) else None

    return {"acc_rgb": acc(sc["p_rgb"]), "acc_motion": acc(sc["p_mot"]),
            "acc_iie": acc(sc["p_iie"]),
            "oracle_frac": float((oracle_exits(sc["p_iie"], y) + 1).mean() / steps),
            "floor_frac": frame_floor(sc["p_iie"], y, full - bc.exits.tolerance) / steps,
            "iie_mc_auc": res["iie_mc"]["val"]["auc"],
            "iie_mc_param": str(res["iie_mc"]["param"]),
            "iie_mc_frac": res["iie_mc"]["val"]["frac"], "iie_mc_acc": res["iie_mc"]["val"]["acc"],
            "full_clip_acc": full,
            "iie_frac_at_acc": {a: frac_at(a) for a in (0.80, 0.82, 0.85, 0.87)},
            "iie_mc_temporal_ratio": float(ex[~early].mean() / ex[early].mean()),
            "train_s": info.get("hist", {}).get("train_s")}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("edgeoar.experiments.lr_sweep", __doc__.split("\n\n")[0],
                          "configs/edgeoar/bench.yaml")
    parser.add_argument("--try", dest="tries", action="append", default=[], metavar="SETTING",
                        help='overrides joined by "&", e.g. "train.lr_rgb=0.002" (repeatable)')
    args, bc = parse_args(argv, BenchConfig, prog="edgeoar.experiments.lr_sweep",
                          description=__doc__.split("\n\n")[0], parser=parser, quick=QUICK,
                          default_config="configs/edgeoar/bench.yaml")
    settings = [[o for o in t.split("&") if o.strip()] for t in (args.tries or [""])]
    cfgs = [from_dict(BenchConfig, apply_overrides(to_dict(bc), s)) for s in settings]
    run_dir = make_run_dir(args.out, "edgeoar", "lr_sweep")
    rows = []
    for s, cfg in zip(settings, cfgs):
        row = {"setting": "&".join(s) or "(config)", **validation_figures(cfg)}
        rows.append(row)
        log.info("%s", json.dumps(row))
        atomic_write_json(run_dir / "sweep.json", rows)
    best = min(rows, key=lambda r: (r["iie_mc_frac"], -r["iie_mc_acc"]))
    log.info("fewest validation frames: %s (%.3f of the clip, oracle %.3f)", best["setting"],
             best["iie_mc_frac"], best["oracle_frac"])
    return 0 if np.isfinite(best["iie_mc_frac"]) else 1


if __name__ == "__main__":
    run(main)
