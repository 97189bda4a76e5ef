"""Per-layer threshold tuning (paper §4.2, Algorithm 1).

Each eliminating layer's threshold starts at its mean key-block score over validation inputs
(exact scores). Then, layer by layer, the threshold is raised by a factor `step` while the
validation loss stays within `tol` (relative) of the dense loss: a finite-difference search for
the sparsest thresholds that keep accuracy. Returns the thresholds for `LemoConfig.thresholds`.
"""

from __future__ import annotations

import dataclasses

import torch

from lemo.config import LemoConfig
from lemo.loss import causal_lm_loss
from lemo.patch import configure_lemo, lemo_layers
from lemo.predictor import capture_scores
from lemo.scoring import key_block_scores

__all__ = ["tune_thresholds"]


@torch.no_grad()
def _val_loss(model, batches, cfg: LemoConfig) -> float:
    configure_lemo(model, cfg)
    return sum(causal_lm_loss(model, x, segment=0).item() for x in batches) / len(batches)


@torch.no_grad()
def tune_thresholds(model, batches: list[torch.Tensor], cfg: LemoConfig, tol: float = 0.01,
                    step: float = 1.25, max_rounds: int = 8) -> tuple[list[float], dict]:
    """(thresholds per layer index, log) for `cfg` with selection="threshold"."""
    was_training = model.training
    model.eval()
    dense = _val_loss(model, batches, dataclasses.replace(cfg, enabled=False))
    configure_lemo(model, cfg)
    data = capture_scores(model, batches)
    n = len(lemo_layers(model))
    thr = [0.0] * n  # dense layers: threshold 0 keeps every block (never used)
    for idx, items in data.items():
        thr[idx] = float(torch.cat([
            key_block_scores(t, cfg.score_reduce, cfg.causal_scores).flatten()
            for _, t in items]).mean())
    base = dataclasses.replace(cfg, selection="threshold", eliminate_in_eval=True)
    log = {"dense_loss": dense, "start": list(thr)}
    for idx in sorted(data):
        for _ in range(max_rounds):
            trial = list(thr)
            trial[idx] *= step
            loss = _val_loss(model, batches, dataclasses.replace(base, thresholds=trial))
            if loss > dense * (1 + tol):
                break
            thr = trial
    log["loss"] = _val_loss(model, batches, dataclasses.replace(base, thresholds=thr))
    configure_lemo(model, cfg)
    model.train(was_training)
    return thr, log
