import sys, numpy as np
from dataclasses import replace
from twscardio.config import BenchConfig, ChannelConfig
from twscardio.data import subject_recording, subject_seed
from twscardio.eval import evaluate_recording
from twscardio.bench import arm_configs
from twscardio.train import get_model, get_timing_model
bc = BenchConfig(); cfg = bc.train
models = {a: get_model(c) for a, c in arm_configs(bc).items() if a == "d"}
models["e"] = get_timing_model(cfg)
sc = replace(cfg.sim, fs_in=50.0, duration_s=60.0, channel=ChannelConfig(loss=0.1, burst=3.0))
first, n = int(sys.argv[1]), int(sys.argv[2])
res = {h: {"d": [], "e": []} for h in (2.5, 1.25, 0.5)}
for i in range(first, first + n):
    rec = subject_recording(sc, subject_seed("val", i, cfg.seed), randomised=True)
    for h in res:
        run_cfg = replace(cfg, sim=sc, hop_s=h)
        o = evaluate_recording(rec, run_cfg, models if h == 2.5 else {"d": models["d"]})
        for a in ("d", "e"):
            if a in o: res[h][a].append(o[a]["beat_r"])
for h in res:
    for a in ("d", "e"):
        if res[h][a]:
            print(h, a, round(float(np.median(np.concatenate(res[h][a]))), 4), flush=True)
