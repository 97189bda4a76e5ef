"""Co-activation statistics and greedy-edge placement against slow, obviously-correct references."""

import heapq
import itertools

import numpy as np
import pytest

from ripple.coactivation import (
    check_masks,
    coactivation_counts,
    coactivation_distance,
    topk_neighbours,
)
from ripple.data import synthetic_masks
from ripple.placement import (
    GreedyEdgePlacement,
    candidate_edges,
    check_placement,
    greedy_edge_links,
    hot_first_placement,
    walk_paths,
)
from shared.errors import DataError


def _masks(t=300, n=40, seed=0):
    return synthetic_masks(n, t, group_size=5, groups_per_token=2, noise_p=0.05, seed=seed)[0]


def test_coactivation_counts_match_pair_loop():
    m = _masks(t=50, n=12)
    ref = np.array([[int(np.sum(m[:, i] & m[:, j])) for j in range(12)] for i in range(12)])
    np.testing.assert_array_equal(coactivation_counts(m), ref)
    d = coactivation_distance(m)
    off = ~np.eye(12, dtype=bool)
    np.testing.assert_allclose(1 - d[off], ref[off] / ref[off].sum())  # Eq. 3


@pytest.mark.parametrize("k", [3, 39])
def test_topk_neighbours_are_the_largest_counts(k):
    m = _masks()
    c = coactivation_counts(m)
    np.fill_diagonal(c, -1)
    nbr, cnt = topk_neighbours(m, k, block=7)  # blocks that do not divide n
    assert nbr.shape == (40, k) and not (nbr == np.arange(40)[:, None]).any()
    np.testing.assert_array_equal(cnt, np.take_along_axis(c, nbr, axis=1))
    np.testing.assert_array_equal(cnt, -np.sort(-c, axis=1)[:, :k])


def _reference_links(m):
    """All pairs in a heap by (-count, i, j); naive set merging; degree <= 2; no cycles."""
    n = m.shape[1]
    c = coactivation_counts(m)
    heap = [(-c[i, j], i, j) for i, j in itertools.combinations(range(n), 2) if c[i, j] > 0]
    heapq.heapify(heap)
    comp = {i: {i} for i in range(n)}
    deg = [0] * n
    links = set()
    while heap:
        _, i, j = heapq.heappop(heap)
        if deg[i] == 2 or deg[j] == 2 or j in comp[i]:
            continue
        merged = comp[i] | comp[j]
        for v in merged:
            comp[v] = merged
        deg[i] += 1
        deg[j] += 1
        links.add((i, j))
    return links


def test_greedy_edge_matches_all_pairs_reference():
    m = _masks(n=30)
    nbr, cnt = topk_neighbours(m, 29)
    edges, _ = candidate_edges(nbr, cnt)
    links = greedy_edge_links(30, edges)
    assert {tuple(x) for x in links.tolist()} == _reference_links(m)


def test_walk_paths_is_a_permutation_following_the_links():
    m = _masks(n=50, seed=3)
    p = GreedyEdgePlacement(top_k=4)
    order = p.fit(m)
    check_placement(order, 50)
    adjacent = {frozenset(x) for x in zip(order[:-1].tolist(), order[1:].tolist())}
    assert {frozenset(x) for x in p.links.tolist()} <= adjacent  # every link is adjacent


def test_walk_paths_rejects_cycles():
    with pytest.raises(DataError, match="cycle"):
        walk_paths(3, np.array([[0, 1], [1, 2], [2, 0]]))


def test_placement_recovers_a_planted_chain():
    """Neurons perm[i], perm[i+1] always fire together: the order must put them side by side."""
    rng = np.random.default_rng(0)
    n, t = 64, 400
    perm = rng.permutation(n)
    start = rng.integers(0, n - 3, size=t)  # windows of 4 cover the whole chain
    m = np.zeros((t, n), dtype=bool)
    for w in range(4):
        m[np.arange(t), perm[start + w]] = True
    order = GreedyEdgePlacement(top_k=8).fit(m)
    pos = np.empty(n, int)
    pos[order] = np.arange(n)
    assert (np.abs(np.diff(pos[perm])) == 1).all()


def test_hot_first_orders_by_frequency():
    m = _masks()
    f = m.sum(0)
    assert (np.diff(f[hot_first_placement(m)]) <= 0).all()


def test_bad_masks_and_permutations_are_rejected():
    with pytest.raises(DataError, match="2-D"):
        check_masks(np.zeros((2, 3, 4), bool))
    with pytest.raises(DataError, match="NaN"):
        check_masks(np.array([[0.0, np.nan]]))
    with pytest.raises(DataError, match="0/1"):
        check_masks(np.array([[0, 2]]))
    with pytest.raises(DataError, match="neurons"):
        check_masks(np.zeros((3, 4), bool), n=5)
    with pytest.raises(DataError, match="not a permutation"):
        check_placement(np.array([0, 0, 2]), 3)
    with pytest.raises(DataError, match="shape"):
        check_placement(np.arange(4), 3)


@pytest.mark.slow
def test_placement_of_16k_neurons_within_two_minutes():
    m = synthetic_masks(16384, 1024, seed=0)[0]
    p = GreedyEdgePlacement(top_k=128)  # the bench default
    check_placement(p.fit(m), 16384)
    assert p.seconds <= 120
