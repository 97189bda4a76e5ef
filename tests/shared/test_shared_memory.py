"""The saved-for-backward byte counter, against tensors of known size, views and shared storage."""

from __future__ import annotations

import pytest
import torch

from shared.memory import SavedTensorMeter


def test_counts_exact_bytes_of_a_saved_tensor():
    x = torch.randn(100, 10, requires_grad=True)
    w = torch.randn(10, 10, requires_grad=True)
    with SavedTensorMeter(exclude=[w]) as m:
        y = x @ w  # mm saves x (4000 B) and w (excluded)
    assert m.bytes == 100 * 10 * 4 and m.count == 1
    y.sum().backward()


def test_same_storage_saved_twice_counts_once():
    x = torch.randn(64, requires_grad=True)
    with SavedTensorMeter() as m:
        a = x * x  # saves x twice (self and other)
        b = x.sin()  # saves x again
    assert m.bytes == 64 * 4
    (a + b).sum().backward()


def test_views_of_one_buffer_count_the_whole_storage_once():
    base = torch.randn(8, 16, requires_grad=True)
    h = base * 1.0  # a non-leaf buffer of 512 B
    with SavedTensorMeter(exclude=[base]) as m:
        y = h[:4].exp() * h[4:].sin()  # exp saves its output; sin saves its input view of h
    # saved: exp's result (new 256 B), view h[4:] (storage of h: 512 B), and sin's result (256 B)
    assert m.bytes == 512 + 256 + 256
    y.sum().backward()


def test_dtype_breakdown_and_scaling_with_size():
    def run(n):
        x = torch.randn(n, 32, dtype=torch.float64, requires_grad=True)
        with SavedTensorMeter(exclude=[x]) as m:
            torch.tanh(x).sum()  # tanh saves its output: n*32*8 bytes
        return m

    m1, m2 = run(10), run(20)
    assert m1.bytes == 10 * 32 * 8 and m2.bytes == 2 * m1.bytes
    assert m1.by_dtype == {"torch.float64": 10 * 32 * 8}


def test_no_grad_saves_nothing():
    x = torch.randn(100, requires_grad=True)
    with torch.no_grad(), SavedTensorMeter() as m:
        (x * x).sum()
    assert m.bytes == 0


@pytest.mark.gpu
def test_cuda_peak_sees_a_temporary_allocation():
    from shared.memory import cuda_peak

    keep = torch.empty(1 << 20, device="cuda")  # allocated before: not part of the peak delta
    with cuda_peak() as m:
        tmp = torch.empty(4 << 20, dtype=torch.uint8, device="cuda")
        del tmp
    assert m["activation"] >= 4 << 20 and m["before"] >= keep.numel() * 4


def test_meter_counts_fake_tensor_storages_by_identity():
    """Fake tensors (shapes, no data) all report data pointer 0: the meter tells their storages
    apart by identity, so the bytes equal a real run's and views are still counted once."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    def step():
        w = torch.ones(8, 8, requires_grad=True)
        x = torch.ones(4, 8)
        with SavedTensorMeter(exclude=[w]) as meter:
            h = (x @ w).tanh()
            (h[:2] * h[2:]).sum()  # two views of one saved storage
        return meter.bytes, meter.count

    real = step()
    with FakeTensorMode():
        fake = step()
    assert fake == real and real[0] > 0
