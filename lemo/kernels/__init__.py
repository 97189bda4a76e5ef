"""LeMo's hot-path operators behind one dispatch point (paper §4.4).

Each public function has a PyTorch implementation (`*_torch`, the reference and the CPU path) and,
where Triton and CUDA are present, a Triton kernel selected automatically. The model code
(`lemo.attention`, `lemo.loss`) calls only the dispatchers below, so kernels can be swapped without
touching it. `LEMO_KERNELS=torch` forces the fallbacks (used by tests that compare the two).

Contracts (b = batch, s = sequence, h = query heads, hk = key/value heads, d = head dim):
- `block_tile_scores(q, k, block_size, causal)`: q (b, h, s, d), k (b, hk, s, d) with h % hk == 0,
  s % block_size == 0. Pre-softmax logits q·kᵀ/√d, positive part, summed over heads and divided by
  h, then max over each block_size×block_size tile -> (b, s/B, s/B) float32. With `causal`, element
  (i, j) with j > i is excluded and tiles above the diagonal are 0. Never materialises s×s.
- `gather_rows(x, idx)`: x (b, s, d), idx (b, k) long -> (b, k, d) (`x[b, idx[b]]`).
- `project_rows(linear, x, idx)`: `linear(gather_rows(x, idx))` for an `nn.Linear` or a peft LoRA
  Linear; the kernel path reads the kept rows straight from x (no gathered copy).
- `lora_linear(linear, x)`: `linear(x)` for an `nn.Linear` or a peft LoRA Linear, saving x once
  in its own dtype (peft saves an adapter-dtype copy per projection); a PyTorch composition.
  `lora_linear_group(linears, x)` does it for several projections of the same x at once.
- `scatter_add_rows(residual, idx, src)`: out = residual, with out[b, idx[b]] += src[b]; idx rows
  are unique. Differentiable w.r.t. residual and src.
- `gated_sq_sums(gate, up, act, sq_act, sq_up, rows, silu)`: per-channel fp32 sums over the
  rows of act(gate)² and up², accumulated into sq_act / sq_up (I,) `rows` tokens a block (MLP
  channel scores of `lemo.mlp`); the kernel fuses SiLU (`silu=True`), other activations take
  the fallback.
- `segmented_lm_loss(hidden, weight, labels, segment, ignore_index=-100, softcap=None)`: mean
  cross-entropy of `hidden @ weightᵀ` (soft-capped to cap·tanh(· / cap) when `softcap` is set,
  Gemma 2's final-logit soft-capping) against `labels` (already shifted), computed `segment`
  tokens at a time with recomputation in backward, so (tokens × vocab) logits never exist at once.

Kernels (paper §4.4; one module each): `block_scores` (tile pooling), `selective_load` (gathered-row
GEMM behind `gather_rows`/`project_rows`), `scatter_add` (in-place residual epilogue,
`scatter_add_rows(..., inplace=True)` is the optional in-place form), `segment_loss` (segmented
linear + CE with recomputation), `channel_scores` (`gated_sq_sums`: the pruned MLP's channel
scores in one pass over gate and up, then one over per-block partials), `pruned_mlp`
(`pruned_swiglu`: a token-chunked forward for the MLP saved-channel pruning of `lemo.mlp`, a
PyTorch composition on every device). A call
takes the Triton path when `backend()` is 'triton' and its tensors are on CUDA, or under Triton's
CPU interpreter (`TRITON_INTERPRET=1` and `LEMO_KERNELS=triton`, used by the CPU tests), except
`gather_rows` and `scatter_add_rows`, which lose to PyTorch's ops on the H100 and so take the
Triton path only when `LEMO_KERNELS=triton` forces it; anything a kernel does not cover (a
block size that is not a power of two >= 16, a LoRA layer with active dropout or a variant such
as DoRA) goes to the fallback, which computes the same function.
"""

from __future__ import annotations

import functools
import math
import os

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

__all__ = [
    "block_tile_scores",
    "gather_rows",
    "project_rows",
    "lora_linear",
    "lora_linear_group",
    "scatter_add_rows",
    "segmented_lm_loss",
    "pruned_swiglu",
    "gated_sq_sums",
    "block_tile_scores_torch",
    "segmented_lm_loss_torch",
    "backend",
]


@functools.cache
def _triton_importable() -> bool:
    """Checked once: a failed import is retried (a path scan) on every attempt otherwise."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def backend() -> str:
    """'triton' when a CUDA device and Triton are usable and not disabled, else 'torch'.

    `LEMO_KERNELS=torch` forces the fallbacks; `LEMO_KERNELS=triton` with `TRITON_INTERPRET=1`
    selects the kernels on CPU tensors under Triton's interpreter (slow: tests only).
    """
    mode = os.environ.get("LEMO_KERNELS", "auto")
    if mode == "torch" or not _triton_importable():
        return "torch"
    if mode == "triton" and os.environ.get("TRITON_INTERPRET", "0") == "1":
        return "triton"
    return "triton" if torch.cuda.is_available() else "torch"


# Kernels that lose to the PyTorch op at every measured shape run only when forced with
# LEMO_KERNELS=triton (tests, micro-benchmarks). H100 (results/lemo_gpu): the Triton scatter-add
# takes 0.59 ms against torch's 0.22 ms at 4K (0.24 vs 0.15 ms at 16K); both gathers are one
# memory-bound copy, and a Triton launch from Python costs the host several times an aten op's,
# which decides the step time at 4K tokens.
_AUTO_TORCH = frozenset({"gather_rows", "scatter_add_rows"})


def _use_triton(t: torch.Tensor, op: str = "") -> bool:
    if op in _AUTO_TORCH and os.environ.get("LEMO_KERNELS", "auto") != "triton":
        return False
    return backend() == "triton" and (t.is_cuda or os.environ.get("TRITON_INTERPRET") == "1")


def block_tile_scores_torch(q: torch.Tensor, k: torch.Tensor, block_size: int = 64,
                            causal: bool = True) -> torch.Tensor:
    """Reference: loops over query blocks, materialising one (B × s) logit strip at a time."""
    b, h, s, d = q.shape
    hk = k.shape[1]
    if s % block_size:
        raise ValueError(f"sequence length {s} is not a multiple of block_size {block_size}")
    nb = s // block_size
    kk = k.repeat_interleave(h // hk, dim=1) if hk != h else k
    scale = 1.0 / math.sqrt(d)
    out = torch.zeros(b, nb, nb, dtype=torch.float32, device=q.device)
    kpos = torch.arange(s, device=q.device)
    for i in range(nb):
        qs = q[:, :, i * block_size:(i + 1) * block_size].float()
        hi = (i + 1) * block_size if causal else s
        logits = torch.einsum("bhqd,bhkd->bhqk", qs, kk[:, :, :hi].float()) * scale
        pos = logits.clamp_min(0).sum(1) / h  # (b, B, hi)
        if causal:
            qpos = torch.arange(i * block_size, (i + 1) * block_size, device=q.device)
            pos = pos.masked_fill(kpos[None, :hi] > qpos[:, None], 0.0)
        tiles = pos.view(b, block_size, hi // block_size, block_size).amax(dim=(1, 3))
        out[:, i, : hi // block_size] = tiles
    return out


def block_tile_scores(q: torch.Tensor, k: torch.Tensor, block_size: int = 64,
                      causal: bool = True) -> torch.Tensor:
    if _use_triton(q):
        from lemo.kernels.block_scores import block_tile_scores_triton, supports_block

        if supports_block(block_size):
            return block_tile_scores_triton(q, k, block_size, causal)
    return block_tile_scores_torch(q, k, block_size, causal)


def gather_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    if _use_triton(x, "gather_rows"):
        from lemo.kernels.selective_load import GatherRows

        return GatherRows.apply(x, idx)
    # index_select on the flattened rows saves only the index for backward (torch.gather would
    # save all of x: a full (s x D) copy per eliminating layer)
    b, s, d = x.shape
    flat = idx if b == 1 else idx + torch.arange(b, device=idx.device).unsqueeze(1) * s
    return x.reshape(b * s, d).index_select(0, flat.reshape(-1)).view(b, idx.shape[1], d)


def project_rows(linear: torch.nn.Module, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    if _use_triton(x):
        from lemo.kernels.selective_load import project_rows_triton

        y = project_rows_triton(linear, x, idx)
        if y is not None:
            return y
    return linear(gather_rows(x, idx))


def lora_linear(linear: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`linear(x)` (nn.Linear or vanilla peft LoRA Linear) saving x once in its own dtype instead
    of peft's per-projection adapter-dtype copies; see `lemo.kernels.lean_lora`."""
    from lemo.kernels.lean_lora import lora_linear as _lora_linear

    return _lora_linear(linear, x)


def lora_linear_group(linears: list[torch.nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    """`[m(x) for m in linears]` for projections sharing x (q, k, v), saving x once; one GEMM
    for all adapters' x·Aᵀ (`lemo.kernels.lean_lora.lora_linear_group`)."""
    from lemo.kernels.lean_lora import lora_linear_group as _group

    return _group(linears, x)


def scatter_add_rows(residual: torch.Tensor, idx: torch.Tensor, src: torch.Tensor,
                     inplace: bool = False) -> torch.Tensor:
    """`inplace=True` (optional) updates `residual`'s buffer and returns it (autograd's version
    counter then rejects a residual that something saved for backward)."""
    if _use_triton(residual, "scatter_add_rows"):
        from lemo.kernels.scatter_add import scatter_add_rows_triton

        return scatter_add_rows_triton(residual, idx, src, inplace=inplace)
    index = idx.unsqueeze(-1).expand(-1, -1, residual.shape[-1])
    if inplace:
        return residual.scatter_add_(1, index, src.to(residual.dtype))
    return residual.scatter_add(1, index, src.to(residual.dtype))


def gated_sq_sums(gate: torch.Tensor, up: torch.Tensor, act, sq_act: torch.Tensor,
                  sq_up: torch.Tensor, rows: int, silu: bool = False) -> None:
    """sq_act += Σ_rows act(gate)², sq_up += Σ_rows up² (fp32, in place), `rows` tokens a block;
    `silu=True` says act is SiLU, which the Triton kernel fuses (`lemo.kernels.channel_scores`).
    gate/up (N, I), sq_act/sq_up (I,) float32."""
    if (silu and _use_triton(gate) and gate.stride(1) == 1 and up.stride(1) == 1
            and max(gate.stride(0), up.stride(0)) * gate.shape[0] < 2 ** 31):
        from lemo.kernels.channel_scores import gated_sq_sums_triton

        gated_sq_sums_triton(gate, up, sq_act, sq_up, rows)
        return
    from lemo.mlp import column_sq_sums

    column_sq_sums(gate, sq_act, rows, fn=act)
    column_sq_sums(up, sq_up, rows)


def pruned_swiglu(x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor,
                  w_down: torch.Tensor, b_gate: torch.Tensor | None = None,
                  b_up: torch.Tensor | None = None, b_down: torch.Tensor | None = None,
                  n_keep: int = 1, chunk: int = 2048) -> torch.Tensor:
    """`lemo.mlp.PrunedSwiGLUFunction` (MLP saved-channel pruning) with a token-chunked forward:
    the same output, saved tensors and backward, but no (tokens × intermediate) buffer; see
    `lemo.kernels.pruned_mlp`. x (..., D), w_gate/w_up (I, D), w_down (D, I) -> (..., D)."""
    from lemo.kernels.pruned_mlp import ChunkedPrunedSwiGLU

    if chunk < 1 or not 1 <= n_keep <= w_gate.shape[0]:
        raise ValueError(f"pruned_swiglu: need chunk >= 1 and 1 <= n_keep <= {w_gate.shape[0]}, "
                         f"got chunk={chunk}, n_keep={n_keep}")
    return ChunkedPrunedSwiGLU.apply(x, w_gate, w_up, w_down, b_gate, b_up, b_down, n_keep, chunk)


def _segment_ce_sum(h: torch.Tensor, w: torch.Tensor, y: torch.Tensor,
                    ignore_index: int, softcap: float | None = None) -> torch.Tensor:
    logits = (h @ w.t()).float()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits, y, ignore_index=ignore_index, reduction="sum")


def segmented_lm_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                      segment: int = 2048, ignore_index: int = -100,
                      softcap: float | None = None) -> torch.Tensor:
    if _use_triton(hidden):
        from lemo.kernels.segment_loss import segmented_lm_loss_triton

        return segmented_lm_loss_triton(hidden, weight, labels, segment, ignore_index, softcap)
    return segmented_lm_loss_torch(hidden, weight, labels, segment, ignore_index, softcap)


def segmented_lm_loss_torch(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                            segment: int = 2048, ignore_index: int = -100,
                            softcap: float | None = None) -> torch.Tensor:
    """Reference: per-segment `torch.utils.checkpoint` around lm_head + CE (the AE's recipe);
    `softcap`: final-logit soft-capping cap·tanh(logits / cap) (Gemma 2) before the CE."""
    h = hidden.reshape(-1, hidden.shape[-1])
    y = labels.reshape(-1)
    count = (y != ignore_index).sum().clamp_min(1)
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, h.shape[0], segment):
        hs, ys = h[start:start + segment], y[start:start + segment]
        if torch.is_grad_enabled() and (hs.requires_grad or weight.requires_grad):
            total = total + checkpoint(_segment_ce_sum, hs, weight, ys, ignore_index, softcap,
                                       use_reentrant=False)
        else:
            total = total + _segment_ce_sum(hs, weight, ys, ignore_index, softcap)
    return total / count
