"""Subject-level bootstrap intervals of the bench's checks (`bench.check_intervals`).

References: with n copies of one recording every draw is the same sample, so each interval
collapses onto the check's point estimate; on random per-recording figures, the interval of a
check that is a plain mean over recordings (the network's out-of-family HR MAE, the streaming
mean error) equals a bootstrap written out by hand with the same draws.
"""

import numpy as np

from shared.bench import BenchReport
from twscardio import bench
from twscardio.eval import aggregate

N = 9
RT = {"rtf_window": 300.0}


def _recording(rng):
    out = {}
    for arm in "abcde":
        m = {"hr_mae": rng.uniform(0.3, 3.0), "ibi_mae_ms": rng.uniform(5.0, 40.0),
             "coverage": rng.uniform(0.8, 1.0), "hr_mae_accepted": rng.uniform(0.3, 2.0),
             "ibi_mae_ms_accepted": rng.uniform(5.0, 30.0),
             "octave_pct": float(rng.choice([0.0, 8.3])), "octave_scored_accepted": 12,
             "octave_bad_accepted": int(rng.integers(0, 2))}
        if arm in "cde":
            m.update(beat_r=rng.uniform(0.2, 1.0, 40), ao_mae_ms=rng.uniform(5.0, 20.0),
                     ac_mae_ms=rng.uniform(5.0, 20.0))
        out[arm] = m
    return out


def _keep(rng, same: bool = False):
    one = _recording(rng)
    keep = {lb: {"res": [one if same else _recording(rng) for _ in range(N)], "oracle": []}
            for lb in bench.CHECKED}
    keep[bench.MOTION]["oracle"] = [2.0] * N if same else list(rng.uniform(1, 10, N))
    err = rng.uniform(0, 12, 30)
    keep["stream"] = {fam: {arm: [err if same else rng.uniform(0, 12, 30) for _ in range(N)]
                            for arm in "bd"} for fam in ("in", "out")}
    keep["sqi"] = {fam: {kind: {arm: [0.97] * N if same else list(rng.uniform(0.9, 1, N))
                                for arm in "ab"} for kind in ("noise", "no_contact")}
                   for fam in ("in", "out")}
    return keep


def _point(keep):
    """The checks' point estimates from all recordings, as the bench computes them."""
    results = {}
    for lb in bench.CHECKED:
        results[lb] = aggregate(keep[lb]["res"])
        if keep[lb]["oracle"]:
            results[lb]["a"]["hr_mae_oracle_axis"] = float(np.mean(keep[lb]["oracle"]))
    tails = {f: {a: bench.tail_summary(e) for a, e in p.items()} for f, p in keep["stream"].items()}
    sqi = {f: {k: {a: float(np.mean(v)) for a, v in p.items()} for k, p in kinds.items()}
           for f, kinds in keep["sqi"].items()}
    rep = BenchReport("twscardio", baseline="a")
    bench.checks(rep, results, RT)
    bench.generalisation_checks(rep, results, sqi, tails)
    return rep.checks


def test_intervals_collapse_on_identical_subjects():
    keep = _keep(np.random.default_rng(0), same=True)
    checks = _point(keep)
    iv = bench.check_intervals(keep, RT, N, draws=20)
    assert len(iv) == len(checks) == 33
    for c, i in zip(checks, iv):
        assert np.isclose(i["lo"], c.measured) and np.isclose(i["hi"], c.measured), c.name


def test_interval_of_a_mean_check_equals_a_hand_bootstrap():
    keep = _keep(np.random.default_rng(1))
    names = [c.name for c in _point(keep)]
    iv = bench.check_intervals(keep, RT, N, draws=50, seed=3)
    hr = np.array([r["d"]["hr_mae"] for r in keep[bench.OOF_MAIN]["res"]])
    errs = keep["stream"]["out"]["b"]
    rng = np.random.default_rng(3)
    by_hand_hr, by_hand_stream = [], []
    for _ in range(50):
        idx = rng.integers(0, N, N)
        by_hand_hr.append(hr[idx].mean())
        by_hand_stream.append(np.concatenate([errs[i] for i in idx]).mean())
    k = names.index("OOF 50Hz/10%: network (d) HR MAE <= 2 bpm")
    assert np.isclose(iv[k]["lo"], np.percentile(by_hand_hr, 2.5))
    assert np.isclose(iv[k]["hi"], np.percentile(by_hand_hr, 97.5))
    k = names.index("OOF streaming (b): mean |HR error| <= 2 bpm")
    assert np.isclose(iv[k]["lo"], np.percentile(by_hand_stream, 2.5))
    assert np.isclose(iv[k]["hi"], np.percentile(by_hand_stream, 97.5))
    assert iv[k]["lo"] < iv[k]["hi"]  # random subjects: the interval has a width
    k = names.index("real time: whole pipeline per 5-s window >= 100x real time")
    assert iv[k]["lo"] == iv[k]["hi"] == RT["rtf_window"]  # not resampled
