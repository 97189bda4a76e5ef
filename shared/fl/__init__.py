"""Federated-learning building blocks shared by the FL packages (`robwe`, `crosslm`).

- `partition`: non-IID splits of a labelled dataset over clients (Dirichlet, k-label) and a
  per-client train/test split;
- `loop`: a Flower-style `Strategy` (configure / check / aggregate hooks), the `FLClient`
  protocol (fit / evaluate with a per-client private store) and `run_rounds`, the in-process,
  deterministic round loop used by tests and benches;
- `flower`: the same strategy and client on Flower (`flwr`): `make_client_app`,
  `make_server_app`, `run_flower` (Flower's simulation engine or an in-process grid).

Nothing here is paper-specific: a package brings its model, its local update and its
server-side checks.
"""

from shared.fl.loop import (
    Failure,
    FedAvg,
    FLClient,
    Strategy,
    Update,
    finish_round,
    round_rng,
    run_rounds,
    weighted_average,
)
from shared.fl.partition import (
    dirichlet_partition,
    k_label_partition,
    partition_label_counts,
    split_train_test,
)
from shared.fl.sampling import sample_clients

__all__ = [
    "Failure",
    "FedAvg",
    "FLClient",
    "Strategy",
    "Update",
    "dirichlet_partition",
    "finish_round",
    "k_label_partition",
    "partition_label_counts",
    "round_rng",
    "run_rounds",
    "sample_clients",
    "split_train_test",
    "weighted_average",
]
