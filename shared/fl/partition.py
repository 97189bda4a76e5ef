"""Non-IID partitions of a labelled dataset over federated clients.

Every function takes integer labels `(n,)` and a seed and returns a list of index arrays, one per
client, that are disjoint; they are pure functions of their arguments (same seed, same split).

- `dirichlet_partition`: per class, client shares ~ Dir(beta) (Hsu et al. 2019; the
  `noniid-labeldir` split of the FL benchmarks, beta = 0.5 is "moderately" non-IID);
- `k_label_partition`: each client holds exactly `k` classes (the `noniid-#label k` split of
  LG-FedAvg / FedRep), each class dealt out evenly among the clients that hold it.
"""

from __future__ import annotations

import numpy as np

from shared.errors import ConfigError, DataError

__all__ = ["dirichlet_partition", "k_label_partition", "partition_label_counts",
           "split_train_test"]


def _check_labels(labels: np.ndarray, num_clients: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise DataError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"labels must be integers, got dtype {labels.dtype}")
    if num_clients < 1:
        raise ConfigError(f"num_clients must be >= 1, got {num_clients}")
    if num_clients > labels.size:
        raise ConfigError(f"num_clients={num_clients} exceeds the {labels.size} samples")
    return labels


def dirichlet_partition(labels: np.ndarray, num_clients: int, beta: float, seed: int,
                        min_size: int = 10, max_tries: int = 1000) -> list[np.ndarray]:
    """Split sample indices over clients with per-class proportions drawn from Dir(beta).

    labels: (n,) ints. Returns `num_clients` sorted index arrays covering every sample once.
    The draw is repeated until each client has >= `min_size` samples (the standard recipe).
    """
    labels = _check_labels(labels, num_clients)
    if beta <= 0:
        raise ConfigError(f"beta must be > 0, got {beta}")
    if min_size * num_clients > labels.size:
        raise ConfigError(f"min_size={min_size} x {num_clients} clients exceeds "
                          f"{labels.size} samples")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    for _ in range(max_tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(labels == c))
            share = rng.dirichlet(np.full(num_clients, beta))
            cuts = (np.cumsum(share)[:-1] * idx.size).astype(int)
            for client, chunk in enumerate(np.split(idx, cuts)):
                parts[client].append(chunk)
        out = [np.sort(np.concatenate(p)) for p in parts]
        if min(len(p) for p in out) >= min_size:
            return out
    raise ConfigError(f"no Dirichlet(beta={beta}) split gave every one of {num_clients} clients "
                      f">= {min_size} samples in {max_tries} draws; lower min_size or clients")


def k_label_partition(labels: np.ndarray, num_clients: int, k: int,
                      seed: int) -> list[np.ndarray]:
    """Give each client exactly `k` distinct classes; each class is split evenly among holders.

    Classes are dealt round-robin over a shuffled class order, so every class is held by
    `num_clients * k / C` clients (rounded) when that is possible. labels: (n,) ints.
    """
    labels = _check_labels(labels, num_clients)
    classes = np.unique(labels)
    if not 1 <= k <= classes.size:
        raise ConfigError(f"k={k} classes per client must be in [1, {classes.size}]")
    rng = np.random.default_rng(seed)
    order = rng.permutation(classes)
    # Client i holds order[(i*k + j) % C], j < k: distinct classes for each client.
    held = [order[(i * k + np.arange(k)) % classes.size] for i in range(num_clients)]
    holders: dict[int, list[int]] = {int(c): [] for c in classes}
    for client, cs in enumerate(held):
        for c in cs:
            holders[int(c)].append(client)
    parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for c, who in holders.items():
        if not who:
            continue  # more classes than client slots: class unused
        idx = rng.permutation(np.flatnonzero(labels == c))
        for client, chunk in zip(who, np.array_split(idx, len(who))):
            parts[client].append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def partition_label_counts(labels: np.ndarray, parts: list[np.ndarray],
                           num_classes: int | None = None) -> np.ndarray:
    """(num_clients, num_classes) matrix of per-client label counts (for reports and plots)."""
    labels = np.asarray(labels)
    c = int(num_classes if num_classes is not None else labels.max() + 1)
    return np.stack([np.bincount(labels[p], minlength=c) for p in parts])


def split_train_test(parts: list[np.ndarray], test_frac: float,
                     seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Split each client's indices into (train, test) with the same label mix (personalised
    evaluation: a client is tested on data drawn like its own)."""
    if not 0.0 < test_frac < 1.0:
        raise ConfigError(f"test_frac must be in (0, 1), got {test_frac}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for p in parts:
        perm = rng.permutation(p)
        n_test = max(1, int(round(test_frac * p.size)))
        if n_test >= p.size:
            raise ConfigError(f"a client with {p.size} samples cannot hold out {n_test}")
        test.append(np.sort(perm[:n_test]))
        train.append(np.sort(perm[n_test:]))
    return train, test
