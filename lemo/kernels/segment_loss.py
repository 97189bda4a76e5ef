"""Segmented linear + cross-entropy (paper §4.4 "segment-based peak cutting").

`SegmentedLMLoss` computes mean CE(hidden @ weightᵀ, labels) `segment` rows at a time:

- forward, per segment: one GEMM into a (segment × V) logits buffer in the hidden dtype, then a
  Triton kernel reads each row once (online max / sum-exp) and writes the row's log-sum-exp and
  loss; with final-logit soft-capping (`softcap`, Gemma 2) each logit x is read as
  cap·tanh(x / cap), and backward multiplies by its derivative 1 − tanh². Only the per-row
  lse (N floats) is saved, never logits;
- backward, per segment: recompute the logits GEMM, a Triton kernel overwrites them in place
  with d logits = (softmax − onehot)·g/count, then dh = d logits @ W (and dW += d logitsᵀ @ h
  when the head is trained, accumulated in fp32).

So at most one (segment × V) buffer exists in either pass (the fallback holds the logits, their
fp32 upcast and the fp32 log-softmax). Shapes: hidden (..., d), weight (V, d), labels (...)
int64 already shifted; rows labelled `ignore_index` contribute neither loss nor count.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from lemo.kernels._triton import interpreting, num_warps

__all__ = ["SegmentedLMLoss", "segmented_lm_loss_triton"]


@triton.jit
def _tanh(x):
    return 2.0 * tl.sigmoid(2.0 * x) - 1.0


@triton.jit
def _ce_fwd_kernel(logits_ptr, labels_ptr, lse_ptr, loss_ptr, V, stride_row, ignore_index, cap,
                   BLOCK_V: tl.constexpr, CAP: tl.constexpr):
    r = tl.program_id(0).to(tl.int64)
    row = logits_ptr + r * stride_row
    y = tl.load(labels_ptr + r)
    m = -float("inf")
    s = 0.0
    for v0 in range(0, V, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V)
        x = tl.load(row + cols, mask=cols < V, other=0.0).to(tl.float32)
        if CAP:
            x = cap * _tanh(x / cap)
        x = tl.where(cols < V, x, -float("inf"))
        m_new = tl.maximum(m, tl.max(x, axis=0))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), axis=0)
        m = m_new
    lse = m + tl.log(s)
    valid = y != ignore_index
    target = tl.load(row + tl.where(valid, y, 0)).to(tl.float32)
    if CAP:
        target = cap * _tanh(target / cap)
    tl.store(lse_ptr + r, lse)
    tl.store(loss_ptr + r, tl.where(valid, lse - target, 0.0))


@triton.jit
def _ce_bwd_kernel(logits_ptr, labels_ptr, lse_ptr, scale_ptr, V, stride_row, ignore_index, cap,
                   BLOCK_V: tl.constexpr, CAP: tl.constexpr):
    r = tl.program_id(0).to(tl.int64)
    row = logits_ptr + r * stride_row
    y = tl.load(labels_ptr + r)
    lse = tl.load(lse_ptr + r)
    scale = tl.load(scale_ptr)
    scale = tl.where(y != ignore_index, scale, 0.0)
    for v0 in range(0, V, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V)
        mask = cols < V
        x = tl.load(row + cols, mask=mask, other=0.0).to(tl.float32)
        if CAP:  # d cap·tanh(x / cap) / dx = 1 − tanh²
            t = _tanh(x / cap)
            p = tl.exp(cap * t - lse)
            p = tl.where(cols == y, p - 1.0, p) * scale * (1.0 - t * t)
        else:
            p = tl.exp(x - lse)
            p = tl.where(cols == y, p - 1.0, p) * scale
        tl.store(row + cols, p.to(logits_ptr.dtype.element_ty), mask=mask)


def _block_v(v: int) -> int:
    return min(triton.next_power_of_2(v), 256 if interpreting() else 4096)


class SegmentedLMLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, labels, segment, ignore_index, softcap=None):
        d = hidden.shape[-1]
        h = hidden.reshape(-1, d)
        y = labels.reshape(-1).contiguous()
        n, v = h.shape[0], weight.shape[0]
        lse = torch.empty(n, dtype=torch.float32, device=h.device)
        losses = torch.empty(n, dtype=torch.float32, device=h.device)
        block = _block_v(v)
        for start in range(0, n, segment):
            stop = min(start + segment, n)
            logits = h[start:stop] @ weight.t()
            _ce_fwd_kernel[(stop - start,)](logits, y[start:], lse[start:], losses[start:], v,
                                            logits.stride(0), ignore_index, float(softcap or 1.0),
                                            BLOCK_V=block, CAP=bool(softcap),
                                            num_warps=num_warps(8))
            del logits
        count = (y != ignore_index).sum().clamp_min(1)
        ctx.save_for_backward(hidden, weight, y, lse, count)
        ctx.segment, ctx.ignore_index, ctx.softcap = segment, ignore_index, softcap
        return losses.sum() / count

    @staticmethod
    def backward(ctx, g):
        hidden, weight, y, lse, count = ctx.saved_tensors
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        d = hidden.shape[-1]
        h = hidden.reshape(-1, d)
        n, v = h.shape[0], weight.shape[0]
        scale = (g.float() / count).reshape(1)
        dh = torch.empty_like(h) if need_h else None
        dw = torch.zeros(weight.shape, dtype=torch.float32, device=h.device) if need_w else None
        block = _block_v(v)
        for start in range(0, n, ctx.segment):
            stop = min(start + ctx.segment, n)
            hs = h[start:stop]
            dlogits = hs @ weight.t()  # recomputed, then overwritten in place with d logits
            _ce_bwd_kernel[(stop - start,)](dlogits, y[start:], lse[start:], scale, v,
                                            dlogits.stride(0), ctx.ignore_index,
                                            float(ctx.softcap or 1.0), BLOCK_V=block,
                                            CAP=bool(ctx.softcap), num_warps=num_warps(8))
            if need_h:
                torch.mm(dlogits, weight.to(dlogits.dtype), out=dh[start:stop])
            if need_w:
                dw += (dlogits.t() @ hs).float()
            del dlogits
        return (dh.view(hidden.shape) if need_h else None,
                dw.to(weight.dtype) if need_w else None, None, None, None, None)


def segmented_lm_loss_triton(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                             segment: int = 2048, ignore_index: int = -100,
                             softcap: float | None = None) -> torch.Tensor:
    if labels.shape != hidden.shape[:-1]:
        raise ValueError(f"labels {tuple(labels.shape)} do not match hidden "
                         f"{tuple(hidden.shape)} (need labels of shape hidden.shape[:-1])")
    if segment < 1:
        raise ValueError(f"segment must be >= 1, got {segment}")
    if softcap is not None and softcap <= 0:
        raise ValueError(f"softcap must be > 0, got {softcap}")
    return SegmentedLMLoss.apply(hidden, weight, labels, segment, ignore_index, softcap)
