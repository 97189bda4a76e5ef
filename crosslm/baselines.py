"""Baselines: FedAvg over homogeneous SLMs (MiniLM heads) and the centralised ceiling.
(Standalone and data-free KD are modes of `CrossLMStrategy`: no synthetic data, or an LLM that
is never updated.)"""

from __future__ import annotations

import numpy as np
import torch

from crosslm.federation import CrossLMClient
from shared.fl import FedAvg, Update, round_rng

__all__ = ["FedAvgSLMClient", "fedavg_strategy", "centralised_accuracy"]


class FedAvgSLMClient(CrossLMClient):
    """A client whose SLM weights are the shared state (FedAvg, McMahan et al. 2017): it loads
    the global SLM, trains on D_k and uploads the weights. Homogeneous kinds only."""

    def fit(self, client_id: int, global_state: dict, config: dict, private: dict) -> Update:
        private.clear()
        private.update({f"slm.{k}": v.clone() for k, v in global_state.items()})
        upd = super().fit(client_id, {}, config, private)
        state = {k[4:]: v for k, v in private.items() if k.startswith("slm.")}
        return Update(client_id, state, upd.num_examples, upd.metrics)

    def evaluate(self, client_id: int, global_state: dict, config: dict,
                 private: dict) -> dict[str, float]:
        return super().evaluate(client_id, {}, config,
                                {f"slm.{k}": v for k, v in global_state.items()})


def fedavg_strategy(client: FedAvgSLMClient, seed: int) -> FedAvg:
    if len(set(client.kinds)) != 1:
        raise ValueError(f"FedAvg needs homogeneous SLMs, got {sorted(set(client.kinds))}")
    init = client.model(0, {}).state_dict()
    return FedAvg({k: v.detach().cpu().clone() for k, v in init.items()}, seed=seed)


def centralised_accuracy(client: CrossLMClient, kind: str, epochs: int, seed: int) -> float:
    """One SLM of `kind` trained on the union of all clients' private data (the ceiling)."""
    from crosslm.models import build_slm
    from crosslm.slm import accuracy, train_slm

    fed = client.fed
    idx = np.sort(np.concatenate(fed.private))
    texts, labels = fed.texts(idx), fed.task.labels[idx]
    torch.manual_seed(seed)
    probe = CrossLMClient(fed, [kind], client.cfg, client.embedder, seed)
    model = build_slm(kind, fed.task.num_classes).to(probe.device)
    x = probe.features(0, texts, key=f"{fed.task.name}-central")
    train_slm(model, x, torch.eye(fed.task.num_classes)[labels], torch.ones(len(texts)),
              epochs, client.cfg.slm.lr, client.cfg.slm.batch,
              int(round_rng(seed, 99).integers(2**31)))
    xt = probe.features(0, fed.texts(fed.test), key=f"{fed.task.name}-test")
    return accuracy(model, xt, fed.task.labels[fed.test])
