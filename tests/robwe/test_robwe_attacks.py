"""Attacks and the uniqueness matrix against slow references."""

import torch

from robwe.attacks import magnitude_mask, prune_attack, uniqueness_matrix
from robwe.models import FedRepNet
from robwe.watermark import bit_accuracy, key_generator, make_key


def test_magnitude_mask_drops_exactly_the_smallest():
    w = torch.randn(13, 7)
    for rate in (0.0, 0.3, 0.5, 0.9):
        mask = magnitude_mask(w, rate)
        k = round(rate * w.numel())
        assert int((~mask).sum()) == k
        if 0 < k < w.numel():
            assert w[~mask].abs().max() <= w[mask].abs().min()


def test_prune_attack_prunes_every_weight_tensor_but_not_biases():
    torch.manual_seed(0)
    net = FedRepNet(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(20, 10),
                                        torch.nn.ReLU()), 10, 4)
    pruned = prune_attack(net, 0.5)
    for (name, p), q in zip(net.named_parameters(), pruned.parameters()):
        zeros = int((q == 0).sum())
        assert zeros == (round(0.5 * p.numel()) if p.ndim > 1 else 0), name
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(),
                                                 prune_attack(net, 0.0).parameters()))


def test_uniqueness_matrix_matches_a_loop():
    keys = [make_key(16, 40, key_generator(0, 1, c)) for c in range(5)]
    heads = torch.randn(5, 40)
    u = uniqueness_matrix(heads, keys)
    for i in range(5):
        for j in range(5):
            assert float(u[i, j]) == bit_accuracy(keys[j], heads[i])
