"""LoRA projections that save their input once, in its own dtype (paper §4.4, selective load).

peft's LoRA `Linear` computes `base(x) + scaling · B(A(x.to(A.dtype)))`. With fp32 adapters on a
bf16 model (peft's default), autograd saves a fresh fp32 copy of x for every projection: an
eliminating layer's q, k and v projections store three fp32 copies of the same (k × D) rows, and
`o_proj` a fourth of its input. `lora_linear_group` computes the same function with the same
rounding steps but saves only x itself (shared by every projection of the same x, and 2 bytes an
element in bf16) and the rank-r activations x·Aᵀ; backward re-casts x. This is the memory
property of the selective-load kernel (`selective_load.ProjectRows`, whose backward is
`lora_linear_grads`) on the cuBLAS path, used by `lemo.layers` for the kept rows of eliminating
layers; dense layers keep peft's own forward.

Everything but the x·Aᵀ product (`AdapterInput`) is autograd's own ops, and one GEMM serves the
A matrices of every projection of the same x: at 4K tokens on an H100 the training step is bound
by the host's per-op cost, and Python-level backward functions cost the most there
(results/lemo_gpu/README.md).

Shapes: x (..., d_in), base weight (d_out, d_in), A (r, d_in), B (d_out, r) -> (..., d_out).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["lora_parts", "AdapterInput", "lora_linear", "lora_linear_group",
           "lora_linear_grads"]


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


class AdapterInput(torch.autograd.Function):
    """x·Aᵀ computed as peft does (x cast to the adapter dtype), saving x in its own dtype.

    The only hand-written piece of `lora_linear_group`: autograd's linear would save the
    adapter-dtype copy of x. Backward: dA = dxaᵀ·x (x re-cast), dx = (dxa·A) cast to x's dtype."""

    @staticmethod
    def forward(ctx, x, a):
        ctx.save_for_backward(x, a)
        return F.linear(x.to(a.dtype), a)

    @staticmethod
    def backward(ctx, g):
        x, a = ctx.saved_tensors
        dx = (g @ a).to(x.dtype) if ctx.needs_input_grad[0] else None
        da = None
        if ctx.needs_input_grad[1]:
            da = g.reshape(-1, g.shape[-1]).t() @ x.reshape(-1, x.shape[-1]).to(a.dtype)
        return dx, da


def lora_linear_group(linears: list[torch.nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    """`[m(x) for m in linears]` for nn.Linear / vanilla peft LoRA Linear modules sharing the
    input x (an attention block's q, k, v), saving x once in its own dtype.

    Composed of autograd's own ops (its C++ backward nodes: little host time per step) around
    one `AdapterInput` over the adapters' concatenated A matrices: one GEMM computes every
    adapter's x·Aᵀ. Outputs follow peft's rounding: base(x) in x's dtype, plus s·B(x·Aᵀ) in the
    adapter dtype, cast back to x's dtype. Modules this does not cover (dropout, DoRA, merged
    adapters) and calls without grad run their own forward."""
    parts = [lora_parts(m) for m in linears] if torch.is_grad_enabled() else [None]
    if any(p is None for p in parts):
        return [m(x) for m in linears]
    adapters = [(i, ad) for i, (_, ads) in enumerate(parts) for ad in ads]
    outs = [F.linear(x, base.weight, base.bias) for base, _ in parts]
    if not adapters:
        return outs
    a_all = [ad[0] for _, ad in adapters]
    if len({a.dtype for a in a_all}) > 1:
        return [m(x) for m in linears]
    xa = AdapterInput.apply(x, a_all[0] if len(a_all) == 1 else torch.cat(a_all))
    start = 0
    lora = [None] * len(outs)
    for i, (a, bw, bb, s) in adapters:
        r = a.shape[0]
        term = F.linear(xa[..., start:start + r], bw, bb) * s
        start += r
        lora[i] = outs[i] + term if lora[i] is None else lora[i] + term
    return [o if t is None else t.to(o.dtype) for o, t in zip(outs, lora)]


def lora_linear(linear: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`linear(x)` for an nn.Linear or a vanilla peft LoRA Linear, saving x once (see
    `lora_linear_group`); other modules (dropout, DoRA, merged adapters) run their own forward."""
    return lora_linear_group([linear], x)[0]
