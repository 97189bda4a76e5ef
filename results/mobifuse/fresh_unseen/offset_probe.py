"""Each frame's median (output - ToF) over ToF-valid pixels without the multipath cue, subtracted:
fused / ToF-only MAE before and after. Usage (repository root):
python results/mobifuse/fresh_unseen/offset_probe.py SEED0 N test|train"""
import sys, numpy as np
from mobifuse.bench import rig_frames, rig_nets
from c1 import c1_config, finals
cfg = c1_config()
net = rig_nets(cfg)["mobifuse"]
fam = {"test": cfg.test_rigs, "train": cfg.train_rigs}[sys.argv[3]]
frames = rig_frames(cfg, fam, int(sys.argv[1]), int(sys.argv[2]), "x")
rows = []
for f, (_, fin) in zip(frames, finals(net, frames, cfg)):
    g = f["geom"]; gt = f["gt"]; valid = np.isfinite(gt) & (gt > 0)
    tof = g[0]; tv = g[1] > 0.5
    M = tv & (f["err"][4] < 0.1) & (f["err"][6] < 0.5)
    d = fin - tof
    o = float(np.median(d[M])) if M.sum() > 100 else 0.0
    mt = np.abs(tof - gt)[valid].mean()
    row = [np.abs(fin - gt)[valid].mean() / mt]
    for frac in (1.0, 0.5):
        row.append(np.abs(fin - frac * o - gt)[valid].mean() / mt)
    rows.append(row + [o])
r = np.array(rows)
print("offset median/min/max (m):", np.round(np.median(r[:,3]),4), np.round(r[:,3].min(),4), np.round(r[:,3].max(),4))
for j, name in enumerate(["shipped", "offset", "half offset"]):
    x = r[:, j]
    print(f"{name:12s} mean {x.mean():.3f} worst {x.max():.3f} <=0.7 {np.sum(x<=0.7)}/{len(x)} <=1 {np.sum(x<=1)}")
