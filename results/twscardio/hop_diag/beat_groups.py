"""Per beat, pooled over validation subjects (50 Hz / 10 %): (d) against (e) by where (e)'s r sits.

Usage (repository root): python results/twscardio/hop_diag/beat_groups.py FIRST N"""
import sys, numpy as np
from dataclasses import replace
from twscardio.config import BenchConfig, ChannelConfig
from twscardio.data import subject_recording, subject_seed
from twscardio.pipeline import process
from twscardio.beats import per_beat_pearson
from twscardio.bench import arm_configs
from twscardio.train import get_model, get_timing_model
bc = BenchConfig(); cfg = bc.train
dm = get_model(arm_configs(bc)["d"]); tm = get_timing_model(cfg)
sc = replace(cfg.sim, fs_in=50.0, duration_s=60.0, channel=ChannelConfig(loss=0.1, burst=3.0))
run_cfg = replace(cfg, sim=sc)
first, n = int(sys.argv[1]), int(sys.argv[2])
D, E, S = [], [], []
for i in range(first, first + n):
    rec = subject_recording(sc, subject_seed("val", i, cfg.seed), randomised=True)
    tr = rec["truth"]; fs = float(tr["fs_ref"])
    o = {a: process(rec, run_cfg, a, m) for a, m in (("d", dm), ("e", tm))}
    r = {}
    for a in o:
        m = min(len(o[a]["scg"]), len(tr["scg"]))
        r[a] = per_beat_pearson(o[a]["scg"][:m], tr["scg"][:m], tr["r_idx"], fs)
    k = min(len(r["d"]), len(r["e"]))
    D.append(r["d"][:k]); E.append(r["e"][:k]); S.append(np.full(k, i))
D, E, S = map(np.concatenate, (D, E, S))
ok = np.isfinite(D) & np.isfinite(E); D, E, S = D[ok], E[ok], S[ok]
print("beats", len(D))
for name, x in (("d", D), ("e", E)):
    q = np.quantile(x, [0.05, 0.1, 0.25, 0.5, 0.75, 0.9])
    print(name, "mean %.4f" % x.mean(), "q05..q90", np.round(q, 4))
print("share d>e %.3f" % np.mean(D > E), "mean(d-e) %.4f" % np.mean(D - E))
sm = np.array([[np.median(D[S == s]), np.median(E[S == s])] for s in np.unique(S)])
print("per-subject median d-e:", np.round(sm[:, 0] - sm[:, 1], 3))
# d-e as a function of e's r (binned)
bins = [-1, 0.5, 0.7, 0.8, 0.9, 0.95, 1.01]
for lo, hi in zip(bins[:-1], bins[1:]):
    m = (E >= lo) & (E < hi)
    print(f"e in [{lo},{hi}): n={m.sum()} mean d-e {np.mean(D[m]-E[m]):.4f}")
