import sys, json, numpy as np, torch
from mobifuse.bench import QUICK, rig_frames, rig_nets, refined, frame_shift
from mobifuse.config import BenchConfig
from mobifuse.train import predict_frames
from shared.cli import parse_args
# C1, the cross-rig net these probes read (bench.yaml holds C3 since)
_, cfg = parse_args(["--set", "rig_lf_weight=1.0", "--set", "train.lf_target=gt"], BenchConfig, prog="d", description="d", default_config="configs/mobifuse/bench.yaml", quick=QUICK)
torch.set_num_threads(1)
net = rig_nets(cfg)["mobifuse"]
fam = {"test": cfg.test_rigs, "train": cfg.train_rigs}[sys.argv[3]]
frames = rig_frames(cfg, fam, int(sys.argv[1]), int(sys.argv[2]), "x")
raws = predict_frames(net, frames)
rows = []
for f, raw in zip(frames, raws):
    fin = refined(raw, f, cfg.agree_k, shift=frame_shift(cfg.train.sim, f["rig"][1]))
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
