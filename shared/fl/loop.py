"""The federated round, written once: a Flower-style `Strategy` plus an `FLClient`.

One round (McMahan et al. 2017; the Strategy hooks of `flwr.server.strategy`):

    plan    = strategy.configure_fit(rnd, client_ids)        # {client_id: config}
    updates = [client.fit(cid, global_state, cfg, private[cid]) for cid, cfg in plan]
    strategy.handle_failures(rnd, failures)                 # clients whose fit raised
    kept    = strategy.check_updates(rnd, updates)          # server-side checks (may ban)
    strategy.aggregate_fit(rnd, kept)                       # new global (shared) state

`run_rounds` runs it in-process; `shared.fl.flower` runs the very same objects on Flower. A
client's `private` store (a dict of tensors that never leaves the client: a personalised head,
local adapters) persists between its rounds: a plain dict here, the node's `Context.state` on
Flower. Randomness is keyed by (seed, round[, client]) through `round_rng`, never by call order,
so both engines, and a resumed run, produce the same result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from shared.fl.sampling import sample_clients
from shared.log import get_logger, progress

__all__ = ["Update", "Failure", "FLClient", "Strategy", "FedAvg", "round_rng", "run_rounds",
           "finish_round", "weighted_average"]

log = get_logger(__name__)

State = dict[str, torch.Tensor]


@dataclass
class Update:
    """What a client uploads after local training."""

    client_id: int
    state: State  # the shared parameters after local training (same keys as the global state)
    num_examples: int  # aggregation weight
    metrics: dict[str, float] = field(default_factory=dict)


class FLClient(Protocol):
    """Client-side logic. `private` is the client's own persistent store; mutate it in place."""

    def fit(self, client_id: int, global_state: State, config: dict,
            private: State) -> Update: ...

    def evaluate(self, client_id: int, global_state: State, config: dict,
                 private: State) -> dict[str, float]: ...


def round_rng(seed: int, *keys: int) -> np.random.Generator:
    """A generator that depends only on (seed, *keys), e.g. (seed, round, client)."""
    return np.random.default_rng([int(seed), *(int(k) for k in keys)])


def weighted_average(states: Sequence[State], weights: Sequence[float]) -> State:
    """sum_i w_i * state_i / sum_i w_i, key by key. states: same keys and shapes."""
    if not states:
        raise ValueError("weighted_average of no states")
    w = torch.as_tensor(list(weights), dtype=torch.float64)
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"aggregation weights must be >= 0 with a positive sum, got {weights}")
    w = w / w.sum()
    out = {}
    for key, ref in states[0].items():
        stacked = torch.stack([s[key].to(torch.float64) for s in states])  # (n, *shape)
        out[key] = torch.tensordot(w, stacked, dims=1).to(ref.dtype)
    return out


@dataclass
class Failure:
    """A sampled client whose round failed (its `fit` raised, or its node returned an error)."""

    client_id: int
    error: str


class Strategy:
    """Server-side logic as hooks (cf. `flwr.server.strategy.Strategy`), called in this order
    each round:

    - `configure_fit(rnd, client_ids) -> {client_id: config}`: which clients train this round,
      with what config (default: a seeded `fraction` of the clients not banned);
    - `handle_failures(rnd, failures)`: the sampled clients whose round failed. Default: log
      them and carry on with the others, as Flower's `accept_failures=True`; with
      `accept_failures=False` the round aggregates nothing (the global state is kept);
    - `check_updates(rnd, updates) -> kept updates`: server-side checks before aggregation
      (default: keep all); may add clients to `self.banned`, who are never sampled again;
    - `aggregate_fit(rnd, kept) -> new global state` (required; an empty `kept` must keep the
      current state).

    `state_dict` / `load_state_dict` carry everything needed to resume the server.
    """

    def __init__(self, initial_state: State, fraction: float = 1.0, min_clients: int = 1,
                 seed: int = 0, accept_failures: bool = True):
        self.global_state: State = {k: v.detach().clone() for k, v in initial_state.items()}
        self.fraction = fraction
        self.min_clients = min_clients
        self.seed = seed
        self.accept_failures = accept_failures
        self.banned: set[int] = set()

    def configure_fit(self, rnd: int, client_ids: Sequence[int]) -> dict[int, dict]:
        available = [c for c in client_ids if c not in self.banned]
        chosen = sample_clients(available, self.fraction, round_rng(self.seed, rnd),
                                self.min_clients)
        return {c: {"round": rnd} for c in chosen}

    def handle_failures(self, rnd: int, failures: list[Failure]) -> bool:
        """Log the failed clients; return whether the round may still aggregate."""
        for f in failures:
            log.warning("round %d: client %d failed (%s)", rnd, f.client_id, f.error)
        return self.accept_failures or not failures

    def check_updates(self, rnd: int, updates: list[Update]) -> list[Update]:
        return list(updates)

    def aggregate_fit(self, rnd: int, updates: list[Update]) -> State:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Everything needed to resume the server (extend in subclasses)."""
        return {"global_state": self.global_state, "banned": sorted(self.banned)}

    def load_state_dict(self, d: dict) -> None:
        self.global_state = {k: v.clone() for k, v in d["global_state"].items()}
        self.banned = set(d["banned"])


class FedAvg(Strategy):
    """Example-weighted averaging of the accepted uploads; no upload keeps the old state."""

    def aggregate_fit(self, rnd: int, updates: list[Update]) -> State:
        if updates:
            self.global_state = weighted_average([u.state for u in updates],
                                                 [u.num_examples for u in updates])
        return self.global_state


def finish_round(strategy: Strategy, rnd: int, updates: list[Update],
                 failures: Sequence[Failure] = ()) -> dict:
    """Server half of a round (shared by both engines): failures, check, aggregate, summarise."""
    updates = sorted(updates, key=lambda u: u.client_id)
    failures = sorted(failures, key=lambda f: f.client_id)
    if strategy.handle_failures(rnd, failures):
        kept = strategy.check_updates(rnd, updates)
        strategy.aggregate_fit(rnd, kept)
    else:
        kept = []
    kept_ids = [u.client_id for u in kept]
    metrics: dict[str, float] = {}
    for key in sorted({k for u in updates for k in u.metrics}):
        vals = [u.metrics[key] for u in updates if key in u.metrics]
        metrics[key] = float(np.mean(vals))
    return {"round": rnd, "sampled": [u.client_id for u in updates], "accepted": kept_ids,
            "rejected": [u.client_id for u in updates if u.client_id not in kept_ids],
            "failed": [f.client_id for f in failures], "metrics": metrics}


def run_rounds(strategy: Strategy, client: FLClient, client_ids: Sequence[int],
               num_rounds: int, private: dict[int, State] | None = None, start_round: int = 1,
               on_round: Callable[[int, dict], None] | None = None) -> list[dict]:
    """Run rounds `start_round..num_rounds` in-process; return one record per round.

    `private` holds each client's private store (created empty when None, updated in place);
    `on_round(rnd, record)` runs after each round (checkpointing, logging).
    """
    private = private if private is not None else {}
    history = []
    for rnd in progress(range(start_round, num_rounds + 1), desc="rounds",
                        initial=start_round - 1, total=num_rounds):
        plan = strategy.configure_fit(rnd, client_ids)
        updates, failures = [], []
        for cid, cfg in plan.items():
            try:
                updates.append(client.fit(cid, strategy.global_state, cfg,
                                          private.setdefault(cid, {})))
            except Exception as e:  # a failing client must not end the federation
                failures.append(Failure(cid, f"{type(e).__name__}: {e}"))
        record = finish_round(strategy, rnd, updates, failures)
        log.debug("round %d: %s", rnd, record)
        history.append(record)
        if on_round is not None:
            on_round(rnd, record)
    return history
