"""Scratch: per-beat r of alpha*(d) + (1-alpha)*(e) on validation subjects. Usage (repository root):
python results/twscardio/hop_diag/blend.py FIRST N FS_IN LOSS"""
import sys, numpy as np
from dataclasses import replace
from twscardio.config import ChannelConfig, BenchConfig
from twscardio.data import subject_recording, subject_seed
from twscardio.pipeline import process
from twscardio.beats import per_beat_pearson
from twscardio.bench import arm_configs
from twscardio.train import get_model, get_timing_model
bc = BenchConfig(); cfg = bc.train
dm = get_model(arm_configs(bc)["d"]); tm = get_timing_model(cfg)
fs_in, loss = float(sys.argv[3]), float(sys.argv[4])
sc = replace(cfg.sim, fs_in=fs_in, duration_s=60.0, channel=ChannelConfig(loss=loss, burst=3.0))
run_cfg = replace(cfg, sim=sc)
first, n = int(sys.argv[1]), int(sys.argv[2])
alphas = [0.0, 0.25, 0.5, 0.75, 1.0]
R = {a: [] for a in alphas}; med = {a: [] for a in alphas}
for i in range(first, first + n):
    rec = subject_recording(sc, subject_seed("val", i, cfg.seed), randomised=True)
    tr = rec["truth"]; fs = float(tr["fs_ref"])
    od = process(rec, run_cfg, "d", dm); oe = process(rec, run_cfg, "e", tm)
    m = min(len(od["scg"]), len(oe["scg"]), len(tr["scg"]))
    for a in alphas:
        x = a * od["scg"][:m] + (1 - a) * oe["scg"][:m]
        r = per_beat_pearson(x, tr["scg"][:m], tr["r_idx"], fs)
        r = r[np.isfinite(r)]
        R[a].append(r); med[a].append(np.median(r))
for a in alphas:
    x = np.concatenate(R[a])
    print(f"alpha {a:.2f}: pooled median {np.median(x):.4f} mean {x.mean():.4f}  mean of subject medians {np.mean(med[a]):.4f}  median of subject medians {np.median(med[a]):.4f}")
