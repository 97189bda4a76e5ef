"""Measurement only: the mean of three S16 nets' raw outputs (seeds 3, 4, 5 of
train_scale_cpu_s16_b/nets), then the bench's refinement, against each of the three alone, on
the validation sets of the S16 rule (48 fresh unseen scenes 65,000+, between-family 90,000+,
in-family 91,000+) and, reported only, the bench's test sets. Each scene's ratio is MAE /
ToF-only MAE. Usage (repository root, PAPERBENCH_CACHE=.cache):
python results/mobifuse/train_scale/ensemble_s16.py OUT.json"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from mobifuse.bench import QUICK, predict_frames, rig_frames, rig_refined
from mobifuse.config import BenchConfig
from mobifuse.experiments.cross_rig_seeds import ratios
from mobifuse.experiments.train_scale import eval_sets
from mobifuse.models import load_model
from shared.cli import parse_args

HERE = Path(__file__).resolve().parent
NETS = [HERE.parent / "train_scale_cpu_s16_b" / "nets" / f"S16_s{s}.safetensors" for s in (3, 4, 5)]
_, cfg = parse_args([], BenchConfig, prog="ensemble_s16", description=__doc__,
                    default_config="configs/mobifuse/bench.yaml", quick=QUICK)
torch.set_num_threads(1)
nets = [load_model(p) for p in NETS]
out = {}
for name, (family, seed0, n) in eval_sets(cfg).items():
    frames = rig_frames(cfg, family, seed0, n, name)
    raw = [predict_frames(net, frames) for net in nets]
    mean = [np.mean([r[i] for r in raw], axis=0) for i in range(len(frames))]
    row = {}
    for arm, preds in [(p.stem, r) for p, r in zip(NETS, raw)] + [("mean_of_3", mean)]:
        r = np.array(ratios(rig_refined(preds, frames, cfg.agree_k, cfg.train.sim), frames))
        row[arm] = {"ratios": r.tolist(), "mean": float(r.mean()), "worst": float(r.max()),
                    "at_or_below_0.7": int((r <= 0.7).sum()), "above_1": int((r > 1).sum())}
    out[name] = row
    print(name, {a: (v["at_or_below_0.7"], round(v["worst"], 3), round(v["mean"], 3))
                 for a, v in row.items()}, flush=True)
with open(sys.argv[1], "w") as fh:
    json.dump(out, fh, indent=1)
