"""Offline neuron placement in flash (Ripple §4.2, Lemma 4.1, Algorithm 1) and its baselines.

A placement is a permutation `order` (n,) int64: flash slot s holds neuron `order[s]`. Ripple
orders neurons along a short Hamiltonian path under dist(i, j) = 1 - P(ij), so that neurons
which fire together sit next to each other and an activated set becomes a few long runs.

`GreedyEdgePlacement` is the greedy-edge TSP heuristic of Algorithm 1: candidate pairs in
descending co-activation count; a pair is skipped when an endpoint already has degree 2 or both
ends are in one union-find set (that edge would close a cycle); the resulting paths are walked end
to end and concatenated (hottest path first). For large layers only each neuron's top-K partners
are candidates (O(nK) edges, sorted once with numpy); the union-find loop runs over those edges
only. Pairs that never co-activate carry no information and are not candidates.

Baselines: `identity_placement` (the checkpoint's order, llama.cpp / LLM-in-a-flash) and
`hot_first_placement` (descending activation frequency).
"""

from __future__ import annotations

import numpy as np

from ripple.coactivation import activation_counts, check_masks, topk_neighbours
from shared.errors import DataError

__all__ = ["identity_placement", "hot_first_placement", "candidate_edges", "greedy_edge_links",
           "walk_paths", "GreedyEdgePlacement", "check_placement", "slots_of"]


def identity_placement(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64)


def hot_first_placement(masks: np.ndarray) -> np.ndarray:
    """Neurons by descending activation frequency (ties by id). masks: bool (T, n)."""
    f = activation_counts(masks)
    return np.lexsort((np.arange(len(f)), -f)).astype(np.int64)


def check_placement(order, n: int, name: str = "placement") -> np.ndarray:
    """`order` as an int64 permutation of range(n), else DataError naming what is wrong."""
    o = np.asarray(order)
    if o.shape != (n,):
        raise DataError(f"{name}: expected a permutation of {n} neurons, got shape {o.shape}")
    if o.dtype.kind not in "iu":
        raise DataError(f"{name}: permutation must be integers, got dtype {o.dtype}")
    seen = np.zeros(n, dtype=bool)
    ok = (o >= 0) & (o < n)
    seen[o[ok]] = True
    if not ok.all() or not seen.all():
        raise DataError(f"{name}: not a permutation of range({n}) "
                        f"({int((~seen).sum())} neurons missing)")
    return o.astype(np.int64)


def slots_of(order: np.ndarray) -> np.ndarray:
    """Inverse permutation: slots_of(order)[neuron] = flash slot of that neuron."""
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order), dtype=order.dtype)
    return inv


def candidate_edges(nbr: np.ndarray, cnt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-K lists -> unique undirected edges (E, 2) with counts (E,), in greedy order.

    Order: descending count, then ascending (i, j) with i < j, so results are deterministic.
    Zero-count pairs are dropped.
    """
    n, k = nbr.shape
    src = np.repeat(np.arange(n, dtype=np.int64), k)
    dst, c = nbr.reshape(-1), cnt.reshape(-1)
    keep = c > 0
    a, b, c = np.minimum(src, dst)[keep], np.maximum(src, dst)[keep], c[keep]
    key, first = np.unique(a * n + b, return_index=True)
    a, b, c = key // n, key % n, c[first]
    order = np.lexsort((b, a, -c))
    return np.stack([a[order], b[order]], axis=1), c[order]


def greedy_edge_links(n: int, edges: np.ndarray) -> np.ndarray:
    """Algorithm 1's linking loop. edges (E, 2) in priority order -> chosen links (L, 2).

    A union-find with path halving; the loop touches each candidate edge once, O(E α(n)).
    """
    parent = list(range(n))
    deg = [0] * n
    chosen = []
    for a, b in edges.tolist():
        if deg[a] >= 2 or deg[b] >= 2:
            continue
        ra = a
        while parent[ra] != ra:
            parent[ra] = parent[parent[ra]]
            ra = parent[ra]
        rb = b
        while parent[rb] != rb:
            parent[rb] = parent[parent[rb]]
            rb = parent[rb]
        if ra == rb:
            continue
        parent[ra] = rb
        deg[a] += 1
        deg[b] += 1
        chosen.append((a, b))
        if len(chosen) == n - 1:
            break
    return np.asarray(chosen, dtype=np.int64).reshape(-1, 2)


def walk_paths(n: int, links: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """Concatenate the paths formed by `links` (a forest of degree <= 2) into one order.

    Each path is walked from its lower-id endpoint; paths are placed by descending total
    `weight` (e.g. activation frequency) so hot paths sit together; ties by lowest endpoint.
    """
    adj = np.full((n, 2), -1, dtype=np.int64)
    deg = np.zeros(n, dtype=np.int64)
    for a, b in links.tolist():
        adj[a, deg[a]] = b
        adj[b, deg[b]] = a
        deg[a] += 1
        deg[b] += 1
    if (deg > 2).any():
        raise DataError("links have a vertex of degree > 2; not a set of paths")
    adj_l = adj.tolist()
    seen = [False] * n
    paths = []
    for s in np.flatnonzero(deg <= 1).tolist():
        if seen[s]:
            continue
        path, prev, cur = [], -1, s
        while cur != -1:
            seen[cur] = True
            path.append(cur)
            a0, a1 = adj_l[cur]
            nxt = a0 if a0 != prev else a1
            prev, cur = cur, (nxt if nxt != -1 and not seen[nxt] else -1)
        paths.append(path)
    if sum(len(p) for p in paths) != n:
        raise DataError("links contain a cycle; not a set of paths")
    w = np.zeros(n) if weight is None else np.asarray(weight, dtype=np.float64)
    key = [(-float(w[p].sum()), p[0]) for p in paths]
    ranked = sorted(range(len(paths)), key=key.__getitem__)
    return np.concatenate([np.asarray(paths[i], dtype=np.int64) for i in ranked])


class GreedyEdgePlacement:
    """Ripple's offline placement: shortest-Hamiltonian-path order by greedy edge (§4.2).

    fit(masks bool (T, n)) -> order (n,) int64. `top_k` bounds candidate partners per neuron.
    After `fit`, `links` (L, 2) holds the chosen adjacencies and `seconds` the wall time.
    """

    def __init__(self, top_k: int = 128, block: int = 1024):
        self.top_k, self.block = top_k, block
        self.links: np.ndarray | None = None
        self.seconds = 0.0

    def fit(self, masks: np.ndarray) -> np.ndarray:
        import time

        t0 = time.perf_counter()
        m = check_masks(masks)
        n = m.shape[1]
        nbr, cnt = topk_neighbours(m, self.top_k, self.block)
        edges, _ = candidate_edges(nbr, cnt)
        self.links = greedy_edge_links(n, edges)
        order = walk_paths(n, self.links, weight=activation_counts(m))
        self.seconds = time.perf_counter() - t0
        return order
