"""shared.fl: partitions, sampling, weighted averaging and the in-process round loop."""

import numpy as np
import pytest
import torch

from shared.errors import ConfigError, DataError
from shared.fl import (
    FedAvg,
    Update,
    dirichlet_partition,
    k_label_partition,
    partition_label_counts,
    round_rng,
    run_rounds,
    sample_clients,
    split_train_test,
    weighted_average,
)

LABELS = np.repeat(np.arange(10), 60)  # 600 samples, 10 classes


def _is_partition(parts, n):
    allidx = np.concatenate(parts)
    return allidx.size == n and np.unique(allidx).size == n


def test_dirichlet_partition_covers_disjointly_and_is_seeded():
    parts = dirichlet_partition(LABELS, 8, beta=0.5, seed=1, min_size=5)
    assert len(parts) == 8 and _is_partition(parts, LABELS.size)
    assert min(len(p) for p in parts) >= 5
    again = dirichlet_partition(LABELS, 8, beta=0.5, seed=1, min_size=5)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))


def test_dirichlet_beta_controls_skew():
    # Property: small beta -> each client dominated by few classes; large beta -> near-uniform.
    def top_share(beta):
        counts = partition_label_counts(LABELS, dirichlet_partition(LABELS, 6, beta, seed=0,
                                                                    min_size=5))
        return float((counts.max(1) / counts.sum(1)).mean())

    assert top_share(0.1) > 0.5 > top_share(100.0)
    assert top_share(100.0) < 0.2


def test_k_label_partition_gives_exactly_k_classes():
    parts = k_label_partition(LABELS, 10, k=3, seed=0)
    assert _is_partition(parts, LABELS.size)
    counts = partition_label_counts(LABELS, parts)
    assert ((counts > 0).sum(1) == 3).all()
    # each class held by 10*3/10 = 3 clients, split evenly (20 samples each)
    assert ((counts > 0).sum(0) == 3).all() and set(counts[counts > 0].tolist()) == {20}


def test_partition_bad_input():
    with pytest.raises(DataError, match="integers"):
        dirichlet_partition(LABELS.astype(float), 4, 0.5, 0)
    with pytest.raises(ConfigError, match="beta"):
        dirichlet_partition(LABELS, 4, 0.0, 0)
    with pytest.raises(ConfigError, match="k=11"):
        k_label_partition(LABELS, 4, 11, 0)
    with pytest.raises(ConfigError, match="num_clients"):
        k_label_partition(LABELS[:3], 4, 1, 0)


def test_split_train_test_keeps_each_client_disjoint():
    parts = k_label_partition(LABELS, 5, k=2, seed=0)
    train, test = split_train_test(parts, 0.25, seed=0)
    for p, tr, te in zip(parts, train, test):
        assert np.intersect1d(tr, te).size == 0
        assert np.array_equal(np.sort(np.concatenate([tr, te])), p)
        assert te.size == round(0.25 * p.size)


def test_sample_clients():
    rng = np.random.default_rng(0)
    s = sample_clients([5, 1, 9, 3], 0.5, rng)
    assert len(s) == 2 and s == sorted(s) and set(s) <= {1, 3, 5, 9}
    assert sample_clients([], 0.5, rng) == []
    assert len(sample_clients(range(10), 0.01, rng, min_clients=3)) == 3
    with pytest.raises(ConfigError, match="fraction"):
        sample_clients([1], 1.5, rng)
    # keyed generators: same (seed, round) -> same draw
    assert sample_clients(range(20), 0.3, round_rng(7, 2)) == sample_clients(
        range(20), 0.3, round_rng(7, 2))


def test_weighted_average_matches_loop():
    states = [{"w": torch.randn(3, 2), "b": torch.randn(2)} for _ in range(4)]
    weights = [1.0, 2.0, 3.0, 4.0]
    avg = weighted_average(states, weights)
    for key in ("w", "b"):
        ref = sum(w * s[key] for w, s in zip(weights, states)) / sum(weights)
        assert torch.allclose(avg[key], ref, atol=1e-6)
    with pytest.raises(ValueError):
        weighted_average(states, [0, 0, 0, 0])


class MeanClient:
    """Client i holds the number i; its 'model' is a scalar pulled toward i; it counts its
    rounds in its private store."""

    def fit(self, cid, global_state, config, private):
        private["rounds"] = private.get("rounds", torch.zeros(())) + 1
        w = global_state["w"] + 0.5 * (cid - global_state["w"])
        return Update(cid, {"w": w}, num_examples=1, metrics={"seen": float(cid)})

    def evaluate(self, cid, global_state, config, private):
        return {"rounds": float(private.get("rounds", torch.zeros(())))}


class DropOdd(FedAvg):
    def check_updates(self, rnd, updates):
        self.banned |= {u.client_id for u in updates if u.client_id % 2}
        return [u for u in updates if u.client_id % 2 == 0]


def test_run_rounds_aggregates_checks_and_keeps_private_state():
    strat = DropOdd({"w": torch.zeros(())}, fraction=1.0, seed=0)
    private = {}
    hist = run_rounds(strat, MeanClient(), range(4), num_rounds=3, private=private)
    assert hist[0]["sampled"] == [0, 1, 2, 3] and hist[0]["rejected"] == [1, 3]
    assert hist[1]["sampled"] == [0, 2]  # banned clients are never sampled again
    # closed form: w <- mean_{i in {0,2}} (w + 0.5 (i - w)) = 0.5 w + 0.5
    w = 0.0
    for _ in range(3):
        w = 0.5 * w + 0.5
    assert float(strat.global_state["w"]) == pytest.approx(w)
    assert float(private[0]["rounds"]) == 3 and float(private[1]["rounds"]) == 1


def test_run_rounds_resume_equals_straight_run():
    a = FedAvg({"w": torch.zeros(())}, fraction=0.5, seed=3)
    run_rounds(a, MeanClient(), range(6), num_rounds=4)
    b = FedAvg({"w": torch.zeros(())}, fraction=0.5, seed=3)
    run_rounds(b, MeanClient(), range(6), num_rounds=2)
    c = FedAvg({"w": torch.zeros(())}, fraction=0.5, seed=3)
    c.load_state_dict(b.state_dict())
    run_rounds(c, MeanClient(), range(6), num_rounds=4, start_round=3)
    assert torch.equal(a.global_state["w"], c.global_state["w"])


class FailingClient(MeanClient):
    """MeanClient whose client 1 always fails (a crashed or disconnected device)."""

    def fit(self, cid, global_state, config, private):
        if cid == 1:
            raise RuntimeError("device went away")
        return super().fit(cid, global_state, config, private)


def test_a_failing_client_is_recorded_and_the_round_aggregates_the_others(caplog):
    strat = FedAvg({"w": torch.zeros(())}, fraction=1.0, seed=0)
    hist = run_rounds(strat, FailingClient(), range(3), num_rounds=1)
    assert hist[0]["failed"] == [1] and hist[0]["accepted"] == [0, 2]
    # closed form over clients 0 and 2 only: mean(0 + 0.5 * (i - 0)) = 0.5
    assert float(strat.global_state["w"]) == pytest.approx(0.5)
    assert "client 1 failed (RuntimeError: device went away)" in caplog.text


def test_accept_failures_false_keeps_the_global_state():
    strat = FedAvg({"w": torch.zeros(())}, fraction=1.0, seed=0, accept_failures=False)
    hist = run_rounds(strat, FailingClient(), range(3), num_rounds=2)
    assert [h["failed"] for h in hist] == [[1], [1]] and hist[0]["accepted"] == []
    assert float(strat.global_state["w"]) == 0.0
