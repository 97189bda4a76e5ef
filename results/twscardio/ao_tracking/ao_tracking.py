"""AO picked by the rhythm tracker in the network arms (switch `pipeline.J_AO_TIGHTNESS` at 2)
against plain picking (0, shipped), arms (c) and (d) with the shipped networks, on 96
training-family validation subjects (200-295, 60 s) at 50 Hz / 10 %, 25 Hz / 20 % (rest) and
25 Hz / 20 % with motion level 3 (results/twscardio/NOTES.md, "AO picked by the rhythm tracker
in the network arms"). Usage (repository root): python
results/twscardio/ao_tracking/ao_tracking.py OUT.json"""
import json
import sys
from dataclasses import replace

from twscardio.bench import trained_models
from twscardio.config import BenchConfig, ChannelConfig
from twscardio.data import subject_recording, subject_seed
from twscardio.eval import aggregate, evaluate_recording
from twscardio.experiments.network_data import KEEP, MOTION, SETTINGS
from twscardio.pipeline import switched

FIRST, N = 200, 96
bc = BenchConfig()
cfg = bc.train
models = {a: m for a, m in trained_models(bc).items() if a in ("c", "d")}
out = {"first": FIRST, "subjects": N}
for label, (fs_in, loss, motion) in {**SETTINGS, **MOTION}.items():
    sc = replace(cfg.sim, fs_in=fs_in, duration_s=60.0, motion_level=motion,
                 channel=ChannelConfig(loss=loss, burst=3.0))
    run_cfg = replace(cfg, sim=sc)
    res = {"shipped": [], "AT": []}
    for i in range(FIRST, FIRST + N):
        rec = subject_recording(sc, subject_seed("val", i, cfg.seed), randomised=True)
        res["shipped"].append(evaluate_recording(rec, run_cfg, models))
        with switched(J_AO_TIGHTNESS=2.0):
            res["AT"].append(evaluate_recording(rec, run_cfg, models))
    out[label] = {}
    for name, rows in res.items():
        agg = aggregate(rows)
        row = {a: {k: agg[a][k] for k in KEEP} for a in ("c", "d")}
        tim = {a: 0.5 * (row[a]["ao_mae_ms"] + row[a]["ac_mae_ms"]) for a in ("c", "d")}
        row["timing_d_ms"], row["timing_d_over_c"] = tim["d"], tim["d"] / tim["c"]
        out[label][name] = row
        print(label, name, json.dumps({"d": row["d"], "timing_d_over_c": row["timing_d_over_c"]}),
              flush=True)
with open(sys.argv[1], "w") as fh:
    json.dump(out, fh, indent=1)
