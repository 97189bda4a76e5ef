"""Attacks on a personalised model and the uniqueness test (RobWE §2.4, evaluation §5).

- `fine_tune_attack`: train the whole model on another client's data (no watermark loss);
- `prune_attack`: unstructured magnitude pruning of every weight tensor at a rate in [0, 1)
  (as `torch.nn.utils.prune.l1_unstructured` per layer);
- `overwrite_attack`: embed a *new* head and slice watermark (the attacker's own random keys,
  at the victim's slice position) while training on the attacker's data;
- `uniqueness_matrix`: every model's head against every client's head key: (N, N) bit
  accuracies, diagonal ~ 1, off-diagonal ~ 0.5 for independent keys.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F

from robwe.config import FLConfig
from robwe.fedrep import live_weight_vector, make_optimizer, train_epochs
from robwe.models import FedRepNet, head_vector
from robwe.watermark import WatermarkKey, watermark_loss

__all__ = ["fine_tune_attack", "prune_attack", "overwrite_attack", "uniqueness_matrix",
           "magnitude_mask"]


def fine_tune_attack(model: FedRepNet, x: torch.Tensor, y: torch.Tensor, epochs: int,
                     fl: FLConfig, gen: torch.Generator,
                     on_epoch: Callable[[int, FedRepNet], None] | None = None) -> FedRepNet:
    """A copy of `model` fine-tuned (all parameters, CE only) on x: (n, C, H, W), y: (n,);
    `on_epoch(e, model)` is called after each epoch e = 1..epochs (for curves)."""
    model = copy.deepcopy(model)
    model.train()
    opt = make_optimizer(list(model.named_parameters()), fl)
    for e in range(1, epochs + 1):
        train_epochs(lambda b: F.cross_entropy(model(x[b]), y[b]), len(y), 1, fl.batch_size,
                     opt, gen)
        if on_epoch is not None:
            on_epoch(e, model)
    return model


def magnitude_mask(w: torch.Tensor, rate: float) -> torch.Tensor:
    """Boolean mask keeping all but the round(rate * numel) smallest-|w| entries of w."""
    k = int(round(rate * w.numel()))
    if k <= 0:
        return torch.ones_like(w, dtype=torch.bool)
    order = w.abs().reshape(-1).argsort()
    mask = torch.ones(w.numel(), dtype=torch.bool)
    mask[order[:k]] = False
    return mask.reshape(w.shape)


@torch.no_grad()
def prune_attack(model: FedRepNet, rate: float) -> FedRepNet:
    """A copy of `model` with each weight tensor (ndim > 1) magnitude-pruned at `rate`."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"pruning rate must be in [0, 1), got {rate}")
    model = copy.deepcopy(model)
    for p in model.parameters():
        if p.ndim > 1:
            p.mul_(magnitude_mask(p, rate))
    return model


def overwrite_attack(model: FedRepNet, x: torch.Tensor, y: torch.Tensor, head_key: WatermarkKey,
                     slice_key: WatermarkKey, names: list[str], epochs: int, fl: FLConfig,
                     scales: tuple[float, float], gen: torch.Generator) -> FedRepNet:
    """A copy of `model` trained on (x, y) with CE + the attacker's own head and slice
    watermarks (`scales` = (head_scale, slice_scale)): the overwriting attack."""
    model = copy.deepcopy(model)
    model.train()
    opt = make_optimizer(list(model.named_parameters()), fl)

    def loss(b: torch.Tensor) -> torch.Tensor:
        return (F.cross_entropy(model(x[b]), y[b])
                + scales[0] * watermark_loss(head_key, head_vector(model))
                + scales[1] * watermark_loss(slice_key, live_weight_vector(model, names)))

    train_epochs(loss, len(y), epochs, fl.batch_size, opt, gen)
    return model


def uniqueness_matrix(head_vectors: torch.Tensor, keys: list[WatermarkKey]) -> torch.Tensor:
    """U[i, j] = bit accuracy of model i's head under client j's key.

    head_vectors: (N, P) stacked theta_head; keys: N head keys with matrices (m, P).
    """
    mats = torch.stack([k.matrix for k in keys])  # (N, m, P)
    bits = torch.stack([k.bits for k in keys])  # (N, m)
    proj = torch.einsum("ip,jmp->ijm", head_vectors, mats)  # (N, N, m)
    return (torch.sign(proj) == bits[None]).float().mean(-1)
