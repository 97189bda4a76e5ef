"""MLP saved-channel pruning (paper §6.3 / AE `PrunedLlamaMLPFunction`).

The forward pass is dense and exact. For backward, only the top (1 − p) intermediate channels,
ranked by ‖silu(gate)‖₂ + ‖up‖₂ over all tokens (Gemma's GeGLU: ‖gelu(gate)‖₂ + ‖up‖₂; ReLU
MLPs: ‖relu(fc1)‖₂), are saved; the
gradient w.r.t. the MLP input uses those channels only, so **it is approximate** (exactly the
gradient of the MLP restricted to the kept channels). The MLP weights must be frozen (LoRA on
attention), as no weight gradient is computed. Shapes: x (..., D), gate/up (N, I), kept C channels.

Saved per token: 2·C (SwiGLU) or C (ReLU) values instead of ~4·I; the input x is not saved (the
gradient w.r.t. x needs only the kept channels and the frozen weights; its shape is kept).
"""

from __future__ import annotations

import contextlib
import threading

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PrunedSwiGLUFunction", "PrunedGeGLUFunction", "PrunedReluFunction",
           "GATED_ACTIVATIONS", "channel_pruned_mlp", "channel_pruned_ffn", "column_sq_sums",
           "channel_scores", "top_channels", "discarded_saves", "saves_discarded",
           "checkpoint_contexts"]

# Non-reentrant activation checkpointing (`lemo.models.set_checkpointing`) runs each layer twice:
# the first forward's saved tensors are dropped (the checkpoint keeps only their shapes, dtypes
# and devices, to check the recomputation against), and the backward reads the recomputed ones.
# Inside the first forward (`discarded_saves`, entered through the checkpoint's `context_fn`,
# `checkpoint_contexts`) the pruned functions skip the channel scores and gathers that nothing
# would read, and save storage-less placeholders of the same shapes and dtypes; the output, the
# recomputation and so the gradients are unchanged.
_STATE = threading.local()


@contextlib.contextmanager
def discarded_saves():
    """Within: this thread's forward passes run where saved tensors are discarded (the first
    forward of a non-reentrant checkpoint), so the pruned MLPs save placeholders. A backward
    that reaches one raises (`_check_saved`): on torch releases whose checkpoint does not pass
    an error of the checkpointed function back into `context_fn`'s contexts (before 2.13), the
    flag stays set while that error's traceback is alive."""
    prev = getattr(_STATE, "discard", False)
    _STATE.discard = True
    try:
        yield
    finally:
        _STATE.discard = prev


def saves_discarded() -> bool:
    return getattr(_STATE, "discard", False)


def checkpoint_contexts():
    """`torch.utils.checkpoint.checkpoint`'s `context_fn` (non-reentrant only): the first
    forward under `discarded_saves`, the recomputation as it is."""
    return discarded_saves(), contextlib.nullcontext()


def _placeholder(shape: tuple[int, ...], dtype: torch.dtype, device) -> torch.Tensor:
    """A tensor of `shape` and `dtype` without storage (one element, expanded: every stride 0)."""
    return torch.zeros((), dtype=dtype, device=device).expand(shape)


def _save_placeholders(ctx, n_acts: int, n: int, n_keep: int, dtype: torch.dtype, device,
                       *weights: torch.Tensor) -> None:
    """What a pruned function saves in a checkpoint's first forward: `n_acts` placeholders of
    its kept (n, n_keep) activations, one of its kept channel ids, then its weights."""
    kept = _placeholder((n, n_keep), dtype, device)
    ctx.save_for_backward(*[kept] * n_acts, _placeholder((n_keep,), torch.int64, device),
                          *weights)


def _check_saved(t: torch.Tensor) -> None:
    """A backward must never read a placeholder (all strides 0 over more than one element)."""
    if t.numel() > 1 and not any(t.stride()):
        raise RuntimeError("a pruned MLP's backward reached the placeholders of a forward run "
                           "under lemo.mlp.discarded_saves outside a non-reentrant checkpoint")


# CUDA inputs longer than CHUNK_ABOVE tokens take the token-chunked forward
# (`lemo.kernels.pruned_swiglu`, CHUNK_TOKENS at a time): it never holds four (tokens x
# intermediate) buffers, which matters for the longest trainable sequence, at the cost of a narrow
# GEMM recomputing the kept channels and more launches (a slower step; H100 numbers in
# results/lemo_gpu/README.md). Up to 32K tokens the transient is small beside the saved activations.
CHUNK_ABOVE, CHUNK_TOKENS = 32768, 8192
# Channel scores are accumulated over blocks of SCORE_ROWS tokens (fp32 sums of squares, one fused
# norm kernel per block), so no full-width activation buffer is needed to score: the forward's
# transient on an H100 at 8K tokens fell from 460 to 296 MiB with this and the in-place steps
# below (`lemo.experiments.mlp_forward_probe`). The chunked forward sums the same blocks in the
# same order whenever CHUNK_TOKENS is a multiple of SCORE_ROWS.
SCORE_ROWS = 2048


def top_channels(score: torch.Tensor, n_keep: int) -> torch.Tensor:
    """The `n_keep` highest-scoring channel ids, ascending."""
    return score.topk(n_keep).indices.sort().values


def column_sq_sums(t: torch.Tensor, out: torch.Tensor | None = None, rows: int = SCORE_ROWS,
                   fn=None) -> torch.Tensor:
    """Per-column sums of squares of t (N, I) — of fn(t) when `fn` (elementwise) is given, applied
    one block at a time so fn(t) never exists whole — in fp32, accumulated block by block over
    `rows` rows (each block: a fused fp32 norm, squared), into `out` (I,) when given."""
    if out is None:
        out = torch.zeros(t.shape[-1], dtype=torch.float32, device=t.device)
    for start in range(0, t.shape[0], rows):
        block = t[start:start + rows]
        out += torch.linalg.vector_norm(block if fn is None else fn(block), dim=0,
                                        dtype=torch.float32).square()
    return out


def channel_scores(sq_act: torch.Tensor, sq_other: torch.Tensor, dtype: torch.dtype
                   ) -> torch.Tensor:
    """‖act‖₂ + ‖other‖₂ per channel from their fp32 sums of squares, rounded to the activation
    dtype before the sum (as `a.norm(dim=0) + u.norm(dim=0)` on the activations would)."""
    return sq_act.sqrt().to(dtype) + sq_other.sqrt().to(dtype)


def _frozen(*ws: torch.Tensor | None) -> None:
    if any(w is not None and w.requires_grad for w in ws):
        raise ValueError("MLP channel pruning needs frozen MLP weights (apply LoRA to attention "
                         "only, or set lemo.mlp_prune_ratio=0)")


class PrunedSwiGLUFunction(torch.autograd.Function):
    """y = down(silu(gate(x)) ⊙ up(x)); saves the kept channels of gate/up only (and x's shape).
    saved_tensors: (gate[:, ch], up[:, ch], ch, W_gate, W_up, W_down)."""

    @staticmethod
    def _act(g: torch.Tensor) -> torch.Tensor:
        return F.silu(g)

    @classmethod
    def _act_(cls, g: torch.Tensor) -> torch.Tensor:
        """`_act(g)`, in place for SiLU (the same values); a subclass that overrides only `_act`
        gets its own activation, out of place."""
        if cls._act is PrunedSwiGLUFunction._act:
            return F.silu(g, inplace=True)
        return cls._act(g)

    @staticmethod
    def _act_backward(grad: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten.silu_backward(grad, g)  # grad·silu'(g), one fused kernel

    @classmethod
    def forward(cls, ctx, x, wg, wu, wd, bg, bu, bd, n_keep: int):
        x2 = x.reshape(-1, x.shape[-1])
        g = F.linear(x2, wg, bg)
        u = F.linear(x2, wu, bu)
        ctx.x_shape = x.shape
        if saves_discarded():  # a checkpoint's first forward: the output only
            _save_placeholders(ctx, 2, x2.shape[0], n_keep, g.dtype, g.device, wg, wu, wd)
        else:
            # The transient: the activation is scored block by block and applied to the full
            # gate buffer only after the kept channels are gathered, in place where it can be;
            # the product is in place too, and the up buffer is released before down's output
            # exists (the 8K step's peak).
            from lemo import kernels

            sq_a = torch.zeros(g.shape[1], dtype=torch.float32, device=g.device)
            sq_u = torch.zeros_like(sq_a)
            kernels.gated_sq_sums(g, u, cls._act, sq_a, sq_u, SCORE_ROWS,
                                  silu=cls._act is PrunedSwiGLUFunction._act)
            ch = top_channels(channel_scores(sq_a, sq_u, g.dtype), n_keep)
            ctx.save_for_backward(g.index_select(1, ch), u.index_select(1, ch), ch, wg, wu, wd)
        a = cls._act_(g)
        del g
        a.mul_(u)
        del u
        return F.linear(a, wd, bd).view(*x.shape[:-1], -1)

    @classmethod
    def backward(cls, ctx, gy):
        g, u, ch, wg, wu, wd = ctx.saved_tensors
        _check_saved(g)
        gp = gy.reshape(-1, gy.shape[-1]) @ wd[:, ch]  # (N, C)
        du = gp * cls._act(g)
        dg = cls._act_backward(gp * u, g)
        dx = torch.addmm(du @ wu[ch], dg, wg[ch])
        return dx.view(ctx.x_shape), None, None, None, None, None, None, None


class PrunedGeGLUFunction(PrunedSwiGLUFunction):
    """Gemma's GeGLU, y = down(gelu_tanh(gate(x)) ⊙ up(x)) (`gelu_pytorch_tanh`): the same
    pruning, channels ranked by ‖gelu(gate)‖₂ + ‖up‖₂."""

    @staticmethod
    def _act(g: torch.Tensor) -> torch.Tensor:
        return F.gelu(g, approximate="tanh")

    @staticmethod
    def _act_backward(grad: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten.gelu_backward(grad, g, approximate="tanh")


# an MLP's activation name (HF `hidden_act` / Gemma's `hidden_activation`) -> pruned function
GATED_ACTIVATIONS = {"silu": PrunedSwiGLUFunction, "swish": PrunedSwiGLUFunction,
                     "gelu_pytorch_tanh": PrunedGeGLUFunction, "gelu_tanh": PrunedGeGLUFunction}


class PrunedReluFunction(torch.autograd.Function):
    """y = fc2(relu(fc1(x))) (OPT); saves the kept channels of fc1's output only (and x's
    shape). saved_tensors: (fc1_out[:, ch], ch, W1, W2)."""

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2, n_keep: int):
        x2 = x.reshape(-1, x.shape[-1])
        pre = F.linear(x2, w1, b1)
        a = F.relu(pre)
        y = F.linear(a, w2, b2)
        ctx.x_shape = x.shape
        if saves_discarded():  # a checkpoint's first forward: the output only
            _save_placeholders(ctx, 1, x2.shape[0], n_keep, pre.dtype, pre.device, w1, w2)
            return y.view(*x.shape[:-1], -1)
        ch = top_channels(column_sq_sums(a).sqrt().to(a.dtype), n_keep)
        ctx.save_for_backward(pre.index_select(1, ch), ch, w1, w2)
        return y.view(*x.shape[:-1], -1)

    @staticmethod
    def backward(ctx, gy):
        pre, ch, w1, w2 = ctx.saved_tensors
        _check_saved(pre)
        da = (gy.reshape(-1, gy.shape[-1]) @ w2[:, ch]) * (pre > 0)
        return (da @ w1[ch]).view(ctx.x_shape), None, None, None, None, None


def channel_pruned_mlp(mlp: nn.Module, x: torch.Tensor, prune_ratio: float) -> torch.Tensor:
    """A gated MLP (gate_proj/up_proj/down_proj: Llama-family SwiGLU, Gemma's GeGLU; or Phi-3's
    fused gate_up_proj = [gate | up]) on x (b, s, D), saving only the top (1 - prune_ratio) channels
    for backward; plain `mlp(x)` without grad or at ratio 0."""
    if prune_ratio <= 0 or not (torch.is_grad_enabled() and x.requires_grad):
        return mlp(x)
    mc = getattr(mlp, "config", None)  # Gemma names it hidden_activation (GeGLU)
    act = getattr(mc, "hidden_act", None) or getattr(mc, "hidden_activation", None) or "silu"
    if act not in GATED_ACTIVATIONS:
        raise ValueError(f"MLP channel pruning supports gated MLPs with "
                         f"{sorted(GATED_ACTIVATIONS)}, got '{act}'")
    fn = GATED_ACTIVATIONS[act]
    if hasattr(mlp, "gate_up_proj"):
        fused = mlp.gate_up_proj
        if not isinstance(fused, nn.Linear):  # e.g. a LoRA-wrapped projection
            raise ValueError("MLP channel pruning needs frozen MLP weights (apply LoRA to "
                             "attention only, or set lemo.mlp_prune_ratio=0)")
        _frozen(fused.weight, fused.bias)
        wg, wu = fused.weight.chunk(2, dim=0)
        bg, bu = fused.bias.chunk(2) if fused.bias is not None else (None, None)
        ws, bs = (wg, wu, mlp.down_proj.weight), (bg, bu, mlp.down_proj.bias)
    else:
        ws = (mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight)
        bs = (mlp.gate_proj.bias, mlp.up_proj.bias, mlp.down_proj.bias)
    _frozen(*ws, *bs)
    n_keep = max(1, round((1 - prune_ratio) * ws[0].shape[0]))
    if fn is PrunedSwiGLUFunction and x.is_cuda and x.numel() // x.shape[-1] > CHUNK_ABOVE:
        # Same function, saved tensors and backward, but no (tokens x intermediate) buffers:
        # on the GPU they set LeMo's memory peak (results/lemo_gpu/peak_trace).
        from lemo import kernels

        return kernels.pruned_swiglu(x, *ws, *bs, n_keep=n_keep, chunk=CHUNK_TOKENS)
    return fn.apply(x, *ws, *bs, n_keep)


def channel_pruned_ffn(fc1: nn.Linear, fc2: nn.Linear, x: torch.Tensor, prune_ratio: float,
                       activation: str = "relu") -> torch.Tensor:
    """OPT's feed-forward fc2(relu(fc1(x))) with saved-channel pruning (see module docstring)."""
    if activation != "relu":
        raise ValueError(f"OPT MLP channel pruning supports relu, got '{activation}'")
    if prune_ratio <= 0 or not (torch.is_grad_enabled() and x.requires_grad):
        return fc2(F.relu(fc1(x)))
    _frozen(fc1.weight, fc1.bias, fc2.weight, fc2.bias)
    n_keep = max(1, round((1 - prune_ratio) * fc1.weight.shape[0]))
    return PrunedReluFunction.apply(x, fc1.weight, fc1.bias, fc2.weight, fc2.bias, n_keep)
