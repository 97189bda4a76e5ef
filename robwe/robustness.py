"""Evaluation of a finished federation: uniqueness, and bit/task accuracy under attacks.

Shared by `robwe.eval` (a trained run) and `robwe.bench`. Every function takes the
`Federation` and the clients' private heads ({client: head state}) and returns plain arrays.
"""

from __future__ import annotations

import numpy as np
import torch

from robwe.attacks import fine_tune_attack, overwrite_attack, prune_attack, uniqueness_matrix
from robwe.federation import Federation
from robwe.fedrep import accuracy, live_weight_vector, personalised_model
from robwe.models import FedRepNet, head_vector
from robwe.watermark import bit_accuracy, key_generator, make_key

__all__ = ["client_model", "model_scores", "uniqueness", "prune_curve", "finetune_curve",
           "overwrite_scores", "victims"]

_ATTACK = 9  # key-generator purpose of the attackers' randomness


def client_model(fed: Federation, private: dict, c: int) -> FedRepNet:
    """Client c's personalised model: the global body and its private head."""
    return personalised_model(fed.template, fed.strategy.global_state,
                              private.get(c) or fed.template.head_state())


def model_scores(fed: Federation, model: FedRepNet, c: int) -> dict[str, float]:
    """Client c's test accuracy and its two watermarks' bit accuracy (true keys) on `model`."""
    t = fed.client.test[c]
    out = {"acc": accuracy(model, fed.client.x[t], fed.client.y[t])}
    if fed.head_keys:
        out["head_bits"] = bit_accuracy(fed.head_keys[c], head_vector(model))
    if fed.slice_keys:
        out["slice_bits"] = bit_accuracy(
            fed.slice_keys[c], live_weight_vector(model, fed.template.shared_weight_names()))
    return out


def victims(fed: Federation, count: int) -> list[int]:
    """The first `count` honest, non-banned clients (attack targets)."""
    ok = [c for c in fed.client_ids if c not in fed.malicious and c not in fed.strategy.banned]
    return ok[:count]


def uniqueness(fed: Federation, private: dict) -> np.ndarray:
    """(N, N): model i's head under client j's head key."""
    heads = torch.stack([head_vector(client_model(fed, private, c)).detach()
                         for c in fed.client_ids])
    return uniqueness_matrix(heads, [fed.head_keys[c] for c in fed.client_ids]).numpy()


def _mean(rows: list[dict]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def prune_curve(fed: Federation, private: dict, clients: list[int],
                rates: list[float]) -> list[dict]:
    """Per rate: mean (over `clients`) acc / head_bits / slice_bits after magnitude pruning."""
    out = []
    for rate in rates:
        rows = [model_scores(fed, prune_attack(client_model(fed, private, c), rate), c)
                for c in clients]
        out.append({"rate": rate, **_mean(rows), "min_head_bits": min(
            r.get("head_bits", np.nan) for r in rows)})
    return out


def _attacker_data(fed: Federation, c: int):
    """Another client's training data (the next client id)."""
    t = fed.client.train[(c + 1) % fed.data.num_clients]
    return fed.client.x[t], fed.client.y[t]


def finetune_curve(fed: Federation, private: dict, clients: list[int],
                   epochs: int) -> list[dict]:
    """Per epoch 0..epochs: mean scores while fine-tuning on another client's data."""
    per_epoch: list[list[dict]] = [[] for _ in range(epochs + 1)]
    for c in clients:
        model = client_model(fed, private, c)
        per_epoch[0].append(model_scores(fed, model, c))
        x, y = _attacker_data(fed, c)
        fine_tune_attack(model, x, y, epochs, fed.cfg.fl, key_generator(fed.cfg.seed, _ATTACK, c),
                         on_epoch=lambda e, m, c=c: per_epoch[e].append(model_scores(fed, m, c)))
    return [{"epoch": e, **_mean(rows)} for e, rows in enumerate(per_epoch)]


def overwrite_scores(fed: Federation, private: dict, clients: list[int],
                     epochs: int) -> dict[str, float]:
    """Mean scores after an attacker embeds its own head and slice watermarks (new random keys,
    at the victim's slice position) for `epochs` on another client's data."""
    wm, names = fed.cfg.watermark, fed.template.shared_weight_names()
    rows = []
    for c in clients:
        gen = key_generator(fed.cfg.seed, _ATTACK + 1, c)
        model = client_model(fed, private, c)
        head_key = make_key(wm.head_bits, head_vector(model).numel(), gen)
        true = fed.slice_keys[c]
        slice_key = make_key(true.num_bits, true.length, gen, true.offset)
        x, y = _attacker_data(fed, c)
        attacked = overwrite_attack(model, x, y, head_key, slice_key, names, epochs, fed.cfg.fl,
                                    (wm.head_scale, wm.slice_scale), gen)
        row = model_scores(fed, attacked, c)
        row["new_head_bits"] = bit_accuracy(head_key, head_vector(attacked))
        row["new_slice_bits"] = bit_accuracy(slice_key, live_weight_vector(attacked, names))
        rows.append(row)
    return _mean(rows)
