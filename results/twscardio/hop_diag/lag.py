"""Per beat: r of (d) and (e) at lag 0 and at the best lag in +-40 ms (validation, 50 Hz/10 %)."""
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
rows = []
for i in range(first, first + n):
    rec = subject_recording(sc, subject_seed("val", i, cfg.seed), randomised=True)
    tr = rec["truth"]; fs = float(tr["fs_ref"])
    outs = {"d": process(rec, run_cfg, "d", dm), "e": process(rec, run_cfg, "e", tm)}
    for a, o in outs.items():
        m = min(len(o["scg"]), len(tr["scg"]))
        rs = np.stack([per_beat_pearson(np.roll(o["scg"][:m], L), tr["scg"][:m], tr["r_idx"], fs)
                       for L in range(-4, 5)])
        outs[a] = rs
    k = min(outs["d"].shape[1], outs["e"].shape[1])
    for b in range(k):
        rows.append((i, outs["d"][4, b], outs["d"][:, b].max(), outs["d"][:, b].argmax() - 4,
                     outs["e"][4, b], outs["e"][:, b].max(), outs["e"][:, b].argmax() - 4))
R = np.array(rows, float)
R = R[np.isfinite(R).all(1)]
print("beats", len(R))
print("median r d0 %.4f dbest %.4f | e0 %.4f ebest %.4f" % tuple(np.median(R[:, c]) for c in (1, 2, 4, 5)))
print("d best-lag hist", np.bincount((R[:, 3] + 4).astype(int), minlength=9))
print("e best-lag hist", np.bincount((R[:, 6] + 4).astype(int), minlength=9))
