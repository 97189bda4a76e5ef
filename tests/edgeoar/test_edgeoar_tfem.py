"""TFEM: the layering shift is causal, equals a slow per-frame reference and streams exactly
as it batches; the partition-guided enhancement starts as the identity and attends to small
blocks."""

import pytest
import torch

from edgeoar.tfem import PartitionSpatialEnhancement, TemporalLayeringShift


def reference_shift(x, fold, offsets):
    """Slow reference: frame t, group k <- frame t - offsets[k] (zeros before the start)."""
    out = x.clone()
    b, t, c = x.shape[:3]
    for ti in range(t):
        for k, o in enumerate(offsets):
            for ch in range(k * fold, (k + 1) * fold):
                out[:, ti, ch] = x[:, ti - o, ch] if ti - o >= 0 else 0
    return out


@pytest.mark.parametrize("offsets", [(1,), (1, 2), (2, 1, 3)])
def test_shift_equals_reference_and_streaming(offsets):
    torch.manual_seed(0)
    sh = TemporalLayeringShift(24, div=8, offsets=offsets)
    x = torch.randn(2, 7, 24, 3, 3)
    y = sh(x)
    assert torch.equal(y, reference_shift(x, 3, offsets))
    state, outs = None, []
    for t in range(7):
        o, state = sh.step(x[:, t], state)
        outs.append(o)
    assert torch.equal(torch.stack(outs, 1), y)
    n = 3 * len(offsets)
    assert torch.equal(y[:, :, n:], x[:, :, n:])  # unshifted channels untouched


def test_shift_is_causal():
    sh = TemporalLayeringShift(16, div=4, offsets=(1, 2))
    x = torch.randn(1, 6, 16, 2, 2)
    x2 = x.clone()
    x2[:, 4:] = torch.randn_like(x2[:, 4:])  # change the future
    assert torch.equal(sh(x)[:, :4], sh(x2)[:, :4])
    assert not torch.equal(sh(x)[:, 5], sh(x2)[:, 5])


def test_shift_refuses_non_causal_or_overfull():
    with pytest.raises(ValueError, match="causal"):
        TemporalLayeringShift(16, 8, (0, 1))
    with pytest.raises(ValueError, match="cannot hold"):
        TemporalLayeringShift(8, 2, (1, 2, 3))


def test_msem_identity_at_init_and_attends_to_small_blocks():
    m = PartitionSpatialEnhancement(4)
    x = torch.randn(2, 4, 8, 8)
    detail = torch.zeros(2, 1, 16, 16)
    detail[:, :, :8, :8] = 1.0  # small blocks in the top-left quadrant
    assert torch.equal(m(x, detail), x)
    with torch.no_grad():
        m.gamma.fill_(1.0)
    a = m.attention(detail, (8, 8))
    assert a.shape == (2, 1, 8, 8)
    assert a[:, :, 1, 1].min() > a[:, :, 6, 6].max()
    y = m(x, detail)
    assert torch.allclose(y, x * (1 + a))
