"""(d)'s SCG averaged over neighbouring beats (aligned at its own beats): per-beat r vs (d), (e)."""
import sys, numpy as np
from dataclasses import replace
from twscardio.config import BenchConfig, ChannelConfig
from twscardio.data import subject_recording, subject_seed
from twscardio.pipeline import process
from twscardio.beats import per_beat_pearson
from twscardio.bench import arm_configs
from twscardio.train import get_model, get_timing_model

def beat_average(x, beats_idx, k, pre):
    y = x.copy()
    n = len(beats_idx)
    if n < 2 * k + 1:
        return y
    starts = np.append(np.maximum(beats_idx - pre, 0), len(x))
    for i in range(n):
        lo, hi = starts[i], starts[i + 1]
        off = np.arange(lo, hi) - beats_idx[i]
        js = [j for j in range(max(0, i - k), min(n, i + k + 1))]
        segs = []
        for j in js:
            idx = beats_idx[j] + off
            ok = (idx >= 0) & (idx < len(x))
            seg = np.full(off.size, np.nan); seg[ok] = x[idx[ok]]; segs.append(seg)
        y[lo:hi] = np.nanmean(np.stack(segs), 0)
    return y

bc = BenchConfig(); cfg = bc.train
dm = get_model(arm_configs(bc)["d"]); tm = get_timing_model(cfg)
fsin, loss = float(sys.argv[3]), float(sys.argv[4])
sc = replace(cfg.sim, fs_in=fsin, duration_s=60.0, channel=ChannelConfig(loss=loss, burst=3.0))
run_cfg = replace(cfg, sim=sc)
first, n = int(sys.argv[1]), int(sys.argv[2])
K = (1, 2, 3, 5)
res = {k: [] for k in ("d", "e", *K)}
for i in range(first, first + n):
    rec = subject_recording(sc, subject_seed("val", i, cfg.seed), randomised=True)
    tr = rec["truth"]; fs = float(tr["fs_ref"])
    od, oe = process(rec, run_cfg, "d", dm), process(rec, run_cfg, "e", tm)
    m = min(len(od["scg"]), len(tr["scg"]))
    res["d"].append(per_beat_pearson(od["scg"][:m], tr["scg"][:m], tr["r_idx"], fs))
    res["e"].append(per_beat_pearson(oe["scg"][:m], tr["scg"][:m], tr["r_idx"], fs))
    bi = np.round(np.asarray(od["beats_all_s"]) * fs).astype(int)
    bi = bi[(bi >= 0) & (bi < m)]
    for k in K:
        y = beat_average(od["scg"][:m], bi, k, int(0.3 * fs))
        res[k].append(per_beat_pearson(y, tr["scg"][:m], tr["r_idx"], fs))
out = {k: round(float(np.nanmedian(np.concatenate(v))), 4) for k, v in res.items()}
print(first, n, fsin, loss, out, flush=True)
