"""The stereo offset gated per pixel (P1: sigma_st <= sigma_ToF, P2: <= 0.5 sigma_ToF) against
the shipped scene-level gate (O1) on the validation sets of the S16 rule, the shipped S16 seed-0
net (results/mobifuse/NOTES.md, "The stereo offset gated per pixel"). Usage (repository root,
PAPERBENCH_CACHE=.cache, one thread): python results/mobifuse/stereo_offset/pixel_gate.py OUT"""
import dataclasses
import json
import sys

import numpy as np
import torch

from mobifuse.bench import QUICK, WEIGHTS_DIR, predict_frames, refined, rig_frames
from mobifuse.config import BenchConfig
from mobifuse.disocclusion import frame_shift
from mobifuse.experiments.cross_rig_seeds import ratios
from mobifuse.experiments.fusion_ceiling import VAL_RIGS, VAL_SCENES, VAL_SEED0
from mobifuse.experiments.train_scale import FRESH_SCENES, FRESH_SEED0
from mobifuse.models import convex_guard, load_model
from shared.cli import parse_args

torch.set_num_threads(1)
_, cfg = parse_args([], BenchConfig, prog="pixel_gate", description="", quick=QUICK,
                    default_config="configs/mobifuse/bench.yaml")
net = load_model(WEIGHTS_DIR / "mobifuse-net-38dc784ec3d97dd2.safetensors")
SETS = {"fresh": (cfg.test_rigs, FRESH_SEED0, FRESH_SCENES, "fresh_unseen"),
        "between": (dataclasses.replace(cfg.test_rigs, **VAL_RIGS), VAL_SEED0, VAL_SCENES, "val"),
        "in": (cfg.train_rigs, VAL_SEED0 + 1_000, VAL_SCENES, "val_in_family")}


def pixel_gated(d, f, c):
    """P1 (c = 1) / P2 (c = 0.5): the median offset over the pixels both sensors measured where
    sigma_st <= c sigma_ToF, at least 3 % of the frame; clipped to the convex guard."""
    g = f["geom"]
    use = ((g[3] > 0.5) & (g[1] > 0.5) & np.isfinite(d)
           & (f["sigma_st"] <= c * f["sigma_tof"]))
    if use.sum() < 0.03 * use.size:
        return d, 0.0
    o = float(np.median((g[2] - d)[use]))
    t = lambda a: torch.from_numpy(np.array(a, dtype=np.float32))[None, None]  # noqa: E731
    return convex_guard(t(d + o), t(g[0]), t(g[2]), 2)[0, 0].numpy(), o


out = {}
for name, (fam, seed0, n, desc) in SETS.items():
    frames = rig_frames(cfg, fam, seed0, n, desc)
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
        r = np.array(ratios(res, frames))
        out[f"{cand}_{name}"] = {"ratios": r.tolist(), "offsets": offs,
                                 "at_or_below_0.7": int((r <= 0.7).sum()),
                                 "worst": float(r.max()), "mean": float(r.mean())}
        print(f"{cand} {name:8s} {(r <= 0.7).sum():2d}/{len(r)} worst {r.max():.3f} "
              f"mean {r.mean():.4f}", flush=True)
with open(sys.argv[1], "w") as fh:
    json.dump(out, fh, indent=1)
