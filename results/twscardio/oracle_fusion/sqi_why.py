"""Shipped fusion, OOF 50 Hz / 10 %: for the rejected windows, sqi vs threshold and beat_r vs min_beat_r."""
import numpy as np
from dataclasses import replace
from twscardio.bench import setting_config, test_recording, OOF
from twscardio.config import BenchConfig
from twscardio.pipeline import process
bc = BenchConfig()
fs_in, loss, burst, outage = OOF[list(OOF)[0]]
cfg = setting_config(bc, fs_in, loss, burst, 0.0)
q = cfg.quality if hasattr(cfg, "quality") else None
print("threshold", getattr(q, "threshold", None), "min_beat_r", getattr(q, "min_beat_r", None))
for i in (9, 24, 34, 42, 46):
    o = process(test_recording(cfg, i, bc.duration_s, "out", outage), cfg, "b")
    w = o["windows"]
    print(i, "sqi", np.round(w["sqi"], 2), "beat_r", np.round(w["beat_r"], 2), "rel", w["reliable"].astype(int))
