"""Informativeness scores and token elimination (paper §4.2, Eq. 1-2, Algorithm 1).

Shapes: b = batch, s = sequence, h/hk = query/key heads, d = head dim, B = block size,
nb = s / B blocks, k = kept blocks.

- `informativeness_tiles(q, k, B)`: tile scores (b, nb, nb): per B×B tile of the pre-softmax
  logits q·kᵀ/√d, positive part summed over heads ÷ h, max inside the tile; causal (tiles above
  the diagonal are 0). Computed strip by strip by `lemo.kernels.block_tile_scores`, never s×s.
- `key_block_scores(tiles)`: key block j's score = Σ_i tiles[i, j] over query tiles (b, nb).
- `TokenEliminator`: picks the kept key blocks of one layer (top-k at a keep ratio, the AE's rule,
  or blocks ≥ a per-layer threshold, the paper's Algorithm 1 starting at the mean block score) and
  expands them to sorted token indices (b, k·B). Optionally (our option, not the paper's) the
  first `sink_blocks` (attention sinks) and last `local_blocks` (the local window) are always
  kept and the rest of the budget is filled by score.
"""

from __future__ import annotations

import math

import torch

from lemo import kernels

__all__ = ["informativeness_tiles", "key_block_scores", "causal_tile_mask", "window_tile_mask",
           "TokenEliminator",
           "blocks_to_tokens", "selection_recall"]


def informativeness_tiles(q: torch.Tensor, k: torch.Tensor, block_size: int,
                          causal: bool = True) -> torch.Tensor:
    """(b, h, s, d), (b, hk, s, d) -> tile scores (b, nb, nb) float32 (paper Eq. 1); `causal`:
    only logits with key <= query count and tiles above the diagonal are 0."""
    s = q.shape[2]
    if s % block_size:
        raise ValueError(f"sequence length {s} is not a multiple of block_size {block_size}; "
                         "pad the input to a multiple of the block size")
    return kernels.block_tile_scores(q, k, block_size, causal)


def causal_tile_mask(nb: int, device=None) -> torch.Tensor:
    """(nb, nb) bool: tile (i, j) lies at or below the diagonal (query block i >= key block j)."""
    return torch.ones(nb, nb, dtype=torch.bool, device=device).tril()


def window_tile_mask(nb: int, block_size: int, window: int, device=None) -> torch.Tensor:
    """(nb, nb) bool: tile (i, j) holds at least one (query, key) pair closer than `window`
    tokens (sliding-window attention: query p sees key p' iff |p - p'| < window, causal
    masking aside). The closest pair of blocks i != j is (|i - j| - 1)·B + 1 apart."""
    gap = (torch.arange(nb, device=device)[:, None] - torch.arange(nb, device=device)).abs()
    return ((gap - 1).clamp_min(0) * block_size + (gap > 0).long()) < window


def key_block_scores(tiles: torch.Tensor, reduce: str = "sum", causal: bool = True,
                     visible: torch.Tensor | None = None) -> torch.Tensor:
    """(b, nb, nb) tile scores -> (b, nb) key-block scores: column sums over query tiles (Eq. 2).

    Under a causal mask key block j has nb − j query tiles, so sums favour early blocks;
    `reduce="mean"` (our option, not the paper's) divides by that count. `causal=False` sums
    every query tile (the paper's Σ over all i ≠ j). `visible` (nb, nb) bool, optional: only
    these tiles count (and are counted by "mean"), e.g. `window_tile_mask` under a sliding
    window."""
    nb = tiles.shape[-1]
    mask = causal_tile_mask(nb, tiles.device) if causal else torch.ones(
        nb, nb, dtype=torch.bool, device=tiles.device)
    if visible is not None:
        mask = mask & visible.to(tiles.device)
    col = (tiles * mask).sum(dim=-2)
    if reduce == "mean":
        col = col / mask.sum(dim=0).clamp_min(1).to(col.dtype)
    elif reduce != "sum":
        raise ValueError(f"unknown score_reduce '{reduce}' (sum, mean)")
    return col


def blocks_to_tokens(blocks: torch.Tensor, block_size: int) -> torch.Tensor:
    """(b, k) sorted block ids -> (b, k·B) token ids: block·B + [0..B-1]."""
    offs = torch.arange(block_size, device=blocks.device)
    return (blocks.unsqueeze(-1) * block_size + offs).reshape(blocks.shape[0], -1)


def selection_recall(pred_blocks: torch.Tensor, exact_blocks: torch.Tensor, nb: int) -> float:
    """|pred ∩ exact| / |exact| over a batch of kept-block sets (b, k) each."""
    b = exact_blocks.shape[0]
    hit_pred = torch.zeros(b, nb, dtype=torch.bool, device=pred_blocks.device)
    hit_pred.scatter_(1, pred_blocks, True)
    hits = hit_pred.gather(1, exact_blocks).sum()
    return float(hits) / exact_blocks.numel()


class TokenEliminator:
    """One layer's block selection (paper §4.2): key-block scores -> kept token indices.

    `mode="topk"` keeps ⌈keep_ratio·nb⌉ blocks per sequence (the AE's fixed ratio: FLOPs and
    saved bytes do not depend on the weights). `mode="threshold"` keeps blocks whose score is
    ≥ `threshold` (None: that input's mean block score, Algorithm 1's starting point); as a batch
    must share one kept count, every row keeps max-over-rows blocks, its best ones first.
    Kept block ids are sorted, so causal order among kept tokens is the original order.

    `sink_blocks` / `local_blocks` (reconstructed policy, not the paper's; 0 = off): the first
    and the last blocks of the sequence are always kept (attention sinks and the most recent
    context, as StreamingLLM keeps them), then the budget (top-k: the same k; threshold: the
    blocks ≥ threshold) is filled by score. If they alone exceed the budget, they are all kept.
    """

    def __init__(self, block_size: int = 64, keep_ratio: float = 0.4, mode: str = "topk",
                 threshold: float | None = None, sink_blocks: int = 0, local_blocks: int = 0):
        if mode not in ("topk", "threshold"):
            raise ValueError(f"unknown selection mode '{mode}' (topk, threshold)")
        if sink_blocks < 0 or local_blocks < 0:
            raise ValueError(f"sink_blocks and local_blocks must be >= 0, got {sink_blocks}, "
                             f"{local_blocks}")
        self.block_size, self.keep_ratio, self.mode, self.threshold = (
            block_size, keep_ratio, mode, threshold)
        self.sink_blocks, self.local_blocks = sink_blocks, local_blocks

    def n_keep(self, nb: int) -> int:
        return max(1, min(nb, math.ceil(self.keep_ratio * nb - 1e-9)))

    def always_kept(self, nb: int, device=None) -> torch.Tensor:
        """(nb,) bool: the sink (first) and local-window (last) blocks."""
        pos = torch.arange(nb, device=device)
        return (pos < self.sink_blocks) | (pos >= nb - self.local_blocks)

    def select_blocks(self, scores: torch.Tensor) -> torch.Tensor:
        """(b, nb) key-block scores -> (b, k) sorted kept block ids."""
        nb = scores.shape[-1]
        forced = self.always_kept(nb, scores.device)
        n_forced = min(nb, self.sink_blocks + self.local_blocks)  # on the host: no sync
        if self.mode == "topk":
            k = max(self.n_keep(nb), n_forced)
        else:
            thr = scores.mean(-1, keepdim=True) if self.threshold is None else self.threshold
            k = int(((scores >= thr) | forced).sum(-1).max().clamp_min(1))
        if k >= nb:
            return torch.arange(nb, device=scores.device).expand(scores.shape[0], nb)
        ranked = self.rank(scores, k)
        if n_forced:
            ranked = ranked.masked_fill(forced, float("inf"))
        return ranked.topk(k, dim=-1, sorted=False).indices.sort(dim=-1).values

    def rank(self, scores: torch.Tensor, k: int) -> torch.Tensor:
        """The values whose top k are kept when k < nb blocks are (the paper: the scores
        themselves; the diagnostic variants below override this)."""
        return scores

    def select(self, scores: torch.Tensor) -> torch.Tensor:
        """(b, nb) key-block scores -> (b, k·B) sorted kept token ids."""
        return blocks_to_tokens(self.select_blocks(scores), self.block_size)
