"""The RobWE server: FedAvg over the shared body, with tampered-watermark detection run on
every upload before aggregation (RobWE §2.4). A `shared.fl.Strategy`, so it runs in-process
and on Flower unchanged.

Two protocol additions (not in the paper):
- **ownership registry** (`robwe.ownership`): commitments are registered before round 1,
  registration closes when round 1 distributes the model, and the round each client's slice
  watermark first verified on an upload is recorded;
- **embedding progress**: after every aggregation the server reads every client's slice bits
  in the new global body (it holds the true keys). With `catch_up` > 0 it adds up to that
  many under-embedded clients (below `target_bits`, lowest first) to each round's sample,
  so no client is left with a half-embedded watermark because sampling skipped it;
  `under_embedded()` lists the ones still below target.
"""

from __future__ import annotations

import torch

from robwe.detection import WatermarkDetector
from robwe.models import shared_weight_vector
from robwe.ownership import OwnershipRegistry
from robwe.watermark import WatermarkKey, bit_accuracy, payload_accuracy
from shared.fl import FedAvg, Update

__all__ = ["RobWEStrategy"]


class RobWEStrategy(FedAvg):
    """FedAvg of the body; with `true_keys`, logs each upload's slice accuracy under the true
    key, and with a `detector`, drops flagged uploads and bans their clients."""

    def __init__(self, initial_state: dict[str, torch.Tensor], weight_names: list[str],
                 true_keys: dict[int, WatermarkKey] | None = None,
                 detector: WatermarkDetector | None = None, fraction: float = 1.0,
                 seed: int = 0, registry: OwnershipRegistry | None = None,
                 catch_up: int = 0, target_bits: float = 0.99):
        super().__init__(initial_state, fraction=fraction, seed=seed)
        self.weight_names = weight_names
        self.true_keys = true_keys
        self.detector = detector
        self.registry = registry
        self.catch_up = catch_up
        self.target_bits = target_bits
        self.upload_bits: dict[int, dict[int, float]] = {}  # round -> {client: accuracy}
        self.flag_round: dict[int, int] = {}  # client -> round it was flagged
        self.progress: dict[int, float] = {}  # client -> slice bits in the current global body
        self.caught_up: dict[int, list[int]] = {}  # round -> clients added by catch-up

    def configure_fit(self, rnd: int, client_ids) -> dict[int, dict]:
        if self.registry is not None:
            self.registry.close(rnd)  # the model leaves the server: no more registrations
        plan = super().configure_fit(rnd, client_ids)
        if self.catch_up and self.true_keys:
            behind = sorted((self.progress.get(c, 0.0), c) for c in client_ids
                            if c not in self.banned and c not in plan
                            and self.progress.get(c, 0.0) < self.target_bits)
            extra = [c for _, c in behind[:self.catch_up]]
            if extra:
                self.caught_up[rnd] = extra
                plan = {c: {"round": rnd} for c in sorted([*plan, *extra])}
        return plan

    def aggregate_fit(self, rnd: int, updates: list[Update]):
        state = super().aggregate_fit(rnd, updates)
        if self.true_keys:
            y = shared_weight_vector(state, self.weight_names)
            self.progress = {c: payload_accuracy(k, y) for c, k in self.true_keys.items()}
        return state

    def under_embedded(self) -> dict[int, float]:
        """{client: slice bits in the global body} for non-banned clients below target."""
        return {c: b for c, b in sorted(self.progress.items())
                if c not in self.banned and b < self.target_bits}

    def check_updates(self, rnd: int, updates: list[Update]) -> list[Update]:
        if not self.true_keys:
            return list(updates)
        accs = {u.client_id: bit_accuracy(self.true_keys[u.client_id],
                                          shared_weight_vector(u.state, self.weight_names))
                for u in updates}
        self.upload_bits[rnd] = accs
        if self.detector is None:
            rejected: set[int] = set()
        else:
            rejected = {d.client for d in self.detector.check(accs) if not d.accepted}
        for c in rejected:
            self.flag_round[c] = rnd
        self.banned |= rejected
        if self.registry is not None:
            for c, a in accs.items():
                if c not in rejected and a >= self.registry.threshold:
                    self.registry.mark_verified(str(c), "slice", rnd)
        return [u for u in updates if u.client_id not in rejected]

    def state_dict(self) -> dict:
        d = super().state_dict()
        d.update(upload_bits=self.upload_bits, flag_round=self.flag_round,
                 detector=self.detector.state_dict() if self.detector else None,
                 registry=self.registry.state_dict() if self.registry else None,
                 progress=self.progress, caught_up=self.caught_up)
        return d

    def load_state_dict(self, d: dict) -> None:
        super().load_state_dict(d)
        self.upload_bits = {int(r): dict(a) for r, a in d["upload_bits"].items()}
        self.flag_round = dict(d["flag_round"])
        if self.detector is not None and d.get("detector"):
            self.detector.load_state_dict(d["detector"])
        if self.registry is not None and d.get("registry"):
            self.registry.load_state_dict(d["registry"])
        self.progress = {int(c): float(b) for c, b in d.get("progress", {}).items()}
        self.caught_up = {int(r): list(c) for r, c in d.get("caught_up", {}).items()}
