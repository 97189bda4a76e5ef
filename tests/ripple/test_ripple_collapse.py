"""Runs, access collapsing and its run-time controls, against loop references and the UFS model."""

import numpy as np

from ripple.collapse import AccessCollapser, collapse_runs, runs_of
from ripple.storage import UFSModel


def _ref_runs(slots):
    runs = []
    for s in slots:
        if runs and s == runs[-1][0] + runs[-1][1]:
            runs[-1][1] += 1
        else:
            runs.append([s, 1])
    return runs


def _ref_collapse(runs, g):
    out = []
    for s, ln in runs:
        if out and s - (out[-1][0] + out[-1][1]) <= g:
            out[-1][1] = s + ln - out[-1][0]
        else:
            out.append([s, ln])
    return out


def test_runs_and_collapse_match_loop_references():
    rng = np.random.default_rng(0)
    for _ in range(50):
        slots = np.flatnonzero(rng.random(200) < rng.uniform(0.05, 0.6))
        s, ln = runs_of(slots)
        assert [list(x) for x in zip(s.tolist(), ln.tolist())] == _ref_runs(slots.tolist())
        for g in (0, 1, 3):
            cs, cl = collapse_runs(s, ln, g)
            assert [list(x) for x in zip(cs.tolist(), cl.tolist())] == \
                _ref_collapse(_ref_runs(slots.tolist()), g)
            covered = np.concatenate([np.arange(a, a + b) for a, b in zip(cs, cl)]) \
                if len(cs) else np.zeros(0, int)
            assert np.isin(slots, covered).all()  # every activated slot is still read
            assert len(cs) <= len(s)
    e = runs_of(np.zeros(0, int))
    assert e[0].size == 0 and e[1].size == 0


def test_collapser_tunes_to_the_cheapest_threshold_and_respects_the_bottleneck():
    ufs = UFSModel()
    bb = 1024  # small bundles: IOPS-bound, merging pays
    c = AccessCollapser(lambda ln: ufs.latency(ln * bb), ufs.bandwidth / bb, [0, 1, 2, 4, 8])
    s, ln = runs_of(np.arange(0, 400, 3))  # runs of 1 separated by gaps of 2
    ms, ml = c.plan(s, ln)
    assert c.threshold >= 2 and len(ms) == 1
    assert ufs.latency(ml * bb) < ufs.latency(ln * bb)
    big = 1 << 20  # 1 MB bundles: byte-bound, the detector keeps the plain plan
    c2 = AccessCollapser(lambda ln: ufs.latency(ln * big), ufs.bandwidth / big, [0, 2, 8])
    ms, ml = c2.plan(s, ln)
    assert c2.bypassed == 1 and np.array_equal(ms, s)
