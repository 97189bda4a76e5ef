"""Measurement only: arm (b)'s IBI MAE over every detection on the out-of-family recordings
(OOF 50 Hz / 10 %, 192-subject bench) whose every window the SQI rejects, against the median
recording's. Usage: python results/twscardio/sqi_oof192/rejected_ibi.py SUBJECTS... (ids)"""
import sys

import numpy as np

from twscardio.beats import beat_metrics
from twscardio.bench import setting_config, test_recording
from twscardio.config import BenchConfig
from twscardio.pipeline import process

bc = BenchConfig()
cfg = setting_config(bc, 50.0, 0.1, 3.0, 0.0)
vals = []
for i in map(int, sys.argv[1:]):
    rec = test_recording(cfg, i, bc.duration_s, "out", 0.0)
    o = process(rec, cfg, "b")
    m = beat_metrics(o["beats_all_s"], rec["truth"], fallback=o["fallback"])
    vals.append(m["ibi_mae_ms"])
    print(i, "IBI MAE %.1f ms, HR MAE %.2f bpm" % (m["ibi_mae_ms"], m["hr_mae"]), flush=True)
print("median %.1f ms" % np.median(vals))
