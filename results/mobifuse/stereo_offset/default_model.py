"""The scene-wide stereo offset (gate 1) against none (gate 0) with the shipped default model
(`mobifuse-default.safetensors`), on the validation sets of the S16 rule, scored as the bench
scores the cross-rig arms (results/mobifuse/NOTES.md, "The stereo offset with the shipped default
model"). Usage (repository root, PAPERBENCH_CACHE=.cache, one thread): python
results/mobifuse/stereo_offset/default_model.py OUT.json"""
import json
import sys

import numpy as np
import torch

from mobifuse.api import default_model
from mobifuse.bench import QUICK, predict_frames, refined
from mobifuse.config import BenchConfig
from mobifuse.disocclusion import frame_shift
from mobifuse.experiments.train_scale import rule_sets, set_scores
from shared.cli import parse_args

torch.set_num_threads(1)
_, cfg = parse_args([], BenchConfig, prog="default_model", description="", quick=QUICK,
                    default_config="configs/mobifuse/bench.yaml")
net = default_model()
out = {}
for name, frames in rule_sets(cfg).items():
    preds = [np.asarray(p, dtype=np.float32) for p in predict_frames(net, frames)]
    for gate in (0.0, 1.0):
        res = [refined(p, f, cfg.agree_k, shift=frame_shift(cfg.train.sim, f["rig"][1]),
                       offset_gate=gate) for p, f in zip(preds, frames)]
        out[f"gate{gate:g}_{name}"] = set_scores(res, frames, f"gate {gate:g} {name:8s}")
with open(sys.argv[1], "w") as fh:
    json.dump(out, fh, indent=1)
