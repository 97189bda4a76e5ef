"""S3-FIFO, linking-aligned admission and LLM-in-a-flash windowing: invariants and hand traces."""

import numpy as np

from ripple.baselines import WindowCache
from ripple.neuron_cache import S3FIFO, linking_admission


def _run(cache, trace):
    hits = 0
    for i in trace:
        ids = np.array([i])
        if cache.contains(ids)[0]:
            hits += 1
            cache.hit(ids)
        else:
            cache.insert(ids)
        assert len(cache) <= cache.capacity
        assert (cache.where > 0).sum() == len(cache)
    return hits


def test_s3fifo_hand_trace_filters_one_hit_wonders():
    c = S3FIFO(n=100, capacity=10)  # small queue holds 1
    c.insert(np.array([0]))
    c.hit(np.array([0]))  # 0 is re-used while in S -> promoted to M on eviction
    for i in range(1, 30):  # a scan of one-hit wonders
        c.insert(np.array([i]))
    assert c.contains(np.array([0]))[0]
    assert c.where[0] == 2
    # S fills the free space first, then each insert evicts S's oldest: 1..20 left, 21..29 stay
    np.testing.assert_array_equal(np.flatnonzero(c.where == 1), np.arange(21, 30))
    np.testing.assert_array_equal(np.flatnonzero(c.in_ghost), np.arange(12, 21))  # ghost cap 9
    c.insert(np.array([20]))  # a ghost hit goes straight to M
    assert c.where[20] == 2 and not c.in_ghost[20]


def test_s3fifo_beats_fifo_on_a_skewed_trace_with_scans():
    rng = np.random.default_rng(0)
    hot = rng.zipf(1.3, size=8000) % 200
    scan = np.arange(1000, 1000 + 8000)
    trace = np.where(rng.random(8000) < 0.3, scan, hot)
    s3 = _run(S3FIFO(n=30000, capacity=100), trace)
    fifo = S3FIFO(n=30000, capacity=100, small_ratio=1.0, promote_freq=99)  # plain FIFO
    assert s3 > 1.1 * _run(fifo, trace)


def test_linking_admission_spares_sporadic_neurons():
    rng = np.random.default_rng(0)
    slots = np.array([3, 10, 11, 12, 20, 40, 41])
    never = linking_admission(slots, segment_min=2, p=0.0, rng=rng)
    np.testing.assert_array_equal(never, [True, False, False, False, True, False, False])
    assert linking_admission(slots, 2, 1.0, rng).all()
    assert linking_admission(slots, 4, 0.0, rng).all()  # no run is long enough


def test_window_cache_keeps_the_last_k_tokens():
    rng = np.random.default_rng(1)
    masks = rng.random((30, 50)) < 0.1
    w = WindowCache(n=50, capacity=50, window=5)
    for t, m in enumerate(masks):
        w.step(np.flatnonzero(m))
        ref = masks[max(0, t - 4): t + 1].any(axis=0)
        np.testing.assert_array_equal(w.resident, ref)
    small = WindowCache(n=50, capacity=3, window=5)
    for m in masks:
        small.step(np.flatnonzero(m))
        assert small.resident.sum() <= 3
        assert small.contains(np.flatnonzero(m)).sum() == min(3, m.sum())  # newest kept
