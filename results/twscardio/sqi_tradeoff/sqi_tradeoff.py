"""The SQI's coverage against the accuracy of what it lets through, on the bench's test
subjects: arm (b) at the bench's rest settings, with the window acceptance recomputed for a
grid of SQI thresholds and beat-consistency gates (measurement only; nothing is chosen on it).

python results/twscardio/sqi_tradeoff/sqi_tradeoff.py FAMILY N OUT.json   (FAMILY: in | out)
"""

import json
import sys

import numpy as np

from twscardio.beats import beat_metrics, octave_errors
from twscardio.bench import BenchConfig, setting_config, test_recording
from twscardio.pipeline import _in_windows, process

THRESHOLDS = [0.28, 0.2, 0.15, 0.1, 0.05, 0.0]
GATES = [0.76, 0.6, 0.0]
SETTINGS = {"50Hz loss10%": (50.0, 0.1), "25Hz loss20%": (25.0, 0.2)}


def one(rec, cfg):
    o = process(rec, cfg, "b")
    w, tr = o["windows"], rec["truth"]
    fs = o["prep"]["fs"]
    moving = o["fusion"]["gyro_rms"] > cfg.fusion.reject_gyro_rms
    dur = len(tr["t"]) / tr["fs_ref"]
    out = {}
    for t in THRESHOLDS:
        for g in GATES:
            keep = (w["sqi"] >= t) & ((g == 0) | (w["beat_r"] >= g)) & ~moving  # 0: no gate
            if (t, g) == (cfg.quality.threshold, cfg.quality.min_beat_r):
                assert np.array_equal(keep, w["reliable"] & ~moving), "not the pipeline's rule"
            beats = _in_windows(o["beats_all_s"], 0.0, fs, w["bounds"], keep)
            m = beat_metrics(beats, tr)
            scored, bad = octave_errors(beats, tr["r_s"], dur)
            out[f"{t}/{g}"] = {"windows": int(keep.size), "accepted": int(keep.sum()),
                               "ibi": m["ibi_mae_ms"], "pairs": int(m.get("n_ibi", 0)),
                               "octave": [scored, bad]}
    return out


if __name__ == "__main__":
    family, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    bc = BenchConfig()
    res = {}
    for label, (fs_in, loss) in SETTINGS.items():
        cfg = setting_config(bc, fs_in, loss, 3.0, 0.0)
        rows = [one(test_recording(cfg, i, bc.duration_s, family), cfg) for i in range(n)]
        res[label] = {}
        for key in rows[0]:
            acc = sum(r[key]["accepted"] for r in rows)
            win = sum(r[key]["windows"] for r in rows)
            res[label][key] = {
                "clean_rejected_pct": 100 * (1 - acc / win),
                "ibi_accepted_ms": float(np.nanmean([r[key]["ibi"] for r in rows])),
                "octave_accepted_pct": 100 * sum(r[key]["octave"][1] for r in rows)
                / max(sum(r[key]["octave"][0] for r in rows), 1)}
            print(family, label, key, {k: round(v, 2) for k, v in res[label][key].items()})
    with open(path, "w") as f:
        json.dump({"family": family, "subjects": n, "settings": res}, f, indent=1)
