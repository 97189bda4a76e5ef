"""Assemble a RobWE federation from a config: data split, model, keys, clients, server.

`build_federation(cfg)` is a pure function of the config (keys, malicious clients, partitions
are all keyed by `cfg.seed`), so two arms built from configs that differ only in, say, the
watermark switches see the same data, initial weights and sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from robwe.config import RobWEConfig
from robwe.data import FederatedData, federate, load_dataset
from robwe.detection import WatermarkDetector
from robwe.fedrep import RobWEClient, accuracy, live_weight_vector, personalised_model
from robwe.models import FedRepNet, build_model, head_vector
from robwe.ownership import OwnershipRegistry, commit
from robwe.server import RobWEStrategy
from robwe.watermark import (
    SlicePartition,
    WatermarkKey,
    bit_accuracy,
    forge_key,
    key_generator,
    make_key,
)
from shared.fl import round_rng

__all__ = ["Federation", "build_federation", "evaluate_clients", "under_embedded"]

_HEAD, _SLICE, _FORGE, _LAYOUT, _SALT = 1, 2, 3, 4, 5  # key-generator purposes


@dataclass
class Federation:
    cfg: RobWEConfig
    data: FederatedData
    template: FedRepNet
    client: RobWEClient
    strategy: RobWEStrategy
    head_keys: dict[int, WatermarkKey] | None
    slice_keys: dict[int, WatermarkKey] | None  # the true keys (held by the server)
    partition: SlicePartition | None
    malicious: list[int]
    names: list[str]  # the shared weight tensors that form y (watermark.carrier)
    salts: dict[int, bytes]  # each client's commitment salt (private to the client)

    @property
    def client_ids(self) -> list[int]:
        return list(range(self.data.num_clients))


def build_federation(cfg: RobWEConfig, data: FederatedData | None = None) -> Federation:
    torch.manual_seed(cfg.seed)
    if data is None:
        data = federate(load_dataset(cfg.data), cfg.data, cfg.seed)
    ds = data.dataset
    template = build_model(cfg.model, tuple(ds.x.shape[1:]), ds.num_classes)
    wm = cfg.watermark
    names = template.shared_weight_names(wm.carrier)
    n = data.num_clients
    head_keys = slice_keys = partition = None
    if wm.head:
        p_head = head_vector(template).numel()
        head_keys = {c: make_key(wm.head_bits, p_head, key_generator(cfg.seed, _HEAD, c),
                                 repeat=wm.repeat) for c in range(n)}
    num_mal = int(round(cfg.threat.malicious_frac * n))
    malicious = sorted(int(c) for c in round_rng(cfg.seed, 555).choice(n, num_mal,
                                                                         replace=False))
    used = None
    if wm.slice:
        total = live_weight_vector(template, names).numel()
        partition = SlicePartition(total, n, wm.slice_bits, wm.min_slice_ratio, wm.placement,
                                   wm.shared_len, wm.layout, wm.repeat,
                                   secret=key_generator(cfg.seed, _LAYOUT, 0).initial_seed())
        slice_keys = {c: partition.key(c, key_generator(cfg.seed, _SLICE, c)) for c in range(n)}
        used = {c: forge_key(k, cfg.threat.tampered_frac, key_generator(cfg.seed, _FORGE, c))
                if c in malicious else k for c, k in slice_keys.items()}
    x = torch.from_numpy(ds.x)
    y = torch.from_numpy(ds.y)
    client = RobWEClient(template, x, y, [torch.from_numpy(t) for t in data.train],
                         [torch.from_numpy(t) for t in data.test], cfg.fl, wm, head_keys, used,
                         cfg.seed, names)
    det = cfg.detection
    detector = WatermarkDetector(det.confidence, det.confidence_bad, det.bad_nums,
                                 det.min_cohort, det.estimator, det.min_std) \
        if det.enabled and slice_keys else None
    salts = {c: bytes(torch.randint(0, 256, (16,), generator=key_generator(cfg.seed, _SALT, c),
                                    dtype=torch.uint8).tolist()) for c in range(n)}
    registry = OwnershipRegistry(wm.verify_bits)
    for c in range(n):  # before round 1: every client commits to its keys
        keys = {"head": head_keys[c] if head_keys else None,
                "slice": slice_keys[c] if slice_keys else None}
        registry.register(str(c), {k: commit(v, salts[c]) for k, v in keys.items() if v})
    strategy = RobWEStrategy(template.shared_state(), names, slice_keys, detector,
                             cfg.fl.fraction, cfg.seed, registry, cfg.fl.catch_up,
                             wm.target_bits)
    return Federation(cfg, data, template, client, strategy, head_keys, slice_keys, partition,
                      malicious, names, salts)


def evaluate_clients(fed: Federation, private: dict[int, dict]) -> dict[str, np.ndarray]:
    """Per client (N,): personalised test accuracy, head bits, and slice bits of the *global*
    body under the client's true key (NaN where a watermark is off)."""
    n = fed.data.num_clients
    out = {k: np.full(n, np.nan) for k in ("acc", "head_bits", "slice_bits")}
    names = fed.names
    for c in range(n):
        model = personalised_model(fed.template, fed.strategy.global_state,
                                   private.get(c) or fed.template.head_state())
        t = fed.client.test[c]
        out["acc"][c] = accuracy(model, fed.client.x[t], fed.client.y[t])
        if fed.head_keys:
            out["head_bits"][c] = bit_accuracy(fed.head_keys[c], head_vector(model))
        if fed.slice_keys:
            out["slice_bits"][c] = bit_accuracy(fed.slice_keys[c],
                                                live_weight_vector(model, names))
    return out


def under_embedded(fed: Federation, ev: dict[str, np.ndarray]) -> dict[int, dict[str, float]]:
    """Every non-banned, honest client whose head or slice watermark (`evaluate_clients`
    output `ev`) reads below `watermark.target_bits`: {client: {head_bits, slice_bits}}."""
    target, out = fed.cfg.watermark.target_bits, {}
    for c in fed.client_ids:
        if c in fed.malicious or c in fed.strategy.banned:
            continue
        bits = {k: float(ev[k][c]) for k in ("head_bits", "slice_bits")
                if not np.isnan(ev[k][c])}
        if any(b < target for b in bits.values()):
            out[c] = bits
    return out
