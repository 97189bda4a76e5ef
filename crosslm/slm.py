"""Client-side SLM training and scoring (CrossLM's SLM update and feedback steps).

`train_slm` fits an SLM on private + synthetic examples with a per-example weight and hard or
soft targets; `predict_proba` gives p_SLM(. | x) and `label_scores` the feedback score
s(x~, y) = p_SLM(y | x~) that a client returns for each synthetic sample.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["train_slm", "predict_proba", "label_scores", "accuracy"]


def train_slm(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
              epochs: int, lr: float, batch: int, seed: int) -> float:
    """Weighted cross-entropy with soft targets: sum_i w_i CE(q_i, p(.|x_i)) / sum_i w_i per
    batch. x: (n, ...) features, targets: (n, C) distributions, weights: (n,). Adam; returns
    the last epoch's mean loss."""
    if len(x) == 0:
        return float("nan")
    gen = torch.Generator().manual_seed(int(seed))
    dev = next(model.parameters()).device
    # the whole set moves to the model's device once and each epoch's order once: a blocking
    # host-to-device copy per batch would stall the device queue at every step
    x, targets, weights = x.to(dev), targets.to(dev), weights.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    last = float("nan")
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen).to(dev)
        tot, cnt = torch.zeros((), device=dev), 0  # summed on the device: no sync per batch
        for i in range(0, len(x), batch):
            b = order[i:i + batch]
            logp = F.log_softmax(model(x[b]), dim=-1)
            ce = -(targets[b] * logp).sum(-1)
            wb = weights[b]
            loss = (wb * ce).sum() / wb.sum().clamp(min=1e-12)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot, cnt = tot + loss.detach() * len(b), cnt + len(b)
        last = float(tot) / cnt
    model.eval()
    return last


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    """(n, C) class probabilities."""
    model.eval()
    if len(x) == 0:
        return np.zeros((0, 0), np.float32)
    dev = next(model.parameters()).device
    return np.concatenate([F.softmax(model(x[i:i + batch].to(dev)), -1).cpu().numpy()
                           for i in range(0, len(x), batch)])


def label_scores(model: nn.Module, x: torch.Tensor, labels: np.ndarray) -> np.ndarray:
    """(n,) s = p_SLM(y_i | x_i): the feedback score of each synthetic sample."""
    if len(x) == 0:
        return np.zeros(0, np.float32)
    p = predict_proba(model, x)
    return p[np.arange(len(labels)), labels].astype(np.float32)


def accuracy(model: nn.Module, x: torch.Tensor, labels: np.ndarray) -> float:
    return float((predict_proba(model, x).argmax(1) == labels).mean()) if len(x) else float("nan")
