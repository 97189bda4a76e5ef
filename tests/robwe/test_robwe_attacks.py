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


# --- the attack suite (robwe.attacks): each against a reference or a property -----------------

import copy  # noqa: E402

import pytest  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from robwe.attacks import (  # noqa: E402
    attacker_indices,
    distill_attack,
    fine_tune_attack,
    noise_removal_attack,
    overwrite_attack,
    prune_finetune_attack,
    reinit_head_attack,
    train_steps,
)
from robwe.config import FLConfig  # noqa: E402
from robwe.fedrep import live_weight_vector, make_optimizer  # noqa: E402
from robwe.models import head_vector  # noqa: E402
from robwe.watermark import watermark_loss  # noqa: E402

FL = FLConfig(lr=0.05, momentum=0.5, weight_decay=1e-4, batch_size=8)


def _net(seed=0):
    torch.manual_seed(seed)
    return FedRepNet(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 16),
                                         torch.nn.ReLU(), torch.nn.Linear(16, 8),
                                         torch.nn.ReLU()), 8, 3)


def _data(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 3, 4, generator=g)
    y = (x.reshape(n, -1)[:, :3].argmax(1))  # a learnable rule
    return x, y


def _embed(net, key, names=None, steps=300):
    """A model carrying `key` on its head (names None) or on its shared weights."""
    net = copy.deepcopy(net)
    params = list(net.parameters())
    for _ in range(steps):
        vec = head_vector(net) if names is None else live_weight_vector(net, names)
        grads = torch.autograd.grad(watermark_loss(key, vec), params, allow_unused=True)
        with torch.no_grad():
            for p, g in zip(params, grads):
                if g is not None:
                    p -= 0.1 * g
    return net


def test_attacker_indices_are_a_subset_of_the_right_size():
    idx = torch.arange(100, 300)
    for frac, k in ((0.01, 2), (0.1, 20), (1.0, 200), (0.001, 1)):
        got = attacker_indices(idx, frac, torch.Generator().manual_seed(0))
        assert len(got) == k and len(set(got.tolist())) == k
        assert set(got.tolist()) <= set(idx.tolist())
    with pytest.raises(ValueError):
        attacker_indices(idx, 0.0, torch.Generator())


def test_train_steps_runs_exactly_that_many_steps_over_whole_epochs():
    seen = []
    w = torch.zeros(1, requires_grad=True)
    opt = make_optimizer([("w", w)], FL)

    def loss(b):
        seen.append(b.tolist())
        return (w * len(b)).sum()

    train_steps(loss, 10, 7, 4, opt, torch.Generator().manual_seed(0))
    assert len(seen) == 7
    # batches 4, 4, 2 per epoch; every epoch a permutation of the 10 samples
    assert [len(b) for b in seen] == [4, 4, 2, 4, 4, 2, 4]
    assert sorted(sum(seen[:3], [])) == list(range(10))
    assert sorted(sum(seen[3:6], [])) == list(range(10))


def test_fine_tune_one_full_batch_step_matches_hand_sgd():
    net, (x, y) = _net(), _data(8)
    out = fine_tune_attack(net, x, y, 1, FL, torch.Generator().manual_seed(0))
    ref = copy.deepcopy(net)
    loss = F.cross_entropy(ref(x), y)  # batch 8 = the whole set: order does not matter
    grads = torch.autograd.grad(loss, list(ref.parameters()))
    for (name, p), g, q in zip(ref.named_parameters(), grads, out.parameters()):
        wd = 0.0 if name.endswith("bias") else FL.weight_decay
        assert torch.allclose(q, p - FL.lr * (g + wd * p), atol=1e-6), name
    # the victim's model is not modified
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), _net().parameters()))


def test_head_only_fine_tuning_leaves_the_body_untouched():
    net, (x, y) = _net(), _data()
    out = fine_tune_attack(net, x, y, 10, FL, torch.Generator().manual_seed(0), head_only=True)
    assert all(torch.equal(a, b) for a, b in zip(net.body.parameters(), out.body.parameters()))
    assert not torch.equal(net.head.weight, out.head.weight)
    everything = fine_tune_attack(net, x, y, 10, FL, torch.Generator().manual_seed(0))
    assert not torch.equal(net.body[1].weight, everything.body[1].weight)


def test_prune_then_fine_tune_keeps_the_pruned_entries_at_zero():
    net, (x, y) = _net(), _data()
    out = prune_finetune_attack(net, x, y, 0.5, 20, FL, torch.Generator().manual_seed(0))
    for (name, p), q in zip(net.named_parameters(), out.parameters()):
        if p.ndim > 1:
            mask = magnitude_mask(p, 0.5)
            assert torch.all(q[~mask] == 0), name  # pruned entries stay pruned
            assert not torch.equal(q[mask], p[mask]), name  # the rest was fine-tuned


def test_reinit_head_does_not_depend_on_the_victims_head():
    net, (x, y) = _net(), _data()
    other = copy.deepcopy(net)
    with torch.no_grad():
        other.head.weight.normal_()  # a different victim head, same body
        other.head.bias.normal_()
    a = reinit_head_attack(net, x, y, 15, FL, torch.Generator().manual_seed(4))
    b = reinit_head_attack(other, x, y, 15, FL, torch.Generator().manual_seed(4))
    assert torch.equal(a.head.weight, b.head.weight) and torch.equal(a.head.bias, b.head.bias)
    assert all(torch.equal(p, q) for p, q in zip(net.body.parameters(), a.body.parameters()))


def test_overwrite_embeds_the_attackers_keys_and_reduces_to_fine_tuning_at_weight_0():
    net, (x, y) = _net(), _data()
    names = net.shared_weight_names()
    p_y = live_weight_vector(net, names).numel()
    hk = make_key(8, head_vector(net).numel(), key_generator(0, 9, 0))
    sk = make_key(8, 64, key_generator(0, 9, 1), offset=32)
    out = overwrite_attack(net, x, y, hk, sk, names, 120, FL, (5.0, 5.0),
                           torch.Generator().manual_seed(0))
    assert bit_accuracy(hk, head_vector(out)) == 1.0
    assert bit_accuracy(sk, live_weight_vector(out, names)) == 1.0
    assert 32 + 64 <= p_y
    zero = overwrite_attack(net, x, y, hk, sk, names, 30, FL, (0.0, 0.0),
                            torch.Generator().manual_seed(1))
    plain = fine_tune_attack(net, x, y, 30, FL, torch.Generator().manual_seed(1))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(zero.parameters(),
                                                                plain.parameters()))


def test_noise_removal_erases_a_mark_without_the_key_and_is_fine_tuning_at_strength_0():
    net, (x, y) = _net(), _data()
    names = net.shared_weight_names()
    key = make_key(16, 100, key_generator(0, 2, 0), offset=50)
    marked = _embed(net, key, names)
    assert bit_accuracy(key, live_weight_vector(marked, names)) == 1.0
    out = noise_removal_attack(marked, x, y, names, (50, 1, 100), 5.0, 100, FL,
                               torch.Generator().manual_seed(0), targets=("slice",))
    assert bit_accuracy(key, live_weight_vector(out, names)) < 0.85  # chance is 0.5
    zero = noise_removal_attack(marked, x, y, names, (50, 1, 100), 0.0, 20, FL,
                                torch.Generator().manual_seed(1))
    plain = fine_tune_attack(marked, x, y, 20, FL, torch.Generator().manual_seed(1))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(zero.parameters(),
                                                                plain.parameters()))
    with pytest.raises(ValueError):
        noise_removal_attack(marked, x, y, names, None, 1.0, 1, FL, torch.Generator(),
                             targets=())


def test_distillation_copies_the_function_into_a_fresh_student():
    net, (x, y) = _net(), _data(96)
    teacher = fine_tune_attack(net, x, y, 150, FL, torch.Generator().manual_seed(0))
    student = distill_attack(teacher, x, 300, FL, torch.Generator().manual_seed(1))
    agree = float((student(x).argmax(1) == teacher(x).argmax(1)).float().mean())
    assert agree >= 0.85
    # a fresh initialisation, not the teacher's weights fine-tuned
    fresh = distill_attack(teacher, x, 0, FL, torch.Generator().manual_seed(1))
    assert not torch.allclose(fresh.head.weight, teacher.head.weight)
    assert fresh.head.weight.shape == teacher.head.weight.shape
