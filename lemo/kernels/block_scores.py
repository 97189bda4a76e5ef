"""Block informativeness pooling as a Triton kernel (paper §4.2, Eq. 1-2; AE `block_attn_pool`).

One program per (batch, query block i, key block j) tile: it loops over the query heads, computes
the (B × B) pre-softmax logits q_i·k_jᵀ of each head on the tensor cores, accumulates their
positive part in registers, masks the causal upper triangle of diagonal tiles and writes the
tile's max. The s×s logit matrix never exists, not even one head's (B × s) strip.

Shapes: q (b, h, s, d), k (b, hk, s, d) with h % hk == 0 (GQA: query head g reads key head
g // (h/hk)), s % B == 0 -> (b, s/B, s/B) float32. Any strides (e.g. q from a transposed
(b, s, h, d) projection) are read in place.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from lemo.kernels._triton import dot_precision, num_warps, upcast

__all__ = ["block_tile_scores_triton", "supports_block"]


@triton.jit
def _block_tile_scores_kernel(
    q_ptr, k_ptr, out_ptr,
    sqb, sqh, sqs, sqd, skb, skh, sks, skd,
    H, GROUP, NB, D, scale,
    BLOCK: tl.constexpr, DP: tl.constexpr, CAUSAL: tl.constexpr,
    UPCAST: tl.constexpr, PREC: tl.constexpr,
):
    j = tl.program_id(0)  # key block
    i = tl.program_id(1)  # query block
    b = tl.program_id(2).to(tl.int64)
    offs_m = i * BLOCK + tl.arange(0, BLOCK)
    offs_n = j * BLOCK + tl.arange(0, BLOCK)
    offs_d = tl.arange(0, DP)
    dmask = offs_d[None, :] < D
    q_base = q_ptr + b * sqb + offs_m[:, None].to(tl.int64) * sqs + offs_d[None, :] * sqd
    k_base = k_ptr + b * skb + offs_n[:, None].to(tl.int64) * sks + offs_d[None, :] * skd
    # Tiles strictly above the diagonal are 0 under causal masking: run no head at all there.
    n_heads = H
    if CAUSAL:
        n_heads = tl.where(j > i, 0, H)
    acc = tl.zeros((BLOCK, BLOCK), dtype=tl.float32)
    for h in range(0, n_heads):
        qh = tl.load(q_base + h * sqh, mask=dmask, other=0.0)
        kh = tl.load(k_base + (h // GROUP) * skh, mask=dmask, other=0.0)
        if UPCAST:
            qh = qh.to(tl.float32)
            kh = kh.to(tl.float32)
        acc += tl.maximum(tl.dot(qh, tl.trans(kh), input_precision=PREC), 0.0)
    if CAUSAL:
        acc = tl.where(offs_n[None, :] > offs_m[:, None], 0.0, acc)
    # relu(x·scale) = scale·relu(x) for scale > 0, so the 1/√d and 1/h factors go on the max.
    tile = tl.max(tl.max(acc, axis=1), axis=0) * scale
    tl.store(out_ptr + b * NB * NB + i * NB + j, tile)


def supports_block(block_size: int) -> bool:
    """The kernel tiles need a power-of-two block of at least 16 rows (tensor-core dot shape)."""
    return block_size >= 16 and block_size & (block_size - 1) == 0


def block_tile_scores_triton(q: torch.Tensor, k: torch.Tensor, block_size: int = 64,
                             causal: bool = True) -> torch.Tensor:
    """Triton twin of `lemo.kernels.block_tile_scores_torch` (same contract and result)."""
    b, h, s, d = q.shape
    hk = k.shape[1]
    if k.shape[0] != b or k.shape[2] != s or k.shape[3] != d or h % hk:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} do not match "
                         "(need q (b, h, s, d), k (b, hk, s, d), h % hk == 0)")
    if s % block_size:
        raise ValueError(f"sequence length {s} is not a multiple of block_size {block_size}")
    if not supports_block(block_size):
        raise ValueError(f"block_size {block_size} must be a power of two >= 16 for the kernel")
    nb = s // block_size
    out = torch.empty(b, nb, nb, dtype=torch.float32, device=q.device)
    if k.dtype != q.dtype:
        k = k.to(q.dtype)
    _block_tile_scores_kernel[(nb, nb, b)](
        q, k, out, *q.stride(), *k.stride(),
        h, h // hk, nb, d, 1.0 / (math.sqrt(d) * h),
        BLOCK=block_size, DP=triton.next_power_of_2(d), CAUSAL=causal,
        UPCAST=upcast(q), PREC=dot_precision(q),
        num_warps=num_warps(4), num_stages=3,
    )
    return out
