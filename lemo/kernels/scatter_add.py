"""In-place scatter-add epilogue (paper §4.4): the `o_proj` output of an eliminating layer is
added into the residual stream at the kept positions only.

`ScatterAddRows`: out = residual with out[b, idx[b]] += src[b] (idx rows unique), written by one
Triton pass over the k kept rows (each element has a single writer, so no atomics). With
`inplace=True` the residual buffer itself is updated (autograd's version counter is bumped, so a
caller that saved it for backward gets autograd's usual error instead of a wrong gradient);
otherwise the residual is cloned first, like the fallback. Backward stores nothing but idx:
d residual = d out (passed through, no copy), d src = d out[b, idx[b]] (re-gathered), so no
padded (b, s, d) copy of src ever exists in either direction.

Shapes: residual (b, s, d), idx (b, k) int64, src (b, k, d) -> (b, s, d).
"""

from __future__ import annotations

import torch

from lemo.kernels.selective_load import gather_rows_triton, scatter_rows

__all__ = ["ScatterAddRows", "scatter_add_rows_triton"]


class ScatterAddRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, residual, idx, src, inplace):
        out = residual if inplace else residual.clone()
        # Round src to the residual dtype first, exactly like the fallback's `src.to(dtype)`.
        scatter_rows(out, idx, src.to(residual.dtype), add=True)
        if inplace:
            ctx.mark_dirty(residual)
        ctx.save_for_backward(idx)
        ctx.src_dtype = src.dtype
        return out

    @staticmethod
    def backward(ctx, dout):
        (idx,) = ctx.saved_tensors
        d_res = dout if ctx.needs_input_grad[0] else None
        d_src = None
        if ctx.needs_input_grad[2]:
            d_src = gather_rows_triton(dout, idx).to(ctx.src_dtype)
        return d_res, None, d_src, None


def scatter_add_rows_triton(residual: torch.Tensor, idx: torch.Tensor, src: torch.Tensor,
                            inplace: bool = False) -> torch.Tensor:
    b, s, d = residual.shape
    if idx.shape[0] != b or src.shape != (b, idx.shape[1], d):
        raise ValueError(f"scatter_add_rows: residual {tuple(residual.shape)}, idx "
                         f"{tuple(idx.shape)} and src {tuple(src.shape)} do not match "
                         "(need (b, s, d), (b, k), (b, k, d))")
    return ScatterAddRows.apply(residual, idx, src, inplace)
