"""(e)'s and (d)'s per-beat r on validation recordings of different lengths (50 Hz / 10 %)."""
import sys, numpy as np
from dataclasses import replace
from twscardio.config import BenchConfig, ChannelConfig
from twscardio.data import subject_recording, subject_seed
from twscardio.eval import evaluate_recording
from twscardio.bench import arm_configs
from twscardio.train import get_model, get_timing_model
bc = BenchConfig(); cfg = bc.train
models = {"d": get_model(arm_configs(bc)["d"]), "e": get_timing_model(cfg)}
dur, first, n = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
sc = replace(cfg.sim, fs_in=50.0, duration_s=dur, channel=ChannelConfig(loss=0.1, burst=3.0))
run_cfg = replace(cfg, sim=sc)
rs = {"d": [], "e": []}
for i in range(first, first + n):
    rec = subject_recording(sc, subject_seed("val", i, cfg.seed), randomised=True)
    o = evaluate_recording(rec, run_cfg, models)
    for a in rs:
        rs[a].append(o[a]["beat_r"])
print(dur, first, n, {a: round(float(np.median(np.concatenate(v))), 4) for a, v in rs.items()}, flush=True)
