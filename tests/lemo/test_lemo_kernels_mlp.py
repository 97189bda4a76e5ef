"""`lemo.kernels.pruned_swiglu` (token-chunked forward of MLP saved-channel pruning) against the
unchunked `lemo.mlp.PrunedSwiGLUFunction`: same output, kept channels, saved bytes, gradients."""

import pytest
import torch

from lemo import kernels
from lemo.mlp import PrunedSwiGLUFunction
from shared.memory import SavedTensorMeter

torch.set_num_threads(1)


def _weights(d=24, inter=40, bias=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    ws = [torch.randn(inter, d, generator=g) * 0.3, torch.randn(inter, d, generator=g) * 0.3,
          torch.randn(d, inter, generator=g) * 0.3]
    bs = [torch.randn(inter, generator=g) * 0.1, torch.randn(inter, generator=g) * 0.1,
          torch.randn(d, generator=g) * 0.1] if bias else [None, None, None]
    return ws, bs


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("chunk", [7, 64, 1000])  # not dividing the 2·37 tokens; one chunk
def test_chunked_equals_unchunked(bias, chunk):
    ws, bs = _weights(bias=bias)
    x0 = torch.randn(2, 37, 24)
    outs = []
    for fn in ("ref", "chunked"):
        x = x0.clone().requires_grad_()
        with SavedTensorMeter(exclude=ws) as meter:
            if fn == "ref":
                y = PrunedSwiGLUFunction.apply(x, *ws, *bs, 9)
            else:
                y = kernels.pruned_swiglu(x, *ws, *bs, n_keep=9, chunk=chunk)
        kept = y.grad_fn.saved_tensors[2]
        (gx,) = torch.autograd.grad((y * torch.linspace(-1, 1, 24)).sum(), [x])
        outs.append((y.detach(), gx, meter.bytes, kept))
    (y_r, g_r, b_r, ch_r), (y_c, g_c, b_c, ch_c) = outs
    assert torch.equal(ch_r, ch_c)  # same channels kept
    assert torch.allclose(y_c, y_r, atol=1e-5) and torch.allclose(g_c, g_r, atol=1e-5)
    assert b_c == b_r  # the same tensors are saved for backward


def test_pruned_swiglu_bad_arguments():
    ws, bs = _weights()
    with pytest.raises(ValueError, match="n_keep"):
        kernels.pruned_swiglu(torch.randn(1, 4, 24), *ws, n_keep=41)
    with pytest.raises(ValueError, match="chunk"):
        kernels.pruned_swiglu(torch.randn(1, 4, 24), *ws, n_keep=4, chunk=0)


def test_chunked_bf16_keeps_the_same_channels():
    """bf16 norms rank like the original's (activation-dtype norms), so the kept set agrees."""
    ws, bs = _weights(d=64, inter=176)
    ws = [w.bfloat16() for w in ws]
    x = torch.randn(1, 300, 64).bfloat16().requires_grad_()
    ref = PrunedSwiGLUFunction.apply(x, *ws, *bs, 36)
    got = kernels.pruned_swiglu(x, *ws, n_keep=36, chunk=128)
    assert torch.equal(ref.grad_fn.saved_tensors[2], got.grad_fn.saved_tensors[2])
    assert torch.allclose(got.float(), ref.float(), atol=2e-2, rtol=2e-2)


def test_column_sq_sums_equals_the_direct_sum():
    """Block-wise fp32 sums of squares (blocks not dividing the rows; accumulating into `out`)
    equal the direct per-column sum to fp32 rounding, for bf16 and fp32 inputs."""
    from lemo.mlp import column_sq_sums

    t = torch.randn(2500, 33)
    for x in (t, t.bfloat16()):
        ref = x.float().square().sum(0)
        assert torch.allclose(column_sq_sums(x, rows=1024), ref, rtol=1e-5)
        assert torch.allclose(column_sq_sums(x, rows=7), ref, rtol=1e-5)
        out = torch.ones(33)
        assert column_sq_sums(x, out, rows=1000) is out
        assert torch.allclose(out, ref + 1, rtol=1e-5)


def test_chunked_keeps_the_unchunked_channels_over_many_score_blocks():
    """bf16, more tokens than one score block: a chunk that is a multiple of SCORE_ROWS sums the
    same blocks in the same order, so the kept channels are identical, the output too."""
    from lemo.mlp import SCORE_ROWS

    ws, _ = _weights(d=32, inter=96)
    ws = [w.bfloat16() for w in ws]
    x = torch.randn(1, 2 * SCORE_ROWS + 300, 32).bfloat16().requires_grad_()
    ref = PrunedSwiGLUFunction.apply(x, *ws, None, None, None, 40)
    got = kernels.pruned_swiglu(x, *ws, n_keep=40, chunk=2 * SCORE_ROWS)
    assert torch.equal(ref.grad_fn.saved_tensors[2], got.grad_fn.saved_tensors[2])
    assert torch.allclose(ref.float(), got.float(), atol=1e-2, rtol=1e-2)


def test_column_sq_sums_chunked_equals_whole_bitwise():
    """Summing chunk by chunk (chunks a multiple of the block rows) adds the same fp32 block sums
    in the same order as one call over the whole matrix: bit-equal, which is what makes the
    chunked and unchunked forwards rank the same scores."""
    from lemo.mlp import column_sq_sums

    t = torch.randn(5 * 64 + 17, 29).bfloat16()
    whole = column_sq_sums(t, rows=64)
    acc = torch.zeros(29)
    for start in range(0, t.shape[0], 128):
        column_sq_sums(t[start:start + 128], acc, rows=64)
    assert torch.equal(whole, acc)
    other = torch.zeros(29)
    for start in range(0, t.shape[0], 100):  # not a multiple: other blocks, other rounding
        column_sq_sums(t[start:start + 100], other, rows=64)
    assert torch.allclose(other, whole, rtol=1e-5)


def test_activation_in_place_only_for_silu():
    """SwiGLU applies SiLU in place (same values); GeGLU and a subclass that overrides only `_act`
    apply their own activation without touching the input."""
    import torch.nn.functional as F

    from lemo.mlp import GATED_ACTIVATIONS, PrunedGeGLUFunction

    class Tanh(PrunedSwiGLUFunction):
        @staticmethod
        def _act(g):
            return torch.tanh(g)

    g = torch.randn(6, 5)
    for fn, act in ((PrunedSwiGLUFunction, F.silu),
                    (PrunedGeGLUFunction, lambda t: F.gelu(t, approximate="tanh")),
                    (Tanh, torch.tanh)):
        x = g.clone()
        out = fn._act_(x)
        assert torch.equal(out, act(g))
        assert (out.data_ptr() == x.data_ptr()) == (fn is PrunedSwiGLUFunction)
    assert set(GATED_ACTIVATIONS.values()) == {PrunedSwiGLUFunction, PrunedGeGLUFunction}


def _pruned(fn, ws, bs, n_keep=9):
    """x -> the pruned MLP `fn` ("swiglu", "chunked" or "relu", the latter on ws[0] / ws[2]) of
    these weights, keeping n_keep channels."""
    from lemo import mlp

    if fn == "relu":
        return lambda x: mlp.PrunedReluFunction.apply(x, ws[0], bs[0], ws[2], bs[2], n_keep)
    if fn == "chunked":
        return lambda x: kernels.pruned_swiglu(x, *ws, *bs, n_keep=n_keep, chunk=16)
    return lambda x: mlp.PrunedSwiGLUFunction.apply(x, *ws, *bs, n_keep)


@pytest.mark.parametrize("fn", ["swiglu", "chunked", "relu"])
def test_checkpoint_first_forward_skips_scoring_and_keeps_gradients(fn, monkeypatch):
    """Under non-reentrant checkpointing with `lemo.mlp.checkpoint_contexts`, the first forward
    ranks no channels (its saved tensors would be dropped) and the recomputation ranks them once:
    output and input gradient equal the uncheckpointed function's exactly."""
    from torch.utils.checkpoint import checkpoint

    from lemo import mlp
    from lemo.kernels import pruned_mlp

    calls, scored = [], []
    real, real_sq, real_col = mlp.top_channels, kernels.gated_sq_sums, mlp.column_sq_sums

    def counted(score, n_keep):
        calls.append(n_keep)
        return real(score, n_keep)

    def counted_sq(*a, **k):
        scored.append(1)
        return real_sq(*a, **k)

    def counted_col(*a, **k):
        scored.append(1)
        return real_col(*a, **k)

    monkeypatch.setattr(mlp, "top_channels", counted)
    monkeypatch.setattr(pruned_mlp, "top_channels", counted)
    monkeypatch.setattr(kernels, "gated_sq_sums", counted_sq)
    monkeypatch.setattr(pruned_mlp, "gated_sq_sums", counted_sq)
    monkeypatch.setattr(mlp, "column_sq_sums", counted_col)
    f = _pruned(fn, *_weights(bias=True))
    x0, wt = torch.randn(2, 37, 24), torch.linspace(-1, 1, 24)
    x = x0.clone().requires_grad_()
    y_ref = f(x)
    assert len(calls) == 1
    (g_ref,) = torch.autograd.grad((y_ref * wt).sum(), [x])
    calls.clear()
    scored.clear()
    x = x0.clone().requires_grad_()
    y = checkpoint(f, x, use_reentrant=False, context_fn=mlp.checkpoint_contexts)
    assert calls == [] and scored == []  # the first forward: no scores, no ranking
    (g,) = torch.autograd.grad((y * wt).sum(), [x])
    assert len(calls) == 1 and scored  # the recomputation scores and ranks once
    assert torch.equal(y, y_ref) and torch.equal(g, g_ref)
    assert not mlp.saves_discarded()  # the flag does not outlive the forward


@pytest.mark.parametrize("fn", ["swiglu", "chunked", "relu"])
def test_discarded_saves_hold_no_storage_and_never_reach_a_backward(fn):
    """Inside `discarded_saves` the saved activations are storage-less placeholders of the
    real ones' shapes and dtypes (what a checkpoint compares them by); a backward that reaches
    them (a forward under the flag outside a checkpoint) raises instead of returning garbage."""
    from lemo import mlp

    f = _pruned(fn, *_weights())
    x = torch.randn(1, 30, 24, requires_grad=True)
    y_real = f(x)  # kept: its graph holds the saves
    real = y_real.grad_fn.saved_tensors
    with mlp.discarded_saves():
        assert mlp.saves_discarded()
        y_held = f(x)
    assert not mlp.saves_discarded()
    held = y_held.grad_fn.saved_tensors
    n_act = 1 if fn == "relu" else 3  # activations (and kept ids) before the weights
    for a, b in zip(real[:n_act], held[:n_act]):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert b.untyped_storage().nbytes() <= b.element_size()
    torch.autograd.grad(y_real.sum(), [x])  # the real saves: fine
    with pytest.raises(RuntimeError, match="placeholders"):
        torch.autograd.grad(y_held.sum(), [x])


def test_gated_sq_sums_triton_refuses_bad_buffers_before_launching():
    """The kernel's wrapper checks its arguments first: mismatched or column-strided inputs,
    buffers of the wrong dtype, shape or layout are one-line ValueErrors (nothing launched)."""
    pytest.importorskip("triton")
    from lemo.kernels.channel_scores import gated_sq_sums_triton

    g, u = torch.randn(8, 6), torch.randn(8, 6)
    ok = torch.zeros(6), torch.zeros(6)
    bad = [((g, torch.randn(8, 5), *ok), "must match"),
           ((g.t().contiguous().t(), u, *ok), "unit column stride"),
           ((g, u, torch.zeros(6, dtype=torch.float64), ok[1]), "float32"),
           ((g, u, torch.zeros(7), ok[1]), "float32"),
           ((g, u, torch.zeros(12)[::2], ok[1]), "contiguous")]
    for args, msg in bad:
        with pytest.raises(ValueError, match=msg):
            gated_sq_sums_triton(*args, rows=4)
    assert torch.equal(ok[0], torch.zeros(6))  # untouched
