"""Scratch oracle reference: arm (b) on the bench's out-of-family recordings with the fusion weights replaced
by the least-squares fit of the axes to the true BCG (an oracle no method has), scored as the bench
scores (b). Usage (repository root): python results/twscardio/oracle_fusion/oracle_fusion.py 48 OUT.json
Importing it installs the oracle (off until STATE["on"] is set); `oracle_rejected.py` does."""
import sys, json, numpy as np
from dataclasses import replace
import twscardio.fusion as F
import twscardio.pipeline as P
from twscardio.bench import setting_config, test_recording, OOF
from twscardio.config import BenchConfig
from twscardio.eval import evaluate_recording, aggregate

STATE = {}
_orig_prepare, _orig_combine = P.prepare, F.combine

def prepare(rec, cfg, baseline=False):
    prep = _orig_prepare(rec, cfg, baseline=baseline)
    tr = rec["truth"]
    STATE["ref"] = F.bandpass(np.interp(prep["t"], tr["t"], tr["bcg"]), prep["fs"], cfg.fusion.band_hz)
    return prep

def combine(z, m6, w):
    if STATE.get("on"):
        A = z * m6
        w = np.linalg.lstsq(A, STATE["ref"][:len(A)], rcond=None)[0]
    return _orig_combine(z, m6, w)

P.prepare = prepare
F.combine = combine
if __name__ == "__main__":
    bc = BenchConfig()
    n = int(sys.argv[1])
    bc = replace(bc, n_test_subjects=n)
    out = {}
    for label in list(OOF)[:2]:
        fs_in, loss, burst, outage = OOF[label]
        cfg = setting_config(bc, fs_in, loss, burst, 0.0)
        for on in (False, True):
            STATE["on"] = on
            res = []
            for i in range(n):
                rec = test_recording(cfg, i, bc.duration_s, "out", outage)
                res.append(evaluate_recording(rec, cfg, {}))
            agg = aggregate(res)["b"]
            per = [r["b"]["ibi_mae_ms"] for r in res]
            key = f"{label} {'oracle' if on else 'shipped'}"
            out[key] = {k: agg[k] for k in ("hr_mae", "ibi_mae_ms", "ibi_mae_ms_accepted", "coverage", "octave_pct") if k in agg}
            out[key]["per_subject_ibi_ms_top5"] = sorted(per, reverse=True)[:5]
            print(key, json.dumps(out[key]), flush=True)
    json.dump(out, open(sys.argv[2], "w"), indent=1)
