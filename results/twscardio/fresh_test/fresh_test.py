"""Arms (c), (d), (e) at 50 Hz / 10 % on fresh blocks of test-family subjects, scored as the bench
scores them. Usage (repository root):
python results/twscardio/fresh_test/fresh_test.py FIRST BLOCKS PER_BLOCK OUT.json"""
import json
import sys

import numpy as np

from twscardio.bench import MAIN, arm_configs, setting_config, trained_models
from twscardio.config import BenchConfig
from twscardio.eval import aggregate, evaluate_recording, simulate_test

first, blocks, per = (int(a) for a in sys.argv[1:4])
bc = BenchConfig()
fs_in, loss = 50.0, 0.1
cfg = setting_config(bc, fs_in, loss, 3.0, 0.0)
models = {a: m for a, m in trained_models(bc).items() if a in ("c", "d", "e")}
out, rows = {"setting": MAIN, "first": first, "blocks": blocks, "per_block": per}, []
for b in range(blocks):
    res = [evaluate_recording(simulate_test(cfg, first + b * per + k, bc.duration_s), cfg, models)
           for k in range(per)]
    rows += res
    agg = aggregate(res)
    tim = {a: 0.5 * (agg[a]["ao_mae_ms"] + agg[a]["ac_mae_ms"]) for a in ("c", "d")}
    out[f"block{b}"] = {"r_d": agg["d"]["beat_r_median"], "r_e": agg["e"]["beat_r_median"],
                        "r_c": agg["c"]["beat_r_median"], "timing_d_over_c": tim["d"] / tim["c"]}
    print(b, json.dumps(out[f"block{b}"]), flush=True)
agg = aggregate(rows)
tim = {a: 0.5 * (agg[a]["ao_mae_ms"] + agg[a]["ac_mae_ms"]) for a in ("c", "d")}
out["pooled"] = {"r_d": agg["d"]["beat_r_median"], "r_e": agg["e"]["beat_r_median"],
                 "r_c": agg["c"]["beat_r_median"], "timing_d_over_c": tim["d"] / tim["c"],
                 "ibi_d_ms": agg["d"]["ibi_mae_ms"], "hr_d_bpm": agg["d"]["hr_mae"]}
print("pooled", json.dumps(out["pooled"]))
json.dump(out, open(sys.argv[4], "w"), indent=1)
_ = np  # numpy imported for the models' arrays
