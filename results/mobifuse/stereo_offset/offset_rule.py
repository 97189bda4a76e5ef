"""The scene-wide stereo offset's candidates O0-O3 on the validation sets of the S16 rule (48
fresh unseen scenes, 8 between-family, 8 in-family validation scenes), the shipped S16 seed-0
net, each scene's fused MAE / min(ToF-only, SGBM-only) after the bench's pipeline (results/
mobifuse/NOTES.md, "A scene-wide stereo offset"). O1 is `mobifuse.offset.stereo_offset` as
shipped; O2 and O3 are written out here. Usage (repository root, PAPERBENCH_CACHE=.cache, one
thread): python results/mobifuse/stereo_offset/offset_rule.py OUT.json"""
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
_, cfg = parse_args([], BenchConfig, prog="offset_rule", description="", quick=QUICK,
                    default_config="configs/mobifuse/bench.yaml")
net = load_model("results/mobifuse/train_scale_cpu_s16/nets/S16_s0.safetensors")  # S16 seed 0


def shrunk(d, f, gate):
    """O2 (gate 2) / O3 (no gate): the median offset shrunk by its standard error."""
    g = f["geom"]
    both = (g[3] > 0.5) & (g[1] > 0.5) & np.isfinite(d)
    n = int(both.sum())
    if n < 0.03 * both.size:
        return d
    if np.median(f["sigma_st"][both]) > gate * np.median(f["sigma_tof"][both]):
        return d
    r = (g[2] - d)[both]
    o = float(np.median(r))
    se = 1.2533 * 1.4826 * np.median(np.abs(r - o)) / np.sqrt(n / 64)
    o *= 0.02 ** 2 / (0.02 ** 2 + se ** 2)
    return guard_clip(d + o, g[0], g[2], 2)


out = {}
for name, frames in rule_sets(cfg).items():
    preds = [np.asarray(p, dtype=np.float32) for p in predict_frames(net, frames)]
    for cand in ("O0", "O1", "O2", "O3"):
        res = []
        for p, f in zip(preds, frames):
            shift = frame_shift(cfg.train.sim, f["rig"][1])
            if cand in ("O2", "O3"):
                p = shrunk(p, f, 2.0 if cand == "O2" else np.inf)
            res.append(refined(p, f, cfg.agree_k, shift=shift,
                               offset_gate=1.0 if cand == "O1" else 0.0))
        out[f"{cand}_{name}"] = set_scores(res, frames, f"{cand} {name:8s}")
with open(sys.argv[1], "w") as fh:
    json.dump(out, fh, indent=1)
