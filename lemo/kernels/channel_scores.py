"""Fused channel scores for MLP saved-channel pruning (`lemo.mlp`, paper §6.3).

The pruned SwiGLU ranks the intermediate channels by ‖silu(gate)‖₂ + ‖up‖₂ over all tokens.
The PyTorch path (`lemo.mlp.column_sq_sums`) does it block by block: per SCORE_ROWS-token block
an out-of-place SiLU, two fp32 norms, their squares and two accumulations (at 32K tokens 16
blocks, ~100 launches per MLP call). `gated_sq_sums_triton` reads gate and up once:

1. stage 1, grid (row blocks of `rows` tokens, column tiles): per block the fp32 sums of
   silu(gate)² and up² over its rows, SiLU computed in fp32 and rounded to the input dtype first
   (as `F.silu` on that dtype returns it), into partials (row blocks, I);
2. stage 2, grid (column tiles): out += partials[0], then += partials[1], ... in row-block
   order, so a caller accumulating chunk by chunk (the token-chunked forward) adds the same
   blocks in the same order as one call over all rows (`rows` dividing the chunk).

The sums equal the fallback's to fp32 rounding (the order of additions inside a block differs,
and the fallback squares a rounded norm). Shapes: gate, up (N, I) -> accumulates into
sq_act, sq_up (I,) float32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from lemo.kernels._triton import num_warps

__all__ = ["gated_sq_sums_triton"]

_SUB = 32  # rows loaded per step inside a block
_COLS = 128  # channels per program


@triton.jit
def _partials_kernel(G, U, PA, PU, n_rows, n_cols, stride_g, stride_u, rows,
                     SUB: tl.constexpr, COLS: tl.constexpr):
    rb = tl.program_id(0)
    cols = tl.program_id(1) * COLS + tl.arange(0, COLS)
    cmask = cols < n_cols
    acc_a = tl.zeros([COLS], dtype=tl.float32)
    acc_u = tl.zeros([COLS], dtype=tl.float32)
    start = rb * rows
    end = tl.minimum(start + rows, n_rows)
    for r0 in range(start, end, SUB):
        r = r0 + tl.arange(0, SUB)
        m = (r < end)[:, None] & cmask[None, :]
        g = tl.load(G + r[:, None] * stride_g + cols[None, :], mask=m, other=0.0)
        u = tl.load(U + r[:, None] * stride_u + cols[None, :], mask=m, other=0.0).to(tl.float32)
        g32 = g.to(tl.float32)
        a = (g32 * tl.sigmoid(g32)).to(g.dtype).to(tl.float32)  # F.silu in g's dtype
        acc_a += tl.sum(a * a, axis=0)
        acc_u += tl.sum(u * u, axis=0)
    tl.store(PA + rb * n_cols + cols, acc_a, mask=cmask)
    tl.store(PU + rb * n_cols + cols, acc_u, mask=cmask)


@triton.jit
def _accumulate_kernel(PA, PU, OA, OU, n_blocks, n_cols, COLS: tl.constexpr):
    cols = tl.program_id(0) * COLS + tl.arange(0, COLS)
    cmask = cols < n_cols
    acc_a = tl.load(OA + cols, mask=cmask, other=0.0)
    acc_u = tl.load(OU + cols, mask=cmask, other=0.0)
    for b in range(0, n_blocks):  # in row-block order
        acc_a += tl.load(PA + b * n_cols + cols, mask=cmask, other=0.0)
        acc_u += tl.load(PU + b * n_cols + cols, mask=cmask, other=0.0)
    tl.store(OA + cols, acc_a, mask=cmask)
    tl.store(OU + cols, acc_u, mask=cmask)


def gated_sq_sums_triton(gate: torch.Tensor, up: torch.Tensor, sq_act: torch.Tensor,
                         sq_up: torch.Tensor, rows: int) -> None:
    """sq_act += Σ_rows silu(gate)², sq_up += Σ_rows up² (fp32, in place), `rows` tokens a
    block. gate/up (N, I) with unit column stride; sq_act/sq_up (I,) float32 contiguous."""
    n, i = gate.shape
    if up.shape != gate.shape or gate.stride(1) != 1 or up.stride(1) != 1:
        raise ValueError(f"gated_sq_sums: gate {tuple(gate.shape)} and up {tuple(up.shape)} "
                         "must match, with unit column stride")
    if not (sq_act.is_contiguous() and sq_up.is_contiguous()
            and sq_act.dtype == sq_up.dtype == torch.float32
            and sq_act.shape == sq_up.shape == (i,)):
        raise ValueError(f"gated_sq_sums: sq_act / sq_up must be contiguous float32 ({i},)")
    if max(gate.stride(0), up.stride(0)) * n >= 2 ** 31:  # the kernel's offsets are int32
        raise ValueError(f"gated_sq_sums: {n} x {i} rows too large for int32 offsets")
    if n == 0:
        return
    n_blocks = triton.cdiv(n, rows)
    pa = torch.empty(n_blocks, i, dtype=torch.float32, device=gate.device)
    pu = torch.empty_like(pa)
    _partials_kernel[(n_blocks, triton.cdiv(i, _COLS))](
        gate, up, pa, pu, n, i, gate.stride(0), up.stride(0), rows, SUB=_SUB, COLS=_COLS,
        num_warps=num_warps(4))
    _accumulate_kernel[(triton.cdiv(i, _COLS),)](pa, pu, sq_act, sq_up, n_blocks, i, COLS=_COLS,
                                                 num_warps=num_warps(4))
