"""The stereo offset gated per pixel (P1: sigma_st <= sigma_ToF, P2: <= 0.5 sigma_ToF) against
the shipped scene-level gate (O1) on the validation sets of the S16 rule, the shipped S16 seed-0
net (results/mobifuse/NOTES.md, "The stereo offset gated per pixel"). Usage (repository root,
PAPERBENCH_CACHE=.cache, one thread): python results/mobifuse/stereo_offset/pixel_gate.py OUT"""
import json
import sys

import numpy as np
import torch

from mobifuse.bench import QUICK, predict_frames, refined
from mobifuse.config import BenchConfig
from mobifuse.disocclusion import frame_shift
from mobifuse.experiments.train_scale import rule_sets, set_scores
from mobifuse.models import guard_clip, load_model
from shared.cli import parse_args

torch.set_num_threads(1)
_, cfg = parse_args([], BenchConfig, prog="pixel_gate", description="", quick=QUICK,
                    default_config="configs/mobifuse/bench.yaml")
net = load_model("results/mobifuse/train_scale_cpu_s16/nets/S16_s0.safetensors")  # S16 seed 0


def pixel_gated(d, f, c):
    """P1 (c = 1) / P2 (c = 0.5): the median offset over the pixels both sensors measured where
    sigma_st <= c sigma_ToF, at least 3 % of the frame; clipped to the convex guard."""
    g = f["geom"]
    use = ((g[3] > 0.5) & (g[1] > 0.5) & np.isfinite(d)
           & (f["sigma_st"] <= c * f["sigma_tof"]))
    if use.sum() < 0.03 * use.size:
        return d, 0.0
    o = float(np.median((g[2] - d)[use]))
    return guard_clip(d + o, g[0], g[2], 2), o


out = {}
for name, frames in rule_sets(cfg).items():
    preds = [np.asarray(p, dtype=np.float32) for p in predict_frames(net, frames)]
    for cand, c in (("O1", None), ("P1", 1.0), ("P2", 0.5)):
        res, offs = [], []
        for p, f in zip(preds, frames):
            o = None
            if c is not None:
                p, o = pixel_gated(p, f, c)
            offs.append(o)
            res.append(refined(p, f, cfg.agree_k, shift=frame_shift(cfg.train.sim, f["rig"][1]),
                               offset_gate=1.0 if c is None else 0.0))
        sc = set_scores(res, frames, f"{cand} {name:8s}")
        out[f"{cand}_{name}"] = {"ratios": sc.pop("ratios"), "offsets": offs, **sc}
with open(sys.argv[1], "w") as fh:
    json.dump(out, fh, indent=1)
