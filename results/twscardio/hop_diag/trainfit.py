"""(d) and (e) per-beat r on subjects the network trained on vs validation subjects (50 Hz/10 %)."""
import sys, numpy as np
from dataclasses import replace
from twscardio.config import BenchConfig, ChannelConfig
from twscardio.data import subject_recording, subject_seed
from twscardio.eval import evaluate_recording
from twscardio.bench import arm_configs
from twscardio.train import get_model, get_timing_model, _first_subject
bc = BenchConfig(); cfg = bc.train
models = {"d": get_model(arm_configs(bc)["d"]), "e": get_timing_model(cfg)}
sc = replace(cfg.sim, fs_in=50.0, duration_s=60.0, channel=ChannelConfig(loss=0.1, burst=3.0))
run_cfg = replace(cfg, sim=sc)
split, n = sys.argv[1], int(sys.argv[2])
first = _first_subject(cfg, "train") if split == "train" else 100
rs = {"d": [], "e": []}
for i in range(first, first + n):
    rec = subject_recording(sc, subject_seed(split, i, cfg.seed), randomised=True)
    o = evaluate_recording(rec, run_cfg, models)
    for a in rs:
        rs[a].append(o[a]["beat_r"])
print(split, first, n, {a: round(float(np.median(np.concatenate(v))), 4) for a, v in rs.items()})
