"""Scratch probe (nothing chosen on it): on the 48 fresh unseen scenes, the shipped S16 net's final
output against two row-wise fills of the pixels neither sensor measured (the nearest measured
pixel of the row; the farther of the two nearest, a background fill), MAE there and per-scene
ratio to ToF-only. Usage (repository root, PAPERBENCH_CACHE=.cache):
python results/mobifuse/train_scale/fill_probe.py"""
import numpy as np, torch
from mobifuse.bench import QUICK, predict_frames, rig_frames, rig_refined
from mobifuse.config import BenchConfig
from mobifuse.experiments.cross_rig_seeds import ratios
from mobifuse.experiments.train_scale import FRESH_SCENES, FRESH_SEED0
from mobifuse.models import load_model
from shared.cli import parse_args
torch.set_num_threads(1)
_, cfg = parse_args([], BenchConfig, prog="x", description="x", default_config="configs/mobifuse/bench.yaml", quick=QUICK)
net = load_model("results/mobifuse/train_scale_cpu_s16/nets/S16_s0.safetensors")  # S16 seed 0
frames = rig_frames(cfg, cfg.test_rigs, FRESH_SEED0, FRESH_SCENES, "fresh_unseen")
fin = rig_refined(predict_frames(net, frames), frames, cfg.agree_k, cfg.train.sim)
def rowfill(d, meas, mode):
    out = d.copy()
    H, W = d.shape
    idx = np.arange(W)
    for y in range(H):
        m = meas[y]
        if not m.any() or m.all(): continue
        xs = idx[m]
        # nearest measured to the left and right
        r = np.searchsorted(xs, idx)  # first measured >= x
        left = np.where(r > 0, xs[np.clip(r - 1, 0, len(xs) - 1)], -1)
        right = np.where(r < len(xs), xs[np.clip(r, 0, len(xs) - 1)], -1)
        dl = np.where(left >= 0, d[y, np.clip(left, 0, W - 1)], np.nan)
        dr = np.where(right >= 0, d[y, np.clip(right, 0, W - 1)], np.nan)
        if mode == "far":
            v = np.fmax(dl, dr)
        else:
            dist_l = np.where(left >= 0, idx - left, 1e9); dist_r = np.where(right >= 0, right - idx, 1e9)
            v = np.where(dist_l <= dist_r, dl, dr)
        out[y, ~m] = v[~m]
    return out
tot = {"final": [], "near": [], "far": [], "tof": []}; R = {"final": [], "near": [], "far": []}
for f, d in zip(frames, fin):
    g, gt = f["geom"], f["gt"]; valid = np.isfinite(gt) & (gt > 0)
    meas = (g[1] > 0.5) | (g[3] > 0.5)
    none = valid & ~meas
    for k, arr in (("final", d), ("near", rowfill(d, meas, "near")), ("far", rowfill(d, meas, "far"))):
        e = np.abs(arr - gt)
        tot[k].append(e[none].mean() if none.any() else 0); R[k] += ratios([arr], [f])
    tot["tof"].append(np.abs(g[0] - gt)[none].mean() if none.any() else 0)
for k in tot: print(k, "unmeasured MAE mean over scenes %.3f" % np.mean(tot[k]))
for k in R:
    r = np.array(R[k]); print(k, "<=0.7:", (r <= 0.7).sum(), "mean %.4f worst %.3f" % (r.mean(), r.max()))
