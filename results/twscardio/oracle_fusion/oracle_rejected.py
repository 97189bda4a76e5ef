"""Which out-of-family recordings hold the windows the SQI rejects under oracle fusion weights,
and how much beat their best linear fusion carries (|r| with the true BCG, per 5-s window)."""
import sys, json, numpy as np
from dataclasses import replace
import twscardio.pipeline as P
from twscardio.bench import setting_config, test_recording, OOF
from twscardio.config import BenchConfig
from oracle_fusion import STATE  # installs the oracle weights (on while STATE["on"])

bc = replace(BenchConfig(), n_test_subjects=int(sys.argv[1]))
label = list(OOF)[0]
fs_in, loss, burst, outage = OOF[label]
cfg = setting_config(bc, fs_in, loss, burst, 0.0)
rows = []
for on in (False, True):
    STATE["on"] = on
    for i in range(bc.n_test_subjects):
        rec = test_recording(cfg, i, bc.duration_s, "out", outage)
        o = P.process(rec, cfg, "b")
        fused, ref, fs = o["fusion"]["fused"], STATE["ref"], o["prep"]["fs"]
        bounds = o["fusion"]["bounds"]
        rel = o["windows"]["reliable"]
        wr = [abs(np.corrcoef(fused[s:e], ref[s:e])[0, 1]) for s, e in bounds]
        if (~rel).any():
            rows.append({"oracle": on, "subject": i, "rejected": int((~rel).sum()), "windows": int(rel.size),
                         "r_rejected_windows": [round(float(x), 2) for x, ok in zip(wr, rel) if not ok],
                         "r_accepted_median": round(float(np.median([x for x, ok in zip(wr, rel) if ok])), 2) if rel.any() else None})
for r in rows: print(json.dumps(r))
json.dump(rows, open(sys.argv[2], "w"), indent=1)
