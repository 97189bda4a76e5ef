"""The scene-wide stereo offset (gate 1) against none (gate 0) with the shipped default model
(`mobifuse-default.safetensors`), on the validation sets of the S16 rule, scored as the bench
scores the cross-rig arms (results/mobifuse/NOTES.md, "The stereo offset with the shipped default
model"). Usage (repository root, PAPERBENCH_CACHE=.cache, one thread): python
results/mobifuse/stereo_offset/default_model.py OUT.json"""
import dataclasses
import json
import sys

import numpy as np
import torch

from mobifuse.api import default_model
from mobifuse.bench import QUICK, predict_frames, refined, rig_frames
from mobifuse.config import BenchConfig
from mobifuse.disocclusion import frame_shift
from mobifuse.experiments.cross_rig_seeds import ratios
from mobifuse.experiments.fusion_ceiling import VAL_RIGS, VAL_SCENES, VAL_SEED0
from mobifuse.experiments.train_scale import FRESH_SCENES, FRESH_SEED0
from shared.cli import parse_args

torch.set_num_threads(1)
_, cfg = parse_args([], BenchConfig, prog="default_model", description="", quick=QUICK,
                    default_config="configs/mobifuse/bench.yaml")
net = default_model()
SETS = {"fresh": (cfg.test_rigs, FRESH_SEED0, FRESH_SCENES, "fresh_unseen"),
        "between": (dataclasses.replace(cfg.test_rigs, **VAL_RIGS), VAL_SEED0, VAL_SCENES, "val"),
        "in": (cfg.train_rigs, VAL_SEED0 + 1_000, VAL_SCENES, "val_in_family")}
out = {}
for name, (fam, seed0, n, desc) in SETS.items():
    frames = rig_frames(cfg, fam, seed0, n, desc)
    preds = [np.asarray(p, dtype=np.float32) for p in predict_frames(net, frames)]
    for gate in (0.0, 1.0):
        res = [refined(p, f, cfg.agree_k, shift=frame_shift(cfg.train.sim, f["rig"][1]),
                       offset_gate=gate) for p, f in zip(preds, frames)]
        r = np.array(ratios(res, frames))
        out[f"gate{gate:g}_{name}"] = {"ratios": r.tolist(), "at_or_below_0.7": int((r <= 0.7).sum()),
                                       "worst": float(r.max()), "mean": float(r.mean())}
        print(f"gate {gate:g} {name:8s} {(r <= 0.7).sum():2d}/{len(r)} worst {r.max():.3f} "
              f"mean {r.mean():.4f}", flush=True)
with open(sys.argv[1], "w") as fh:
    json.dump(out, fh, indent=1)
