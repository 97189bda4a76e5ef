"""Evaluation of a finished federation: uniqueness, and owner bits / task accuracy under the
attacks of `robwe.attacks` as curves over attack strength.

Shared by `robwe.eval` (a trained run) and `robwe.bench`. Every function takes the
`Federation` and the clients' private heads ({client: head state}) and returns plain dicts.
Owner bits are the payload accuracy of the client's *true* keys (`payload_accuracy`; the raw
bit accuracy when the repetition code is off).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from robwe.attacks import (
    attacker_indices,
    distill_attack,
    fine_tune_attack,
    noise_removal_attack,
    overwrite_attack,
    prune_attack,
    prune_finetune_attack,
    reinit_head_attack,
    uniqueness_matrix,
)
from robwe.config import AttackConfig
from robwe.federation import Federation
from robwe.fedrep import accuracy, live_weight_vector, personalised_model
from robwe.models import FedRepNet, head_vector
from robwe.ownership import Claim, RegistrationClosed, commit
from robwe.watermark import bit_accuracy, key_generator, make_key, payload_accuracy

__all__ = ["client_model", "model_scores", "uniqueness", "prune_curve", "finetune_curve",
           "overwrite_scores", "victims", "attack_curves", "removal_verdicts",
           "ownership_disputes"]

_ATTACK = 9  # key-generator purpose of the attackers' randomness


def client_model(fed: Federation, private: dict, c: int) -> FedRepNet:
    """Client c's personalised model: the global body and its private head."""
    return personalised_model(fed.template, fed.strategy.global_state,
                              private.get(c) or fed.template.head_state())


def model_scores(fed: Federation, model: FedRepNet, c: int) -> dict[str, float]:
    """Client c's test accuracy and its two watermarks' owner bits (true keys) on `model`."""
    t = fed.client.test[c]
    out = {"acc": accuracy(model, fed.client.x[t], fed.client.y[t])}
    if fed.head_keys:
        out["head_bits"] = payload_accuracy(fed.head_keys[c], head_vector(model))
    if fed.slice_keys:
        out["slice_bits"] = payload_accuracy(
            fed.slice_keys[c], live_weight_vector(model, fed.names))
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


def _next_client_data(fed: Federation, c: int):
    """Another client's training data (the next client id): the paper's fine-tuning attack."""
    t = fed.client.train[(c + 1) % fed.data.num_clients]
    return fed.client.x[t], fed.client.y[t]


def _own_data(fed: Federation, c: int, frac: float, purpose: int):
    """A share `frac` of victim c's own training data (the threat model's attacker)."""
    t = attacker_indices(fed.client.train[c], frac, key_generator(fed.cfg.seed, purpose, c))
    return fed.client.x[t], fed.client.y[t]


def finetune_curve(fed: Federation, private: dict, clients: list[int],
                   epochs: int) -> list[dict]:
    """Per epoch 0..epochs: mean scores while fine-tuning on another client's data."""
    per_epoch: list[list[dict]] = [[] for _ in range(epochs + 1)]
    for c in clients:
        model = client_model(fed, private, c)
        per_epoch[0].append(model_scores(fed, model, c))
        x, y = _next_client_data(fed, c)
        nb = -(-len(y) // fed.cfg.fl.batch_size)

        def record(s: int, m: FedRepNet, c: int = c, nb: int = nb) -> None:
            if s % nb == 0:
                per_epoch[s // nb].append(model_scores(fed, m, c))

        fine_tune_attack(model, x, y, epochs * nb, fed.cfg.fl,
                         key_generator(fed.cfg.seed, _ATTACK, c), on_step=record)
    return [{"epoch": e, **_mean(rows)} for e, rows in enumerate(per_epoch)]


def _attacker_keys(fed: Federation, model: FedRepNet, c: int, gen: torch.Generator):
    """The attacker's own fresh head key and a slice key at the victim's coordinates."""
    wm = fed.cfg.watermark
    head_key = make_key(wm.head_bits, head_vector(model).numel(), gen) if fed.head_keys else None
    slice_key = None
    if fed.slice_keys:
        true = fed.slice_keys[c]
        if true.index is None:  # public positions: overwrite exactly the victim's slice
            slice_key = make_key(true.num_bits, true.length, gen, true.offset, true.stride)
        else:  # secret positions: the attacker's key spans every shared weight
            total = live_weight_vector(model, fed.names).numel()
            slice_key = make_key(true.num_bits, total, gen)
    return head_key, slice_key


def _overwritten(fed: Federation, model: FedRepNet, c: int, x, y, steps: int, weight: float,
                 lr_mult: float) -> dict[str, float]:
    """Scores after the overwrite attack, plus the attacker's own bits (new_*_bits)."""
    wm, names = fed.cfg.watermark, fed.names
    gen = key_generator(fed.cfg.seed, _ATTACK + 1, c)
    head_key, slice_key = _attacker_keys(fed, model, c, gen)
    fl = dataclasses.replace(fed.cfg.fl, lr=fed.cfg.fl.lr * lr_mult)
    attacked = overwrite_attack(model, x, y, head_key, slice_key, names, steps, fl,
                                (weight * wm.head_scale, weight * wm.slice_scale), gen)
    row = model_scores(fed, attacked, c)
    if head_key is not None:
        row["new_head_bits"] = bit_accuracy(head_key, head_vector(attacked))
    if slice_key is not None:
        row["new_slice_bits"] = bit_accuracy(slice_key, live_weight_vector(attacked, names))
    return row


def overwrite_scores(fed: Federation, private: dict, clients: list[int],
                     epochs: int) -> dict[str, float]:
    """Mean scores after an attacker embeds its own head and slice watermarks (fresh keys at
    the victim's slice coordinates) for `epochs` on the victim's own training data."""
    rows = []
    for c in clients:
        x, y = _own_data(fed, c, 1.0, _ATTACK + 2)
        steps = epochs * -(-len(y) // fed.cfg.fl.batch_size)
        rows.append(_overwritten(fed, client_model(fed, private, c), c, x, y, steps, 1.0, 1.0))
    return _mean(rows)


def _victim_curves(fed: Federation, model: FedRepNet, c: int, x, y, ac: AttackConfig,
                   lr_mult: float) -> dict[str, list[tuple[float, dict]]]:
    """Every attack on one victim: {attack: [(strength, scores), ...]}."""
    cfg, names = fed.cfg, fed.names
    fl = dataclasses.replace(cfg.fl, lr=cfg.fl.lr * lr_mult)
    out: dict[str, list[tuple[float, dict]]] = {}

    def gen(k: int) -> torch.Generator:
        return key_generator(cfg.seed, _ATTACK + 10 + k, c)

    def stepped(name: str, attack, k: int, **kw) -> None:
        pts = out.setdefault(name, [])
        if 0 in ac.finetune_steps:
            pts.append((0.0, model_scores(fed, model, c)))
        marks = {s for s in ac.finetune_steps if s > 0}
        attack(on_step=lambda s, m: pts.append((float(s), model_scores(fed, m, c)))
               if s in marks else None, gen=gen(k), **kw)

    top = max(ac.finetune_steps)
    stepped("finetune", lambda **kw: fine_tune_attack(model, x, y, top, fl, **kw), 0)
    stepped("finetune_head",
            lambda **kw: fine_tune_attack(model, x, y, top, fl, head_only=True, **kw), 1)
    out["prune_finetune"] = [
        (r, model_scores(fed, prune_finetune_attack(model, x, y, r, ac.steps, fl, gen(2)), c))
        for r in ac.prune_rates]
    stepped("reinit_head", lambda **kw: reinit_head_attack(model, x, y, top, fl, **kw), 3)
    out["overwrite"] = [(w, _overwritten(fed, model, c, x, y, ac.steps, w, lr_mult))
                        for w in ac.overwrite_weights]
    # strength: the lr multiplier, at the smallest weight. Its point at lr_mult is the
    # overwrite point above (the same run); the larger lrs do not depend on lr_mult, so they
    # run once, in the pass of the largest lr_mult.
    w0 = min(ac.overwrite_weights)
    extra = ac.overwrite_lr_mults if lr_mult == max(ac.lr_mults) else []
    out["overwrite_lr"] = sorted(
        [(lr_mult, dict(out["overwrite"][ac.overwrite_weights.index(w0)][1]))] +
        [(lr, _overwritten(fed, model, c, x, y, ac.steps, w0, lr)) for lr in extra
         if lr != lr_mult], key=lambda p: p[0])
    span = fed.slice_keys[c] if fed.slice_keys else None
    # the victim's slice where its positions are public, else every shared weight
    coords = (span.offset, span.stride, span.length) if span is not None \
        and span.index is None else None
    for name, targets in (("noise_head", ("head",)), ("noise_slice", ("slice",))):
        if targets == ("slice",) and span is None:
            continue
        out[name] = [(s, model_scores(fed, noise_removal_attack(
            model, x, y, names, coords, s, ac.steps, fl, gen(5), targets), c))
            for s in ac.noise_strengths]
    stepped("distill", lambda **kw: distill_attack(model, x, top, fl,
                                                   temperature=ac.distill_temperature, **kw), 6)
    return out


def attack_curves(fed: Federation, private: dict, clients: list[int], ac: AttackConfig,
                  frac: float, lr_mult: float = 1.0) -> dict[str, list[dict]]:
    """Every attack of the suite against `clients`, the attacker holding a share `frac` of each
    victim's own training data and training at `lr_mult` x the federation's lr.
    Returns {attack: [{strength, acc, acc_drop, head_bits,
    slice_bits, min_head_bits, min_slice_bits[, new_*_bits]}, ...]}: means over the victims
    (min_* the worst victim); acc_drop = unattacked accuracy - attacked accuracy, in points."""
    per: dict[str, dict[float, list[dict]]] = {}
    for c in clients:
        model = client_model(fed, private, c)
        base = model_scores(fed, model, c)["acc"]
        x, y = _own_data(fed, c, frac, _ATTACK + 3)
        for name, pts in _victim_curves(fed, model, c, x, y, ac, lr_mult).items():
            for strength, row in pts:
                row = {**row, "acc_drop": 100 * (base - row["acc"])}
                per.setdefault(name, {}).setdefault(strength, []).append(row)
    out = {}
    for name, by_strength in per.items():
        out[name] = []
        for strength, rows in by_strength.items():
            point = {"strength": strength, **_mean(rows)}
            for k in ("head_bits", "slice_bits"):
                if k in rows[0]:
                    point["min_" + k] = float(min(r[k] for r in rows))
            out[name].append(point)
    return out


def removal_verdicts(curves: dict[str, list[dict]], max_drop: float = 2.0,
                     min_bits: float = 0.9) -> dict[str, dict]:
    """Per attack: does any strength remove a watermark (mean owner bits < `min_bits`) at an
    accuracy cost <= `max_drop` points? {attack: {"head": bool, "slice": bool, "holds":
    bool, "worst": the cheapest successful point or None}} where holds = no removal of either."""
    out = {}
    for name, pts in curves.items():
        verdict: dict = {"head": False, "slice": False, "worst": None}
        for p in pts:
            if p["acc_drop"] > max_drop:
                continue
            for k in ("head", "slice"):
                if p.get(k + "_bits", 1.0) < min_bits:
                    verdict[k] = True
                    if verdict["worst"] is None or p["acc_drop"] < verdict["worst"]["acc_drop"]:
                        verdict["worst"] = p
        verdict["holds"] = not (verdict["head"] or verdict["slice"])
        out[name] = verdict
    return out


def ownership_disputes(fed: Federation, private: dict, clients: list[int], steps: int,
                       weights: list[float], frac: float = 1.0,
                       lr_mult: float = 1.0) -> dict[str, float]:
    """The thief's side of the protocol: for each victim and overwrite weight, the attacker
    embeds its own fresh keys (on a share `frac` of the victim's data), tries to register
    them after the
    model was distributed, and claims the stolen model next to the owner.

    Returns counts: `claims` made, `late_registrations_refused`, `thief_verifies` (the thief's
    own keys read >= the threshold on the stolen model), `thief_named` (must be 0),
    `owner_named` and `owner_verifies` (claims where the owner's keys still read >= the
    verification threshold; the owner is named exactly then)."""
    reg = fed.strategy.registry
    out = dict.fromkeys(("claims", "late_registrations_refused", "thief_verifies",
                         "thief_named", "owner_named", "owner_verifies"), 0)
    fl = dataclasses.replace(fed.cfg.fl, lr=fed.cfg.fl.lr * lr_mult)
    for c in clients:
        x, y = _own_data(fed, c, frac, _ATTACK + 4)
        model = client_model(fed, private, c)
        for w in weights:
            gen = key_generator(fed.cfg.seed, _ATTACK + 5, c)
            head_key, slice_key = _attacker_keys(fed, model, c, gen)
            wm = fed.cfg.watermark
            stolen = overwrite_attack(model, x, y, head_key, slice_key, fed.names, steps, fl,
                                      (w * wm.head_scale, w * wm.slice_scale), gen)
            thief = {k: v for k, v in (("head", head_key), ("slice", slice_key)) if v}
            try:
                reg.register(f"thief-{c}", {k: commit(v, b"t") for k, v in thief.items()},
                             rnd=fed.cfg.fl.rounds + 1)
            except RegistrationClosed:
                out["late_registrations_refused"] += 1
            vecs = {"head": head_vector(stolen), "slice": live_weight_vector(stolen, fed.names)}
            mine = {k: v for k, v in (("head", fed.head_keys and fed.head_keys[c]),
                                      ("slice", fed.slice_keys and fed.slice_keys[c])) if v}
            verdict = reg.resolve([Claim(f"thief-{c}", thief, b"t"),
                                   Claim(str(c), mine, fed.salts[c])], vecs)
            out["claims"] += 1
            out["thief_verifies"] += min(bit_accuracy(k, vecs[n])
                                         for n, k in thief.items()) >= reg.threshold
            out["thief_named"] += verdict.owner == f"thief-{c}"
            out["owner_named"] += verdict.owner == str(c)
            out["owner_verifies"] += min(payload_accuracy(k, vecs[n])
                                         for n, k in mine.items()) >= reg.threshold
    return out
