"""Scratch probe (nothing chosen on it): on fresh scenes 65032 and 65038, the shipped S16 net's raw
output against its final (refined) output, signed and absolute error per pixel class. Usage
(repository root, PAPERBENCH_CACHE=.cache): python results/mobifuse/train_scale/raw_bias.py"""
import numpy as np, torch
from mobifuse.bench import QUICK, predict_frames, rig_frames, rig_refined
from mobifuse.config import BenchConfig
from mobifuse.models import load_model
from shared.cli import parse_args
torch.set_num_threads(1)
_, cfg = parse_args([], BenchConfig, prog="x", description="x", default_config="configs/mobifuse/bench.yaml", quick=QUICK)
net = load_model("results/mobifuse/train_scale_cpu_s16/nets/S16_s0.safetensors")  # S16 seed 0
for seed in (65032, 65038):
    f = rig_frames(cfg, cfg.test_rigs, seed, 1, "x")[0]
    raw = predict_frames(net, [f])[0]
    fin = rig_refined([raw], [f], cfg.agree_k, cfg.train.sim)[0]
    g, gt = f["geom"], f["gt"]; valid = np.isfinite(gt) & (gt > 0)
    tv, sv = g[1] > 0.5, g[3] > 0.5
    mt = np.abs(g[0] - gt)[valid].mean()
    print(seed, "ratio raw %.3f final %.3f" % (np.abs(raw - gt)[valid].mean() / mt, np.abs(fin - gt)[valid].mean() / mt))
    for name, m in (("tof&st", tv & sv), ("tof only", tv & ~sv)):
        m = m & valid
        print("  %-8s signed raw %+.4f final %+.4f tof %+.4f | mae raw %.4f final %.4f tof %.4f" % (name, (raw-gt)[m].mean(), (fin-gt)[m].mean(), (g[0]-gt)[m].mean(), np.abs(raw-gt)[m].mean(), np.abs(fin-gt)[m].mean(), np.abs(g[0]-gt)[m].mean()))
    m = valid & tv & ~sv  # ToF-only pixels: the MAE with each one's mean offset removed
    e_raw, e_tof = (raw - gt)[m], (g[0] - gt)[m]
    print("  tof only, mean offset removed: raw %.4f tof %.4f"
          % (np.abs(e_raw - e_raw.mean()).mean(), np.abs(e_tof - e_tof.mean()).mean()))
