"""`python -m twscardio.experiments.calibrate_sqi`: fit the SQI's logistic calibration.

Windows of the *training* simulator only (subjects of the training split): positives are 5-s
windows of recordings under random rate / loss / packet size (motion-free, the "clean beat"
class), negatives are windows of `simulator.simulate_no_beat` recordings (pure noise, bud out of
the ear). Features come from arm (b) (`pipeline.process(...)["windows"]["features"]`). A logistic
regression on the four features gives `QualityConfig.weights` / `bias`; the threshold is the
lowest that rejects >= 97.5 % of the held-out no-beat windows; the script prints them, the
rejection rates on a held-out half, and a reliability table (mean
predicted sqi vs the observed share of beat windows per bin), and writes
results/twscardio/sqi_calibration.json. The out-of-family generator is never used here.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from shared.cli import run
from shared.io import atomic_write_json
from shared.log import get_logger, progress
from twscardio.config import TrainConfig
from twscardio.data import draw_conditions, subject_seed
from twscardio.pipeline import process
from twscardio.quality import FEATURES, sqi_probability
from twscardio.simulator import draw_subject, simulate, simulate_no_beat

log = get_logger("twscardio.experiments.calibrate_sqi")


def features(n: int, duration_s: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) features and (N,) labels (1 = beats) from n recordings per class."""
    cfg = TrainConfig()
    rng = np.random.default_rng(seed)
    X, y = [], []
    for i in progress(range(n), desc="recordings"):
        sc = replace(draw_conditions(rng, cfg), duration_s=duration_s, motion_level=0.0)
        s = subject_seed("train", 5000 + i, seed)
        sub = draw_subject(np.random.default_rng(s), sc.hr_range, sc.morphology == "randomised")
        recs = [(simulate(sc, s, subject=sub), 1),
                (simulate_no_beat(sc, s + 1, "noise"), 0),
                (simulate_no_beat(sc, s + 2, "no_contact"), 0)]
        for rec, label in recs:
            f = process(rec, cfg, arm="b")["windows"]["features"]
            X.append(f)
            y.append(np.full(len(f), label))
    X = np.concatenate(X)
    X[:, 2] = np.where(np.isfinite(X[:, 2]), X[:, 2], cfg.quality.missing_cross_bud)
    return X, np.concatenate(y)


def operating_threshold(p: np.ndarray, y: np.ndarray, share: float = 0.975) -> float:
    """The lowest grid threshold (0.05 ... 0.95) that rejects >= `share` of the no-beat
    windows (y == 0) with sqi p, so as few beat windows as possible are lost; 0.5 if none."""
    grid = np.round(np.arange(0.05, 0.96, 0.05), 2)
    return float(next((g for g in grid if (p[y == 0] < g).mean() >= share), 0.5))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="twscardio.experiments.calibrate_sqi",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--recordings", type=int, default=24, help="recordings per class")
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--out", default="results/twscardio/sqi_calibration.json")
    ap.add_argument("--compare", action="store_true",
                    help="also score the current QualityConfig weights on the same held-out "
                         "half, at their own threshold rejecting >= 97.5 %% of no-beat windows")
    args = ap.parse_args(argv)
    from sklearn.linear_model import LogisticRegression

    X, y = features(args.recordings, args.duration, seed=0)
    half = np.arange(len(y)) % 2 == 0
    clf = LogisticRegression(C=10.0).fit(X[half], y[half])
    p = clf.predict_proba(X[~half])[:, 1]
    yt = y[~half]
    bins = np.linspace(0, 1, 6)
    rel = [{"bin": [float(a), float(b)], "n": int(((p >= a) & (p < b)).sum()),
            "mean_sqi": float(p[(p >= a) & (p < b)].mean()) if ((p >= a) & (p < b)).any() else None,
            "beat_share": float(yt[(p >= a) & (p < b)].mean()) if ((p >= a) & (p < b)).any()
            else None} for a, b in zip(bins[:-1], bins[1:] + np.r_[0, 0, 0, 0, 1e-9])]
    # operating point: the lowest threshold that still rejects >= 97.5 % of the held-out
    # heartbeat-free windows (so as few beat windows as possible are lost)
    thr = operating_threshold(p, yt)
    res = {"features": FEATURES, "weights": [round(float(w), 3) for w in clf.coef_[0]],
           "bias": round(float(clf.intercept_[0]), 3), "threshold": thr,
           "at_threshold": {"beat_windows_rejected": float((p[yt == 1] < thr).mean()),
                            "no_beat_windows_rejected": float((p[yt == 0] < thr).mean())},
           "held_out": {"beat_windows_rejected": float((p[yt == 1] < 0.5).mean()),
                        "no_beat_windows_rejected": float((p[yt == 0] < 0.5).mean()),
                        "n_beat": int((yt == 1).sum()), "n_no_beat": int((yt == 0).sum())},
           "reliability": rel,
           "feature_means": {"beat": X[y == 1].mean(0).round(3).tolist(),
                             "no_beat": X[y == 0].mean(0).round(3).tolist()}}
    if args.compare:
        q = TrainConfig().quality
        Xh = X[~half]
        p_cur = sqi_probability(Xh, q)
        t_cur = operating_threshold(p_cur, yt)
        res["current"] = {"weights": list(q.weights), "bias": q.bias, "threshold": t_cur,
                          "beat_windows_rejected": float((p_cur[yt == 1] < t_cur).mean()),
                          "no_beat_windows_rejected": float((p_cur[yt == 0] < t_cur).mean())}
        res["refit_rejects_fewer_beat_windows"] = bool(
            res["at_threshold"]["beat_windows_rejected"]
            < res["current"]["beat_windows_rejected"])
    log.info("%s", res)
    atomic_write_json(args.out, res)
    return 0


if __name__ == "__main__":
    run(main)
