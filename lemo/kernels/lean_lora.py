"""LoRA projections that save their input once, in its own dtype (paper §4.4, selective load).

peft's LoRA `Linear` computes `base(x) + scaling · B(A(x.to(A.dtype)))`. With fp32 adapters on a
bf16 model (peft's default), autograd saves a fresh fp32 copy of x for every projection: an
eliminating layer's q, k and v projections store three fp32 copies of the same (k × D) rows, and
`o_proj` a fourth of its input. `LoraLinear` computes the same function with the same rounding
steps but saves only x itself (shared by every projection of the same x, and 2 bytes an element
in bf16) and the rank-r activation x·Aᵀ; backward re-casts x. This is the memory property of
the selective-load kernel (`selective_load.ProjectRows`) on the cuBLAS path, used by
`lemo.layers` for the kept rows of eliminating layers; dense layers keep peft's own forward.

Shapes: x (..., d_in), base weight (d_out, d_in), A (r, d_in), B (d_out, r) -> (..., d_out).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["lora_parts", "LoraLinear", "lora_linear", "lora_linear_grads"]


def lora_parts(linear: torch.nn.Module):
    """(base nn.Linear, [(A, B, B-bias, scaling)]) when `linear` is an nn.Linear or a vanilla,
    unmerged peft LoRA Linear without active dropout; None for anything else (the caller then
    uses the module's own forward)."""
    if isinstance(linear, torch.nn.Linear):
        return linear, []
    base = getattr(linear, "base_layer", None)
    if not isinstance(base, torch.nn.Linear) or not hasattr(linear, "lora_A"):
        return None
    if linear.disable_adapters or linear.merged or getattr(linear, "lora_variant", None):
        return None
    adapters = []
    for name in linear.active_adapters:
        if name not in linear.lora_A.keys():
            continue
        drop = linear.lora_dropout[name]
        if isinstance(drop, torch.nn.Dropout) and drop.p > 0 and drop.training:
            return None
        if not isinstance(drop, (torch.nn.Identity, torch.nn.Dropout)):
            return None
        a, bm = linear.lora_A[name], linear.lora_B[name]
        adapters.append((a.weight, bm.weight, bm.bias, float(linear.scaling[name])))
    return base, adapters


class LoraLinear(torch.autograd.Function):
    """y = base(x) + Σ s·B(A(x.to(A.dtype))), accumulated like peft (in the adapter dtype, then
    cast back to x's dtype); saves x, the weights and x·Aᵀ (..., r) per adapter."""

    @staticmethod
    def forward(ctx, x, weight, bias, n_adapters, *lora):
        y = F.linear(x, weight, bias)
        out = y
        xas = []
        for t in range(n_adapters):
            a, bw, bb, s = lora[4 * t: 4 * t + 4]
            xa = F.linear(x.to(a.dtype), a)
            out = out + F.linear(xa, bw, bb) * s
            xas.append(xa)
        ctx.n_adapters = n_adapters
        ctx.scalings = [lora[4 * t + 3] for t in range(n_adapters)]
        ctx.has_lora_bias = [lora[4 * t + 2] is not None for t in range(n_adapters)]
        loras = [lora[4 * t + u] for t in range(n_adapters) for u in (0, 1)]
        ctx.save_for_backward(x, weight, *loras, *xas)
        return out.to(y.dtype)

    @staticmethod
    def backward(ctx, dy):
        x, weight, *rest = ctx.saved_tensors
        na = ctx.n_adapters
        need = ctx.needs_input_grad
        dx, grads = lora_linear_grads(
            dy.reshape(-1, dy.shape[-1]), x.reshape(-1, x.shape[-1]), weight,
            rest[:2 * na], rest[2 * na:], ctx.scalings, ctx.has_lora_bias, need[0], need[1:])
        return (None if dx is None else dx.view(*x.shape[:-1], -1), *grads)


def lora_linear_grads(dy2, x2, weight, loras, xas, scalings, has_lora_bias, need_dx, need):
    """Backward of y = x2·Wᵀ (+ b) + Σ_t s_t·((x2·A_tᵀ)·B_tᵀ + b_t) over flattened rows, with
    peft's rounding steps (the adapter terms in the adapter dtype). dy2 (m, d_out); x2 (m, d_in),
    or None when no weight gradient is needed; loras [A_0, B_0, A_1, ...]; xas [x2·A_tᵀ (m, r)];
    `need` flags (weight, bias, n_adapters, A_0, B_0, b_0, scaling_0, A_1, ...). Returns
    (dx2 (m, d_in) or None, gradients in `need`'s order)."""
    grads = [None] * len(need)
    dx = dy2 @ weight.to(dy2.dtype) if need_dx else None
    if need[0]:
        grads[0] = (dy2.t() @ x2.to(dy2.dtype)).to(weight.dtype)
    if need[1]:
        grads[1] = dy2.sum(0).to(weight.dtype)
    for t in range(len(xas)):
        a, bw = loras[2 * t], loras[2 * t + 1]
        dup = dy2.to(bw.dtype) * scalings[t]  # (m, d_out) in the adapter dtype, as peft's sum is
        d_xa = dup @ bw  # (m, r)
        if need[3 + 4 * t]:
            grads[3 + 4 * t] = d_xa.t() @ x2.to(a.dtype)
        if need[4 + 4 * t]:
            grads[4 + 4 * t] = dup.t() @ xas[t].reshape(-1, xas[t].shape[-1])
        if has_lora_bias[t] and need[5 + 4 * t]:
            grads[5 + 4 * t] = dup.sum(0)
        if dx is not None:
            dx = dx + (d_xa @ a).to(dx.dtype)
    return dx, grads


def lora_linear(linear: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`linear(x)` for an nn.Linear or a vanilla peft LoRA Linear, saving x once (see module
    docstring); other modules (dropout, DoRA, merged adapters) run their own forward."""
    parts = lora_parts(linear)
    if parts is None or not torch.is_grad_enabled():
        return linear(x)
    base, adapters = parts
    flat = [v for ad in adapters for v in ad]
    return LoraLinear.apply(x, base.weight, base.bias, len(adapters), *flat)
