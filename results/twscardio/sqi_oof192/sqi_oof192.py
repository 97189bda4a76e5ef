"""Measurement only: the out-of-family clean windows the SQI rejects, on the 192-subject bench
(OOF 50 Hz / 10 % loss, bursts of 3, 60 s, subjects FIRST..FIRST+N-1), arm (b) as shipped. Per
recording: windows rejected, by which gate (calibrated SQI below its threshold, beat consistency
below `min_beat_r`, or both), and how much beat the fused signal holds (|Pearson r| of the fused
signal with the true in-ear BCG, band-passed alike, over the recording). Nothing is chosen on
it. Usage (repository root): python results/twscardio/sqi_oof192/sqi_oof192.py FIRST N OUT.json
"""
import json
import sys

import numpy as np

from twscardio.bench import setting_config, test_recording
from twscardio.config import BenchConfig
from twscardio.fusion import bandpass
from twscardio.pipeline import process


def one(i: int, bc: BenchConfig, cfg) -> dict:
    rec = test_recording(cfg, i, bc.duration_s, "out", 0.0)
    o = process(rec, cfg, "b")
    w, q = o["windows"], cfg.quality
    low_sqi = w["sqi"] < q.threshold
    low_r = w["beat_r"] < q.min_beat_r
    rej = ~w["reliable"]
    tr, fs = rec["truth"], o["prep"]["fs"]
    t = o["prep"]["t"] - o["prep"]["t"][0]
    bcg = np.interp(t, tr["t"] - tr["t"][0], tr["bcg"] if np.ndim(tr["bcg"]) == 1
                    else np.linalg.norm(tr["bcg"], axis=1))
    ref = bandpass(bcg[:, None], fs, cfg.fusion.band_hz)[:, 0]
    r = abs(float(np.corrcoef(o["fusion"]["fused"], ref)[0, 1]))
    return {"subject": i, "windows": int(rej.size), "rejected": int(rej.sum()),
            "sqi_only": int((rej & low_sqi & ~low_r).sum()),
            "beat_r_only": int((rej & ~low_sqi & low_r).sum()),
            "both": int((rej & low_sqi & low_r).sum()), "fused_r": r}


if __name__ == "__main__":
    first, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    bc = BenchConfig()
    cfg = setting_config(bc, 50.0, 0.1, 3.0, 0.0)
    rows = [one(i, bc, cfg) for i in range(first, first + n)]
    tot = sum(r["windows"] for r in rows)
    rej = [r for r in rows if r["rejected"]]
    summary = {
        "windows": tot, "rejected": sum(r["rejected"] for r in rows),
        "rejected_share": sum(r["rejected"] for r in rows) / tot,
        "recordings_with_rejections": len(rej),
        "by_gate": {k: sum(r[k] for r in rows) for k in ("sqi_only", "beat_r_only", "both")},
        "rejected_in_recordings_fused_r_below_0.4": sum(r["rejected"] for r in rej
                                                       if r["fused_r"] < 0.4),
        "fused_r_median_all": float(np.median([r["fused_r"] for r in rows]))}
    print(json.dumps(summary, indent=1))
    with open(out, "w") as fh:
        json.dump({"first": first, "subjects": n, "summary": summary, "rows": rows}, fh, indent=1)
