"""How close can a window selector learnt from the training family come to the oracle?
(training and validation subjects only; measurement, nothing chosen or shipped)

A logistic regression on per-window quantities arm (b) already has (the SQI's four features,
its sqi, the beat consistency, and three of the detections' own: the spread of the window's
detected intervals, their median against the window's period, and the span from the first to
the last detected beat over the window's length) predicts whether a window's own IBI error exceeds
GROSS_MS. It is fitted on clean recordings of training subjects, then ranks the windows of
validation subjects (the training family, and the weak-BCG stratum of
`experiments.refit_check`): the accepted beats' IBI MAE at the oracle's rejected share, beside
the oracle (`oracle_sqi.py`) and the shipped SQI.

python results/twscardio/sqi_tradeoff/selector_probe.py N_TRAIN N_VAL OUT.json
"""

import json
import sys
from dataclasses import replace

import numpy as np

from twscardio.bench import BenchConfig, setting_config
from twscardio.data import subject_recording, subject_seed
from twscardio.experiments.refit_check import weak_recording

sys.path.insert(0, "results/twscardio/sqi_tradeoff")
from oracle_sqi import oracle_keeps, summary, windows_of  # noqa: E402

SETTINGS = {"50Hz loss10%": (50.0, 0.1), "25Hz loss20%": (25.0, 0.2)}
GROSS_MS = 40.0
REJECT_PCT = 4.86


def detection_features(row) -> np.ndarray:
    """(W, 3): CV of the window's detected intervals, |median interval / period - 1|, and the
    span from the first to the last detected beat over the window's length (at most 1)."""
    o = row["o"]
    w, fs = o["windows"], row["fs"]
    beats = np.sort(o["beats_all_s"])
    out = np.zeros((len(w["bounds"]), 3))
    for k, (s, e) in enumerate(w["bounds"] / fs):
        b = beats[(beats >= s) & (beats < e)]
        d = np.diff(b)
        p = w["period_s"][k]
        if d.size < 2 or not np.isfinite(p):
            out[k] = [1.0, 1.0, 0.0]
            continue
        out[k] = [d.std() / d.mean(), abs(np.median(d) / p - 1), min(d.sum() / (e - s), 1.0)]
    return out


def table(row) -> np.ndarray:
    w = row["o"]["windows"]
    f = np.array(w["features"], dtype=np.float64)
    f[:, 2] = np.where(np.isfinite(f[:, 2]), f[:, 2], 0.5)
    return np.column_stack([f, w["sqi"], np.nan_to_num(w["beat_r"]), detection_features(row)])


def fit(X, y):
    from sklearn.linear_model import LogisticRegression
    mu, sd = X.mean(0), X.std(0) + 1e-9
    m = LogisticRegression(C=1.0, max_iter=2000).fit((X - mu) / sd, y)
    return lambda Z: m.predict_proba((Z - mu) / sd)[:, 1]


def selector_keeps(rows, p_gross, reject_pct):
    p = np.concatenate(p_gross)
    n_rej = int(np.floor(reject_pct / 100 * p.size))
    keep = np.ones(p.size, dtype=bool)
    keep[np.argsort(-p, kind="stable")[:n_rej]] = False
    return np.split(keep, np.cumsum([len(q) for q in p_gross])[:-1])


if __name__ == "__main__":
    n_train, n_val, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    bc = BenchConfig()
    res = {"gross_ms": GROSS_MS, "reject_pct": REJECT_PCT}
    for label, (fs_in, loss) in SETTINGS.items():
        cfg = setting_config(bc, fs_in, loss, 3.0, 0.0)
        sc = replace(cfg.sim, duration_s=60.0)
        train = [windows_of(subject_recording(sc, subject_seed("train", 7000 + i), True), cfg)
                 for i in range(n_train)]
        X = np.concatenate([table(r) for r in train])
        y = np.concatenate([r["err"] > GROSS_MS for r in train])
        predict = fit(X, y)
        res[label] = {"train_windows": int(y.size), "train_gross_pct": 100 * float(y.mean())}
        strata = {"family": [subject_recording(sc, subject_seed("val", i), True)
                             for i in range(n_val)],
                  "weak": [weak_recording(sc, subject_seed("val", 600 + i), (0.5, 1.5))
                           for i in range(n_val)]}
        for name, recs in strata.items():
            rows = [windows_of(r, cfg) for r in recs]
            p = [predict(table(r)) for r in rows]
            shipped = summary(rows, [r["sqi_keep"] for r in rows])
            share = shipped["rejected_pct"]
            res[label][name] = {
                "sqi (shipped)": shipped,
                "oracle": summary(rows, oracle_keeps(rows, REJECT_PCT)),
                "selector": summary(rows, selector_keeps(rows, p, REJECT_PCT)),
                "oracle at the SQI's share": summary(rows, oracle_keeps(rows, share)),
                "selector at the SQI's share": summary(rows, selector_keeps(rows, p, share))}
            for key, v in res[label][name].items():
                print(label, name, key, {k: round(x, 2) for k, x in v.items()}, flush=True)
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
