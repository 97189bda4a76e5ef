"""The online stage end to end: per-token neuron loading from flash, replayed or computed.

`FlashLoader` is one layer's online pipeline (Ripple §5): activated neurons -> DRAM cache lookup
-> missed neurons as flash slots in placement order -> runs -> access collapsing -> read extents
-> cache update (with or without linking-aligned admission). `ArmSpec` names which parts an arm
uses, so the baselines and Ripple's ablations run through the same code on the same masks.

`replay` drives the loaders over oracle activation masks (L, T, n) and returns per-arm I/O
metrics under the UFS model, plus the slot extents of the first tokens for real reads.

`FlashFFN` computes one layer's FFN for a token from bundles read through the layout file with
the same pipeline: y = Σ_{i in active} ReLU(up_i·x + b1_i) down_i + b2 (gated, Llama-style:
Σ ReLU(gate_i·x)(up_i·x) down_i), which equals the dense FFN on the activated set (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ripple.baselines import WindowCache
from ripple.coactivation import check_masks
from ripple.collapse import AccessCollapser, runs_of
from ripple.config import OnlineConfig
from ripple.layout import FlashLayout
from ripple.neuron_cache import S3FIFO, linking_admission
from ripple.placement import check_placement, slots_of
from ripple.storage import UFSModel
from shared.errors import DataError
from shared.log import progress

__all__ = ["ArmSpec", "ARMS", "FlashLoader", "replay", "FlashFFN"]


@dataclass(frozen=True)
class ArmSpec:
    """Which online parts an arm uses. placement: identity | hot | ripple."""

    name: str
    placement: str
    reads: str = "runs"  # "neuron": one I/O per neuron; "runs": one per contiguous run
    cache: str = "s3fifo"  # "s3fifo" | "window" (LLM-in-a-flash windowing)
    collapse: bool = False  # access collapsing (§5.1)
    admission: bool = False  # linking-aligned admission (§5.2)


ARMS = [
    ArmSpec("llama.cpp", "identity", reads="neuron"),
    ArmSpec("naive-runs", "identity"),
    ArmSpec("hot-first", "hot"),
    ArmSpec("llmflash", "identity", cache="window"),
    ArmSpec("ripple-place", "ripple"),
    ArmSpec("ripple+collapse", "ripple", collapse=True),
    ArmSpec("ripple", "ripple", collapse=True, admission=True),
]


class FlashLoader:
    """One layer's online loading pipeline. step(active ids (k,)) -> the token's read plan."""

    def __init__(self, order: np.ndarray, spec: ArmSpec, online: OnlineConfig, ufs: UFSModel,
                 bundle_bytes: int, rng: np.random.Generator):
        n = len(order)
        self.order = check_placement(order, n)
        self.slot = slots_of(self.order)
        self.spec, self.online, self.rng = spec, online, rng
        cap = max(1, int(round(online.cache_ratio * n)))
        self.cache = WindowCache(n, cap, online.window) if spec.cache == "window" \
            else S3FIFO(n, cap)
        self.bundle_bytes = bundle_bytes
        self.collapser = AccessCollapser(
            lambda ln: ufs.latency(ln * bundle_bytes), ufs.bandwidth / bundle_bytes,
            online.gap_candidates, online.retune_every, online.saturation) \
            if spec.collapse else None

    def step(self, active: np.ndarray) -> dict:
        """Plan and account one token. Returns miss ids, run/read (starts, lengths) in slots."""
        hit = self.cache.contains(active)
        miss = active[~hit]
        slots = np.sort(self.slot[miss])
        run_s, run_l = runs_of(slots)
        if self.spec.reads == "neuron":
            read_s, read_l = slots, np.ones_like(slots)
        elif self.collapser is not None:
            read_s, read_l = self.collapser.plan(run_s, run_l)
        else:
            read_s, read_l = run_s, run_l
        if isinstance(self.cache, WindowCache):
            self.cache.step(active)
        else:
            self.cache.hit(active[hit])
            if self.spec.admission:
                admit = linking_admission(slots, self.online.segment_min,
                                          self.online.segment_admit, self.rng)
                self.cache.insert(self.order[slots[admit]])
            else:
                self.cache.insert(self.order[slots])
        return {"hits": int(hit.sum()), "miss_slots": slots, "run_lengths": run_l,
                "read_starts": read_s, "read_lengths": read_l}


def _token_lists(mask: np.ndarray) -> list[np.ndarray]:
    """bool (T, n) -> per-token active ids, via one nonzero (no per-neuron Python loop)."""
    t, i = np.nonzero(mask)
    return np.split(i, np.searchsorted(t, np.arange(1, mask.shape[0])))


def replay(masks: np.ndarray, orders: list[np.ndarray], spec: ArmSpec, online: OnlineConfig,
           ufs: UFSModel, bundle_bytes: int, seed: int = 0, record: int = 0) -> dict:
    """Replay oracle masks (L, T, n) through one arm; per-token I/O metrics under `ufs`.

    Layers are loaded one after another for each token (the FFN of layer l needs its neurons
    before layer l+1 can be predicted), so a token's latency is the sum over layers. The loop
    over tokens is inherent (each token's cache state depends on the previous token); work
    inside a token is vectorised over its neurons, except S3-FIFO's per-miss queue updates.
    Returns metrics and, for the first `record` tokens, per token and layer (starts, lengths)
    of the reads in slots (`extents`).
    """
    m = check_masks(masks, ndim=3)
    n_layers, n_tok, n = m.shape
    if len(orders) != n_layers:
        raise DataError(f"{len(orders)} placements for {n_layers} mask layers")
    rng = np.random.default_rng(seed)
    loaders = [FlashLoader(o, spec, online, ufs, bundle_bytes, rng) for o in orders]
    lists = [_token_lists(m[li]) for li in range(n_layers)]
    lat = np.zeros(n_tok)
    ios = np.zeros(n_tok, dtype=np.int64)
    layer_lat = np.zeros(n_layers)  # summed over tokens
    layer_ios = np.zeros(n_layers)
    need = np.zeros(n_tok, dtype=np.int64)  # activated bundles read (misses)
    read = np.zeros(n_tok, dtype=np.int64)  # bundles read incl. collapsed gaps
    hits = 0
    run_sum = run_cnt = run_max = 0
    extents = []
    for t in progress(range(n_tok), desc=f"replay {spec.name}", leave=False):
        per_layer = []
        for li in range(n_layers):
            p = loaders[li].step(lists[li][t])
            lt = ufs.latency(p["read_lengths"] * bundle_bytes)
            lat[t] += lt
            ios[t] += len(p["read_lengths"])
            layer_lat[li] += lt
            layer_ios[li] += len(p["read_lengths"])
            need[t] += len(p["miss_slots"])
            read[t] += int(p["read_lengths"].sum())
            hits += p["hits"]
            rl = p["read_lengths"] if spec.reads == "neuron" else p["run_lengths"]
            run_sum, run_cnt = run_sum + int(rl.sum()), run_cnt + len(rl)
            run_max = max(run_max, int(rl.max()) if len(rl) else 0)
            if t < record:
                per_layer.append((p["read_starts"], p["read_lengths"]))
        if t < record:
            extents.append(per_layer)
    active = int(m.sum())
    total_lat = lat.sum()
    return {
        "ios_per_token": float(ios.mean()),
        "layer_ios_per_token": (layer_ios / n_tok).tolist(),
        "layer_latency_ms": (layer_lat / n_tok * 1e3).tolist(),
        "mean_run": run_sum / max(run_cnt, 1),
        "max_run": run_max,
        "mean_read": float(read.sum() / max(ios.sum(), 1)),
        "latency_ms": float(lat.mean() * 1e3),
        "eff_bw_gbs": float(need.sum() * bundle_bytes / total_lat / 1e9) if total_lat else 0.0,
        "lower_bound_ms": float(ufs.lower_bound(need.mean() * bundle_bytes) * 1e3),
        "hit_rate": hits / max(active, 1),
        "read_amp": float(read.sum() / max(need.sum(), 1)),
        "collapse_bypassed": sum(ld.collapser.bypassed for ld in loaders if ld.collapser),
        "extents": extents,
    }


class FlashFFN:
    """One layer's FFN computed from neurons loaded through a layout file (end-to-end path).

    forward(x (d,), active (k,)) -> y (d,). Missed neurons are read as the loader's collapsed
    extents (gap bundles read too, then dropped); admitted ones are kept in a DRAM array.
    """

    def __init__(self, layout: FlashLayout, layer: int, order: np.ndarray, b1: np.ndarray,
                 b2: np.ndarray, spec: ArmSpec, online: OnlineConfig, ufs: UFSModel,
                 seed: int = 0):
        layout.check_placement(layer, order)
        if b1.shape != (layout.n,) or b2.shape != (layout.d,):
            raise DataError(f"biases {b1.shape}, {b2.shape} do not fit layout n={layout.n}, "
                            f"d={layout.d}")
        self.layout, self.layer, self.b1, self.b2 = layout, layer, b1, b2
        self.loader = FlashLoader(order, spec, online, ufs, layout.bundle_bytes,
                                  np.random.default_rng(seed))
        self.dram = np.zeros((layout.n, layout.parts, layout.d), dtype=np.float32)
        self.reads = 0

    def forward(self, x: np.ndarray, active: np.ndarray) -> np.ndarray:
        active = np.unique(np.asarray(active, dtype=np.int64))
        was_cached = self.loader.cache.contains(active).copy()
        p = self.loader.step(active)
        slot_rows = {}
        for s, ln in zip(p["read_starts"].tolist(), p["read_lengths"].tolist()):
            block = self.layout.read_slots(self.layer, s, ln)
            self.reads += 1
            slot_rows.update(zip(range(s, s + ln), block))
        w = np.empty((len(active), self.layout.parts, self.layout.d), dtype=np.float32)
        w[was_cached] = self.dram[active[was_cached]]
        missed = active[~was_cached]
        if len(missed):
            w[~was_cached] = np.stack([slot_rows[s] for s in self.loader.slot[missed].tolist()])
            self.dram[missed] = w[~was_cached]  # cache keeps what it admitted; the rest unused
        h = np.maximum(w[:, 0] @ x + self.b1[active], 0.0)
        if self.layout.parts == 3:  # [gate, up, down]: ReLU(gate x) * (up x)
            h = h * (w[:, 1] @ x)
        return h @ w[:, -1] + self.b2
