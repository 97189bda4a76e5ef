"""An oracle window selection as a reference for the SQI: arm (b) on the bench's test subjects
at the bench's rest settings, the windows accepted by the truth instead of the SQI. Every
window's own IBI error is known to the oracle (the beats in that window alone, scored by
`beats.beat_metrics`); it rejects the windows with the largest errors until a given share of
the setting's windows is rejected, then every figure is scored as the bench scores the
accepted beats. No method has this oracle (measurement only; nothing is chosen on it).

python results/twscardio/sqi_tradeoff/oracle_sqi.py FAMILY N OUT.json [oracle-weights]
(FAMILY: in | out). With "oracle-weights" the fusion weights are the least-squares fit of the
axes to the true BCG as well (`results/twscardio/oracle_fusion/oracle_fusion.py`).
"""

import json
import sys

import numpy as np

from twscardio.beats import beat_metrics, octave_errors
from twscardio.bench import BenchConfig, setting_config, test_recording
from twscardio.pipeline import _in_windows, process

SETTINGS = {"50Hz loss10%": (50.0, 0.1), "25Hz loss20%": (25.0, 0.2)}
REJECT_PCT = [0.0, 2.5, 5.0, 7.5, 10.0]


def windows_of(rec, cfg):
    """Per window of arm (b): the oracle's error (IBI MAE of the window's own beats; 0 where it
    holds no interval, so accepting it costs no IBI) and the SQI's own decision."""
    o = process(rec, cfg, "b")
    w, tr = o["windows"], rec["truth"]
    fs = o["prep"]["fs"]
    moving = o["fusion"]["gyro_rms"] > cfg.fusion.reject_gyro_rms
    err = np.zeros(len(w["bounds"]))
    for k in range(len(err)):
        one = np.zeros(len(err), dtype=bool)
        one[k] = True
        e = beat_metrics(_in_windows(o["beats_all_s"], 0.0, fs, w["bounds"], one), tr)["ibi_mae_ms"]
        err[k] = 0.0 if np.isnan(e) else e
    return {"o": o, "fs": fs, "err": err, "sqi_keep": w["reliable"] & ~moving, "rec": rec}


def score(row, keep):
    """IBI MAE (ms) and its pairs, and octave errors [scored, bad], of the beats in kept windows."""
    tr = row["rec"]["truth"]
    bounds = row["o"]["windows"]["bounds"]
    beats = _in_windows(row["o"]["beats_all_s"], 0.0, row["fs"], bounds, keep)
    m = beat_metrics(beats, tr)
    octave = octave_errors(beats, tr["r_s"], len(tr["t"]) / tr["fs_ref"])
    return m["ibi_mae_ms"], int(m["n_ibi"]), octave


def summary(rows, keeps):
    s = [score(r, k) for r, k in zip(rows, keeps)]
    n_win = sum(k.size for k in keeps)
    pairs = sum(p for _, p, _ in s)
    return {"rejected_pct": 100 * (1 - sum(int(k.sum()) for k in keeps) / n_win),
            "ibi_accepted_ms": float(np.nanmean([e for e, _, _ in s])),  # the bench's mean
            "ibi_pooled_pairs_ms": float(np.nansum([e * p for e, p, _ in s]) / max(pairs, 1)),
            "octave_accepted_pct": 100 * sum(o[1] for _, _, o in s)
            / max(sum(o[0] for _, _, o in s), 1)}


def oracle_keeps(rows, reject_pct):
    """Reject the windows with the largest oracle errors, pooled over recordings, until
    reject_pct % of the windows are rejected (ties kept in recording order)."""
    err = np.concatenate([r["err"] for r in rows])
    n_rej = int(np.floor(reject_pct / 100 * err.size))
    keep = np.ones(err.size, dtype=bool)
    keep[np.argsort(-err, kind="stable")[:n_rej]] = False
    return np.split(keep, np.cumsum([r["err"].size for r in rows])[:-1])


if __name__ == "__main__":
    family, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if sys.argv[4:] == ["oracle-weights"]:
        sys.path.insert(0, "results/twscardio/oracle_fusion")
        import oracle_fusion  # noqa: E402  (installs the oracle weights, off until switched on)
        oracle_fusion.STATE["on"] = True
    elif sys.argv[4:]:
        sys.exit(f"unknown option {sys.argv[4:]} (use oracle-weights)")
    bc = BenchConfig()
    res = {}
    for label, (fs_in, loss) in SETTINGS.items():
        cfg = setting_config(bc, fs_in, loss, 3.0, 0.0)
        rows = [windows_of(test_recording(cfg, i, bc.duration_s, family), cfg) for i in range(n)]
        res[label] = {"sqi (shipped)": summary(rows, [r["sqi_keep"] for r in rows])}
        for pct in REJECT_PCT:
            res[label][f"oracle {pct}%"] = summary(rows, oracle_keeps(rows, pct))
        res[label]["oracle_error_top10_ms"] = sorted(
            np.concatenate([r["err"] for r in rows]).tolist(), reverse=True)[:10]
        for key, v in res[label].items():
            if isinstance(v, dict):
                print(family, label, key, {k: round(x, 2) for k, x in v.items()}, flush=True)
    with open(path, "w") as f:
        json.dump({"family": family, "subjects": n, "weights": sys.argv[4:] or ["shipped"],
                   "settings": res}, f, indent=1)
