"""The scene-wide stereo offset's candidates O0-O3 on the validation sets of the S16 rule (48
fresh unseen scenes, 8 between-family, 8 in-family validation scenes), the shipped S16 seed-0
net, each scene's fused MAE / min(ToF-only, SGBM-only) after the bench's pipeline (results/
mobifuse/NOTES.md, "A scene-wide stereo offset"). O1 is `mobifuse.offset.stereo_offset` as
shipped; O2 and O3 are written out here. Usage (repository root, PAPERBENCH_CACHE=.cache, one
thread): python results/mobifuse/stereo_offset/offset_rule.py OUT.json"""
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
_, cfg = parse_args([], BenchConfig, prog="offset_rule", description="", quick=QUICK,
                    default_config="configs/mobifuse/bench.yaml")
net = load_model(WEIGHTS_DIR / "mobifuse-net-38dc784ec3d97dd2.safetensors")
SETS = {"fresh": (cfg.test_rigs, FRESH_SEED0, FRESH_SCENES, "fresh_unseen"),
        "between": (dataclasses.replace(cfg.test_rigs, **VAL_RIGS), VAL_SEED0, VAL_SCENES, "val"),
        "in": (cfg.train_rigs, VAL_SEED0 + 1_000, VAL_SCENES, "val_in_family")}


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
    t = lambda a: torch.from_numpy(np.array(a, dtype=np.float32))[None, None]  # noqa: E731
    return convex_guard(t(d + o), t(g[0]), t(g[2]), 2)[0, 0].numpy()


out = {}
for name, (fam, seed0, n, desc) in SETS.items():
    frames = rig_frames(cfg, fam, seed0, n, desc)
    preds = [np.asarray(p, dtype=np.float32) for p in predict_frames(net, frames)]
    for cand in ("O0", "O1", "O2", "O3"):
        res = []
        for p, f in zip(preds, frames):
            shift = frame_shift(cfg.train.sim, f["rig"][1])
            if cand in ("O2", "O3"):
                p = shrunk(p, f, 2.0 if cand == "O2" else np.inf)
            res.append(refined(p, f, cfg.agree_k, shift=shift,
                               offset_gate=1.0 if cand == "O1" else 0.0))
        r = np.array(ratios(res, frames))
        out[f"{cand}_{name}"] = {"ratios": r.tolist(), "at_or_below_0.7": int((r <= 0.7).sum()),
                                 "worst": float(r.max()), "mean": float(r.mean())}
        print(f"{cand} {name:8s} {(r <= 0.7).sum():2d}/{len(r)} worst {r.max():.3f} "
              f"mean {r.mean():.4f}", flush=True)
with open(sys.argv[1], "w") as fh:
    json.dump(out, fh, indent=1)
