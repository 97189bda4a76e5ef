"""Token-chunked forward for MLP saved-channel pruning (paper §6.3; `lemo.mlp`).

`lemo.mlp.PrunedSwiGLUFunction` computes gate, up, silu(gate) and their product for all s tokens
at once, ranks the channels, then keeps 20% of them. On the H100 those four full-width
(s × I) buffers are what LeMo's memory peak sits on: the peak is reached inside the last layers'
MLP forward, on top of every activation saved so far (`results/lemo_gpu/peak_trace`).

`ChunkedPrunedSwiGLU` computes the same function `chunk` tokens at a time:
1. for each chunk: gate/up/silu/product, the chunk's rows of y, and per-channel sums of squares of
   silu(gate) and up (fp32);
2. rank channels by ‖silu(gate)‖₂ + ‖up‖₂ over all tokens, as the original;
3. recompute gate and up for the kept C channels only (x @ W[ch]ᵀ, a narrow GEMM), and save them.

The transient memory falls from 4·s·I to 4·chunk·I elements, at the cost of the narrow GEMMs
(2·s·D·C FLOPs, about (1 − prune ratio) of the gate/up GEMMs). The saved tensors and the backward
are those of `PrunedSwiGLUFunction`, reused as they are. The gradient w.r.t. x is approximate in
the same way. The norms are accumulated in fp32 per chunk and ranked in the activation dtype like
the original's; in bf16 a norm that rounds differently can still swap a near-tied channel.

Shapes: x (..., D), W_gate/W_up (I, D), W_down (D, I) -> (..., D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lemo.mlp import PrunedSwiGLUFunction

__all__ = ["ChunkedPrunedSwiGLU"]


class ChunkedPrunedSwiGLU(PrunedSwiGLUFunction):
    @staticmethod
    def forward(ctx, x, wg, wu, wd, bg, bu, bd, n_keep: int, chunk: int):
        x2 = x.reshape(-1, x.shape[-1])
        n, inter = x2.shape[0], wg.shape[0]
        y = torch.empty(n, wd.shape[0], dtype=x.dtype, device=x.device)
        sq_a = torch.zeros(inter, dtype=torch.float32, device=x.device)
        sq_u = torch.zeros(inter, dtype=torch.float32, device=x.device)
        for start in range(0, n, chunk):
            xc = x2[start:start + chunk]
            g = F.linear(xc, wg, bg)
            u = F.linear(xc, wu, bu)
            a = F.silu(g)
            sq_a += a.float().square().sum(0)
            sq_u += u.float().square().sum(0)
            y[start:start + chunk] = F.linear(a * u, wd, bd)
            del g, u, a
        # Rank in the activation dtype, as `a.norm(dim=0) + u.norm(dim=0)` does in the original,
        # so bf16 ties resolve the same way and the same channels are kept.
        score = sq_a.sqrt().to(x.dtype) + sq_u.sqrt().to(x.dtype)
        ch = score.topk(n_keep).indices.sort().values
        g_kept = F.linear(x2, wg[ch], None if bg is None else bg[ch])
        u_kept = F.linear(x2, wu[ch], None if bu is None else bu[ch])
        ctx.x_shape = x.shape
        ctx.save_for_backward(g_kept, u_kept, ch, wg, wu, wd)
        return y.view(*x.shape[:-1], -1)

    @staticmethod
    def backward(ctx, gy):
        return (*PrunedSwiGLUFunction.backward(ctx, gy), None)
