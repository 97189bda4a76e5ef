"""The RobWE server: FedAvg over the shared body, with tampered-watermark detection run on
every upload before aggregation (RobWE §2.4). A `shared.fl.Strategy`, so it runs in-process
and on Flower unchanged.
"""

from __future__ import annotations

import torch

from robwe.detection import WatermarkDetector
from robwe.models import shared_weight_vector
from robwe.watermark import WatermarkKey, bit_accuracy
from shared.fl import FedAvg, Update

__all__ = ["RobWEStrategy"]


class RobWEStrategy(FedAvg):
    """FedAvg of the body; with `true_keys`, logs each upload's slice accuracy under the true
    key, and with a `detector`, drops flagged uploads and bans their clients."""

    def __init__(self, initial_state: dict[str, torch.Tensor], weight_names: list[str],
                 true_keys: dict[int, WatermarkKey] | None = None,
                 detector: WatermarkDetector | None = None, fraction: float = 1.0,
                 seed: int = 0):
        super().__init__(initial_state, fraction=fraction, seed=seed)
        self.weight_names = weight_names
        self.true_keys = true_keys
        self.detector = detector
        self.upload_bits: dict[int, dict[int, float]] = {}  # round -> {client: accuracy}
        self.flag_round: dict[int, int] = {}  # client -> round it was flagged

    def check_updates(self, rnd: int, updates: list[Update]) -> list[Update]:
        if not self.true_keys:
            return list(updates)
        accs = {u.client_id: bit_accuracy(self.true_keys[u.client_id],
                                          shared_weight_vector(u.state, self.weight_names))
                for u in updates}
        self.upload_bits[rnd] = accs
        if self.detector is None:
            return list(updates)
        rejected = {d.client for d in self.detector.check(accs) if not d.accepted}
        for c in rejected:
            self.flag_round[c] = rnd
        self.banned |= rejected
        return [u for u in updates if u.client_id not in rejected]

    def state_dict(self) -> dict:
        d = super().state_dict()
        d.update(upload_bits=self.upload_bits, flag_round=self.flag_round,
                 detector=self.detector.state_dict() if self.detector else None)
        return d

    def load_state_dict(self, d: dict) -> None:
        super().load_state_dict(d)
        self.upload_bits = {int(r): dict(a) for r, a in d["upload_bits"].items()}
        self.flag_round = dict(d["flag_round"])
        if self.detector is not None and d.get("detector"):
            self.detector.load_state_dict(d["detector"])
