"""Keys, slice partition, watermark loss targets, forging, and the lean training pieces."""

import pytest
import torch
import torch.nn.functional as F

from robwe.config import FLConfig
from robwe.fedrep import MomentumSGD, head_gradients, live_weight_vector, slice_vector
from robwe.models import FedRepNet
from robwe.watermark import (
    SlicePartition,
    WatermarkKey,
    bit_accuracy,
    forge_key,
    key_generator,
    make_key,
    payload_accuracy,
    projection,
    watermark_loss,
)
from shared.errors import ConfigError


def test_key_generation_shapes_values_and_seeding():
    k = make_key(64, 5000, key_generator(0, 2, 3))
    assert k.matrix.shape == (64, 5000) and k.bits.shape == (64,)
    assert set(k.bits.tolist()) == {-1.0, 1.0}
    # N(0, 1) entries: mean ~ 0, std ~ 1 over 320k draws
    assert abs(float(k.matrix.mean())) < 0.01 and abs(float(k.matrix.std()) - 1) < 0.01
    same = make_key(64, 5000, key_generator(0, 2, 3))
    other = make_key(64, 5000, key_generator(0, 2, 4))
    assert torch.equal(k.matrix, same.matrix) and torch.equal(k.bits, same.bits)
    assert not torch.equal(k.matrix, other.matrix)


def test_projection_and_bit_accuracy_match_a_slow_loop():
    key = make_key(16, 30, key_generator(1, 1, 1), offset=5)
    vec = torch.randn(50)
    proj = projection(key, vec)
    for j in range(16):
        ref = sum(float(key.matrix[j, t]) * float(vec[5 + t]) for t in range(30))
        assert float(proj[j]) == pytest.approx(ref, abs=1e-4)
    agree = sum((1 if float(proj[j]) > 0 else -1) == float(key.bits[j]) for j in range(16))
    assert bit_accuracy(key, vec) == pytest.approx(agree / 16)


def test_loss_uses_zero_one_targets():
    key = make_key(8, 20, key_generator(0, 0, 0))
    vec = torch.randn(20)
    p = torch.sigmoid(key.matrix.double() @ vec.double())  # float64 reference
    t = (key.bits.double() + 1) / 2
    ref = -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean()
    assert float(watermark_loss(key, vec)) == pytest.approx(float(ref), rel=1e-5)
    # Bounded below by 0 and minimised by agreeing signs: a vector that realises the bits
    # with a large margin has ~zero loss and bit accuracy 1.
    good = torch.linalg.lstsq(key.matrix, 50 * key.bits[:, None]).solution[:, 0]
    assert float(watermark_loss(key, good)) < 1e-6 and bit_accuracy(key, good) == 1.0
    # The public code's +-1 targets make BCE unbounded below (why we use (b+1)/2):
    def pm1(v):
        return float(F.binary_cross_entropy_with_logits(key.matrix @ v, key.bits))

    assert pm1(good) < 0 and pm1(2 * good) < pm1(good) - 10


def test_gradient_descent_embeds_a_watermark():
    key = make_key(32, 400, key_generator(0, 0, 1))
    vec = torch.randn(400, requires_grad=True)
    assert bit_accuracy(key, vec) < 0.8
    for _ in range(50):
        (grad,) = torch.autograd.grad(watermark_loss(key, vec), vec)
        vec = (vec - 0.5 * grad).detach().requires_grad_()
    assert bit_accuracy(key, vec) == 1.0


def test_slice_partition_is_disjoint_and_checks_capacity():
    part = SlicePartition(total=10_050, num_clients=10, num_bits=100, min_ratio=10)
    assert part.slice_len == 1005
    spans = [(part.offset(i), part.offset(i) + part.slice_len) for i in range(10)]
    assert all(b0 == a1 for (_, b0), (a1, _) in zip(spans, spans[1:]))  # contiguous, disjoint
    assert spans[-1][1] <= 10_050
    shared = SlicePartition(10_050, 10, 100, placement="shared")
    assert {shared.offset(i) for i in range(10)} == {0}
    with pytest.raises(ConfigError, match="too short"):
        SlicePartition(total=9_999, num_clients=10, num_bits=100, min_ratio=10)
    with pytest.raises(IndexError):
        part.offset(10)


def test_forge_key_flips_and_replaces_exact_fractions():
    key = make_key(100, 1000, key_generator(0, 2, 0), offset=7)
    forged = forge_key(key, 0.1, key_generator(0, 3, 0))
    assert int((forged.bits != key.bits).sum()) == 10
    assert int((forged.matrix != key.matrix).sum()) == pytest.approx(10_000, abs=5)
    assert forged.offset == 7
    assert torch.equal(forge_key(key, 0.0, key_generator(0, 3, 0)).bits, key.bits)
    with pytest.raises(ValueError):
        forge_key(key, 1.5, key_generator(0, 3, 0))


def _tiny_net():
    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 7), torch.nn.ReLU(),
                               torch.nn.Linear(7, 5), torch.nn.ReLU())
    return FedRepNet(body, 5, 3)


def test_slice_vector_equals_the_full_vector_slice():
    net = _tiny_net()
    names = net.shared_weight_names()
    assert names == ["body.1.weight", "body.3.weight"]
    full = live_weight_vector(net, names)  # 84 + 35 = 119
    for offset, length in [(0, 10), (80, 20), (84, 35), (100, 19)]:
        key = WatermarkKey(torch.zeros(1, length), torch.ones(1), offset)
        assert torch.equal(slice_vector(net, names, key), full[offset:offset + length])


def test_head_gradients_match_autograd():
    net = _tiny_net()
    key = make_key(6, 18, key_generator(0, 1, 0))  # head: 3*5 + 3 = 18 params
    feats, y = torch.randn(4, 5), torch.tensor([0, 2, 1, 2])
    w = net.head.weight.detach().clone().requires_grad_()
    b = net.head.bias.detach().clone().requires_grad_()
    loss = F.cross_entropy(feats @ w.t() + b, y) + 0.7 * watermark_loss(
        key, torch.cat([w.reshape(-1), b]))
    loss.backward()
    dw, db, ce = head_gradients(w.detach(), b.detach(), feats, y, key, 0.7)
    assert torch.allclose(dw, w.grad, atol=1e-6) and torch.allclose(db, b.grad, atol=1e-6)
    ref = F.cross_entropy(feats @ w.t() + b, y).detach()
    assert float(ce) == pytest.approx(float(ref), rel=1e-6)


def test_momentum_sgd_matches_torch_sgd():
    fl = FLConfig(lr=0.1, momentum=0.5, weight_decay=0.01)
    a, b = _tiny_net(), _tiny_net()
    ours = MomentumSGD(list(a.named_parameters()), fl)
    decay = [p for n, p in b.named_parameters() if not n.endswith("bias")]
    nodecay = [p for n, p in b.named_parameters() if n.endswith("bias")]
    ref = torch.optim.SGD([{"params": decay, "weight_decay": 0.01},
                           {"params": nodecay, "weight_decay": 0.0}], lr=0.1, momentum=0.5)
    x, y = torch.randn(8, 12), torch.randint(0, 3, (8,))
    for _ in range(3):
        for net, opt in ((a, ours), (b, ref)):
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6)


@pytest.mark.parametrize("layout", ["contiguous", "strided", "scattered"])
def test_every_slice_layout_is_disjoint_and_fits(layout):
    part = SlicePartition(total=2_003, num_clients=7, num_bits=20, layout=layout, secret=5)
    seen: set[int] = set()
    vec = torch.arange(2_003, dtype=torch.float32)
    for c in range(7):
        key = part.key(c, key_generator(0, 2, c))
        coords = key.coords(vec).long().tolist()  # vec[i] = i: the coordinates themselves
        assert len(coords) == part.slice_len == key.length
        assert not seen & set(coords)
        seen |= set(coords)
        assert key.end <= 2_003
    assert len(seen) == 7 * part.slice_len
    if layout == "scattered":  # a secret permutation: same secret, same slices; not contiguous
        again = SlicePartition(2_003, 7, 20, layout=layout, secret=5).index(3)
        assert torch.equal(again, part.index(3))
        assert not torch.equal(part.index(3), SlicePartition(2_003, 7, 20, layout=layout,
                                                             secret=6).index(3))
        assert int(part.index(0).diff().max()) > 1


def test_strided_and_scattered_projections_match_a_slow_loop():
    vec = torch.randn(300)
    for key in (make_key(6, 20, key_generator(0, 1, 0), offset=3, stride=7),
                make_key(6, 20, key_generator(0, 1, 1), index=torch.randperm(300)[:20])):
        at = [3 + 7 * t for t in range(20)] if key.index is None else key.index.tolist()
        proj = projection(key, vec)
        for j in range(6):
            ref = sum(float(key.matrix[j, t]) * float(vec[at[t]]) for t in range(20))
            assert float(proj[j]) == pytest.approx(ref, abs=1e-4)


def test_repetition_code_tiles_the_payload_and_decodes_by_soft_majority():
    key = make_key(12, 40, key_generator(0, 1, 2), repeat=3)
    payload = key.bits[:4]
    assert torch.equal(key.bits, payload.repeat(3))
    vec = torch.randn(40)
    proj = projection(key, vec)
    right = 0
    for j in range(4):  # slow reference: sum the three copies' projections
        soft = float(proj[j]) + float(proj[j + 4]) + float(proj[j + 8])
        right += (1.0 if soft > 0 else -1.0) == float(payload[j])
    assert payload_accuracy(key, vec) == pytest.approx(right / 4)
    plain = make_key(12, 40, key_generator(0, 1, 2))
    assert payload_accuracy(plain, vec) == bit_accuracy(plain, vec)
    with pytest.raises(ConfigError):
        make_key(10, 40, key_generator(0, 1, 2), repeat=3)
