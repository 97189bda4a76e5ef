"""Permutation-free selective load (paper §4.4): projections that read kept rows in place.

`rows_matmul(x, idx, w)` is one GEMM whose A-operand rows are fetched through the index:
y[b·k + i] = x[b, idx[b, i]] @ wᵀ, so the q/k/v projections of an eliminating layer never build a
gathered copy of the hidden states. `ProjectRows` wraps it in autograd for an `nn.Linear` or a
vanilla peft LoRA `Linear` (y = base(x_g) + Σ_adapters scaling · B(A(x_g))):

- saved for backward: x itself (shared by the q, k and v projections of a layer, and usually
  alive anyway as the layer input), idx and the rank-r LoRA activation x_g·Aᵀ (k × r); never the
  gathered (k × d) rows, which backward re-gathers when a weight gradient needs them;
- dx is the (b, s, d) gradient with rows idx filled and the dropped rows zero.

Shapes: x (b, s, d), idx (b, k) int64 with values in [0, s), w (n, d) -> (b, k, n).
`GatherRows` is the plain row gather (b, s, d) -> (b, k, d) with a scatter backward.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from lemo.kernels._triton import dot_precision, interpreting, num_warps
from lemo.kernels.lean_lora import lora_linear_grads, lora_parts

__all__ = ["rows_matmul", "gather_rows_triton", "scatter_rows", "project_rows_triton",
           "lora_parts", "ProjectRows", "GatherRows"]


@triton.jit
def _gather_rows_kernel(x_ptr, idx_ptr, out_ptr, KEPT, D, sxb, sxs, sxd,
                        BLOCK_D: tl.constexpr):
    r = tl.program_id(0).to(tl.int64)  # output row = b·k + i
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask = cols < D
    src = tl.load(idx_ptr + r)
    bat = r // KEPT
    vals = tl.load(x_ptr + bat * sxb + src * sxs + cols * sxd, mask=mask)
    tl.store(out_ptr + r * D + cols, vals, mask=mask)


@triton.jit
def _scatter_rows_kernel(src_ptr, idx_ptr, out_ptr, KEPT, D, sob, sos, sod,
                         BLOCK_D: tl.constexpr, ADD: tl.constexpr):
    r = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask = cols < D
    dst = tl.load(idx_ptr + r)
    bat = r // KEPT
    ptrs = out_ptr + bat * sob + dst * sos + cols * sod
    vals = tl.load(src_ptr + r * D + cols, mask=mask)
    if ADD:
        # Rows of idx are unique, so each output element has one writer: no atomics needed.
        vals = (tl.load(ptrs, mask=mask).to(tl.float32) + vals.to(tl.float32))
    tl.store(ptrs, vals.to(out_ptr.dtype.element_ty), mask=mask)


def _row_launch(rows: int, d: int) -> tuple[tuple[int, int], int]:
    block = min(triton.next_power_of_2(d), 64 if interpreting() else 1024)
    return (rows, triton.cdiv(d, block)), block


def gather_rows_triton(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (b, s, d), idx (b, k) -> contiguous (b, k, d) = x[b, idx[b]] (no autograd)."""
    b, kept = idx.shape
    d = x.shape[-1]
    out = torch.empty(b, kept, d, dtype=x.dtype, device=x.device)
    if out.numel():
        grid, block = _row_launch(b * kept, d)
        _gather_rows_kernel[grid](x, idx.contiguous(), out, kept, d, *x.stride(), BLOCK_D=block,
                                  num_warps=num_warps(4))
    return out


def scatter_rows(out: torch.Tensor, idx: torch.Tensor, src: torch.Tensor,
                 add: bool) -> torch.Tensor:
    """In place: out[b, idx[b]] = src[b] (or += with `add`); idx rows unique. Returns out."""
    b, kept = idx.shape
    d = out.shape[-1]
    src = src.contiguous()
    if src.numel():
        grid, block = _row_launch(b * kept, d)
        _scatter_rows_kernel[grid](src, idx.contiguous(), out, kept, d, *out.stride(),
                                   BLOCK_D=block, ADD=add, num_warps=num_warps(4))
    return out


@triton.jit
def _rows_matmul_kernel(
    x_ptr, idx_ptr, w_ptr, bias_ptr, y_ptr,
    M, N, K, KEPT, sxb, sxs, sxk, swn, swk,
    HAS_BIAS: tl.constexpr, UPCAST: tl.constexpr, PREC: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP_M: tl.constexpr,
):
    pid = tl.program_id(0)
    num_m = tl.cdiv(M, BM)
    num_n = tl.cdiv(N, BN)
    # Grouped program order: GROUP_M row tiles share each weight tile while it sits in L2.
    width = GROUP_M * num_n
    group = pid // width
    first_m = group * GROUP_M
    size_m = tl.minimum(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % width) % size_m
    pid_n = (pid % width) // size_m

    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BN + tl.arange(0, BN)
    mmask = rm < M
    nmask = rn < N
    # The selective load: each output row's A-row is x[batch, idx[row]], read in place.
    src = tl.load(idx_ptr + rm, mask=mmask, other=0)
    bat = rm // KEPT
    a_rows = x_ptr + bat.to(tl.int64) * sxb + src.to(tl.int64) * sxs
    w_cols = w_ptr + rn.to(tl.int64) * swn
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, K, BK):
        rk = k0 + tl.arange(0, BK)
        kmask = rk < K
        a = tl.load(a_rows[:, None] + rk[None, :] * sxk, mask=mmask[:, None] & kmask[None, :],
                    other=0.0)
        w = tl.load(w_cols[None, :] + rk[:, None] * swk, mask=kmask[:, None] & nmask[None, :],
                    other=0.0)
        if UPCAST:
            a = a.to(tl.float32)
            w = w.to(tl.float32)
        else:
            w = w.to(a.dtype)
        acc = tl.dot(a, w, acc, input_precision=PREC)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + rn, mask=nmask, other=0.0).to(tl.float32)[None, :]
    y = y_ptr + rm.to(tl.int64)[:, None] * N + rn[None, :]
    tl.store(y, acc.to(y_ptr.dtype.element_ty), mask=mmask[:, None] & nmask[None, :])


def _mm_configs() -> list[triton.Config]:
    out = []
    for bm, bn, bk, warps, stages in [(128, 128, 64, 8, 3), (128, 64, 64, 4, 4),
                                      (64, 128, 64, 4, 4), (128, 256, 64, 8, 3),
                                      (64, 64, 64, 4, 4), (64, 32, 64, 4, 4)]:
        out.append(triton.Config({"BM": bm, "BN": bn, "BK": bk, "GROUP_M": 8},
                                 num_warps=warps, num_stages=stages))
    return out


_rows_matmul_tuned = triton.autotune(configs=_mm_configs(), key=["N", "K", "HAS_BIAS"])(
    _rows_matmul_kernel)


def rows_matmul(x: torch.Tensor, idx: torch.Tensor, w: torch.Tensor,
                bias: torch.Tensor | None = None, out_dtype: torch.dtype | None = None
                ) -> torch.Tensor:
    """(b·k, n) = x[b, idx[b]] @ wᵀ (+ bias), fp32 accumulation, rows read through idx."""
    b, kept = idx.shape
    kdim = x.shape[-1]
    n = w.shape[0]
    if w.shape[1] != kdim:
        raise ValueError(f"weight {tuple(w.shape)} does not take inputs of width {kdim}")
    m = b * kept
    fp32 = torch.float32 in (x.dtype, w.dtype)
    y = torch.empty(m, n, dtype=out_dtype or x.dtype, device=x.device)
    if m == 0:
        return y
    args = (x, idx.contiguous(), w, bias if bias is not None else w, y, m, n, kdim, kept,
            *x.stride(), *w.stride())
    meta = dict(HAS_BIAS=bias is not None, UPCAST=interpreting() or fp32,
                PREC="ieee" if fp32 else dot_precision(x))
    if interpreting():
        grid = (triton.cdiv(m, 32) * triton.cdiv(n, 32),)
        _rows_matmul_kernel[grid](*args, **meta, BM=32, BN=32, BK=32, GROUP_M=4, num_warps=1)
    else:
        def grid(c):
            return (triton.cdiv(m, c["BM"]) * triton.cdiv(n, c["BN"]),)
        _rows_matmul_tuned[grid](*args, **meta)
    return y


class ProjectRows(torch.autograd.Function):
    """y = base(x_g) + Σ s·(x_g Aᵀ) Bᵀ (+ s·b_B) with x_g = x[b, idx[b]], read in place."""

    @staticmethod
    def forward(ctx, x, idx, weight, bias, n_adapters, *lora):
        b, kept = idx.shape
        n = weight.shape[0]
        y = rows_matmul(x, idx, weight, bias)
        xas = []
        for t in range(n_adapters):
            a, bw, bb, s = lora[4 * t: 4 * t + 4]
            # peft casts the LoRA input to the adapter dtype (fp32 adapters on a bf16 model).
            xa = rows_matmul(x, idx, a, out_dtype=a.dtype)
            up = xa @ bw.t()
            if bb is not None:
                up = up + bb
            y = (y.to(up.dtype) + up * s) if up.dtype != y.dtype else y.add_(up, alpha=s)
            xas.append(xa)
        ctx.n_adapters = n_adapters
        ctx.scalings = [lora[4 * t + 3] for t in range(n_adapters)]
        ctx.has_lora_bias = [lora[4 * t + 2] is not None for t in range(n_adapters)]
        ctx.x_shape = x.shape
        loras = [lora[4 * t + u] for t in range(n_adapters) for u in (0, 1)]
        ctx.save_for_backward(x, idx, weight, *loras, *xas)
        return y.to(x.dtype).view(b, kept, n)

    @staticmethod
    def backward(ctx, dy):
        x, idx, weight, *rest = ctx.saved_tensors
        na = ctx.n_adapters
        loras, xas = rest[:2 * na], rest[2 * na:]
        b, kept = idx.shape
        dy2 = dy.reshape(b * kept, -1)
        need = ctx.needs_input_grad
        need_xg = need[2] or any(need[5 + 4 * t] for t in range(na))
        xg = gather_rows_triton(x, idx).view(b * kept, -1) if need_xg else None
        dxk, grads = lora_linear_grads(dy2, xg, weight, loras, xas, ctx.scalings,
                                       ctx.has_lora_bias, need[0], need[2:])
        grads = [None, None, *grads]
        if dxk is not None:
            dx = torch.zeros(ctx.x_shape, dtype=x.dtype, device=x.device)
            grads[0] = scatter_rows(dx, idx, dxk.view(b, kept, -1), add=False)
        return tuple(grads)


def project_rows_triton(linear: torch.nn.Module, x: torch.Tensor,
                        idx: torch.Tensor) -> torch.Tensor | None:
    """`linear(x[b, idx[b]])` through `ProjectRows`; None when the module is not supported."""
    parts = lora_parts(linear)
    if parts is None:
        return None
    base, adapters = parts
    flat = [v for ad in adapters for v in ad]
    return ProjectRows.apply(x, idx, base.weight, base.bias, len(adapters), *flat)


class GatherRows(torch.autograd.Function):
    """x (b, s, d), idx (b, k) -> x[b, idx[b]]; backward scatter-adds into zeros, so repeated
    indices accumulate their gradients like `torch.gather`'s."""

    @staticmethod
    def forward(ctx, x, idx):
        ctx.save_for_backward(idx)
        ctx.x_shape = x.shape
        return gather_rows_triton(x, idx)

    @staticmethod
    def backward(ctx, dy):
        (idx,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None
        dx = torch.zeros(ctx.x_shape, dtype=dy.dtype, device=dy.device)
        return dx.scatter_add_(1, idx.unsqueeze(-1).expand(-1, -1, dy.shape[-1]), dy), None
