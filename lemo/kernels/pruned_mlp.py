"""Token-chunked forward for MLP saved-channel pruning (paper §6.3; `lemo.mlp`).

`lemo.mlp.PrunedSwiGLUFunction` computes gate and up for all s tokens at once (two s × I buffers
beside the activation's blocks); at long inputs those buffers sit on top of every activation
saved so far when the last layers' MLPs run.

`ChunkedPrunedSwiGLU` computes the same function `chunk` tokens at a time:
1. for each chunk: gate/up/silu/product, the chunk's rows of y, and per-channel fp32 sums of
   squares of silu(gate) and up (`lemo.kernels.gated_sq_sums`);
2. rank channels by ‖silu(gate)‖₂ + ‖up‖₂ over all tokens, as the original;
3. recompute gate and up for the kept C channels only (x @ W[ch]ᵀ, a narrow GEMM), and save them.

The transient falls from 2·s·I to about 3·chunk·I elements, at the cost of the narrow GEMMs
(2·s·D·C FLOPs, (1 − prune ratio) of the gate/up GEMMs). The saved tensors and the backward
are those of `PrunedSwiGLUFunction`, reused as they are. The gradient w.r.t. x is approximate in
the same way. The channel scores sum the same SCORE_ROWS-token blocks in the same order as the
original when `chunk` is a multiple of SCORE_ROWS; the kept channels are then the same wherever
the chunk's GEMM rows equal the full GEMM's (on the CPU tests: always); a sum that rounds
differently can swap a near-tied channel.

Shapes: x (..., D), W_gate/W_up (I, D), W_down (D, I) -> (..., D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lemo.kernels import gated_sq_sums
from lemo.mlp import (
    SCORE_ROWS,
    PrunedSwiGLUFunction,
    _save_placeholders,
    channel_scores,
    saves_discarded,
    top_channels,
)

__all__ = ["ChunkedPrunedSwiGLU"]


class ChunkedPrunedSwiGLU(PrunedSwiGLUFunction):
    @staticmethod
    def forward(ctx, x, wg, wu, wd, bg, bu, bd, n_keep: int, chunk: int):
        x2 = x.reshape(-1, x.shape[-1])
        n, inter = x2.shape[0], wg.shape[0]
        y = torch.empty(n, wd.shape[0], dtype=x.dtype, device=x.device)
        sq_a = torch.zeros(inter, dtype=torch.float32, device=x.device)
        sq_u = torch.zeros(inter, dtype=torch.float32, device=x.device)
        act_dtype = x.dtype
        discard = saves_discarded()  # a checkpoint's first forward: the output only
        for start in range(0, n, chunk):
            xc = x2[start:start + chunk]
            g = F.linear(xc, wg, bg)
            u = F.linear(xc, wu, bu)
            if not discard:  # the unchunked forward's sums, block by block in the same order
                gated_sq_sums(g, u, F.silu, sq_a, sq_u, SCORE_ROWS, silu=True)
            a = F.silu(g)
            act_dtype = a.dtype
            y[start:start + chunk] = F.linear(a.mul_(u), wd, bd)
            del g, u, a
        ctx.x_shape = x.shape
        if discard:
            _save_placeholders(ctx, 2, n, n_keep, act_dtype, x.device, wg, wu, wd)
            return y.view(*x.shape[:-1], -1)
        # The original's scores, block by block in the same order when `chunk` is a multiple of
        # SCORE_ROWS, ranked in the activation dtype.
        ch = top_channels(channel_scores(sq_a, sq_u, act_dtype), n_keep)
        g_kept = F.linear(x2, wg[ch], None if bg is None else bg[ch])
        u_kept = F.linear(x2, wu[ch], None if bu is None else bu[ch])
        ctx.save_for_backward(g_kept, u_kept, ch, wg, wu, wd)
        return y.view(*x.shape[:-1], -1)

    @staticmethod
    def backward(ctx, gy):
        return (*PrunedSwiGLUFunction.backward(ctx, gy), None)
