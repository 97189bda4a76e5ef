"""The stereo-agreement step's (k, max_ratio) re-read for the S4 cross-rig nets (seeds 0-2: the
seed-0 net, shipped at the time and now kept as nets/S4_s0, and nets/S4_s1, S4_s2 from the same
GPU call), on the validation sets only:
48 fresh unseen-rig scenes (65,000+), 8 between-family scenes (90,000+), 8 in-family validation
scenes (91,000+), and the fixed rig's validation scenes with the bench's fixed-rig net (its
refinement without the fill, as fusion_ceiling reads it). Each scene's ratio is MAE / ToF-only
MAE after the bench's refinement at the grid's (k, max_ratio). The fixed-rig net comes from the
cache of a full bench run. Usage (repository root, PAPERBENCH_CACHE=.cache):
python results/mobifuse/train_scale/agree_grid.py OUT.json"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from mobifuse.bench import (
    QUICK,
    frame_shift,
    predict_frames,
    refined,
    rig_frames,
    trained_net,
)
from mobifuse.config import BenchConfig
from mobifuse.experiments.cross_rig_seeds import ratios
from mobifuse.experiments.fusion_ceiling import build_frames_fixed
from mobifuse.experiments.train_scale import eval_sets
from mobifuse.models import load_model
from shared.cli import parse_args

GRID = [(k, r) for k in (1.0, 0.75, 1.5) for r in (0.25, 0.5, 1.0)]  # (1.0, 0.25): the default
HERE = Path(__file__).resolve().parent
NETS = [HERE / "nets" / f"S4_s{s}.safetensors" for s in (0, 1, 2)]

_, cfg = parse_args([], BenchConfig, prog="agree_grid", description=__doc__,
                    default_config="configs/mobifuse/bench.yaml", quick=QUICK)
torch.set_num_threads(1)
sets = {name: rig_frames(cfg, *eval_sets(cfg)[name], name)  # the train_scale rule's sets
        for name in ("fresh_unseen", "val", "val_in_family")}
sim = cfg.train.sim
raw = {name: [predict_frames(load_model(p), frames) for p in NETS] for name, frames in sets.items()}
fixed = build_frames_fixed(cfg)
raw_fixed = predict_frames(trained_net(cfg.train, lambda: None, True), fixed)
out = {}
for k, r in GRID:
    row = {}
    for name, frames in sets.items():
        per_seed = [ratios([refined(p, f, k, r, shift=frame_shift(sim, f["rig"][1]))
                            for p, f in zip(preds, frames)], frames) for preds in raw[name]]
        a = np.array(per_seed)
        row[name] = {"ratios": a.tolist(), "mean": float(a.mean()),
                     "worst_mean": float(a.max(1).mean()),
                     "at_or_below_0.7": int((a <= 0.7).sum()), "above_1": int((a > 1).sum())}
    row["fixed_val_mean"] = float(np.mean(ratios([refined(p, f, k, r) for p, f in
                                                  zip(raw_fixed, fixed)], fixed)))
    out[f"k={k:g} max_ratio={r:g}"] = row
    print(k, r, {n: (round(v["mean"], 4), round(v["worst_mean"], 3), v["at_or_below_0.7"])
                 for n, v in row.items() if isinstance(v, dict)},
          round(row["fixed_val_mean"], 4), flush=True)
with open(sys.argv[1], "w") as fh:
    json.dump(out, fh, indent=1)
