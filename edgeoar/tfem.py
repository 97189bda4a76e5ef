"""TFEM, the early-exit-oriented task-specific feature enhancement module (EdgeOAR sec. 3):

* `TemporalLayeringShift` (TLSM): before a block, channel group k of frame t is replaced by
  the same group of frame t - offsets[k] (zeros before the stream starts). With offsets (1, 2)
  the first C/div channels come from the previous frame and the next C/div from two frames
  back: a causal, layered TSM-style shift (the offsets per layer are our reconstruction; the
  paper's exact layering is not public). `forward` shifts a whole clip (B, T, C, H, W);
  `step` shifts one frame (B, C, H, W) with a shift buffer of the last max(offsets) frames,
  so streaming and batched outputs are equal.
* `PartitionSpatialEnhancement` (MSEM): the codec's block-partition detail map (small blocks =
  detail or motion) -> 3x3 conv -> sigmoid, resized to the feature map, scales the features by
  1 + gamma * attention (gamma per channel, zero at init so the module starts as identity;
  reconstruction of the paper's MBs-guided attention).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TemporalLayeringShift", "PartitionSpatialEnhancement"]


class TemporalLayeringShift(nn.Module):
    """Causal multi-offset channel shift. Shapes: clip (B, T, C, H, W); frame (B, C, H, W)."""

    def __init__(self, channels: int, div: int = 8, offsets: tuple[int, ...] = (1, 2)):
        super().__init__()
        self.fold = max(channels // div, 1)
        self.offsets = tuple(int(o) for o in offsets)
        if self.fold * len(self.offsets) > channels:
            raise ValueError(f"{channels} channels cannot hold {len(self.offsets)} shifted groups")
        if min(self.offsets) < 1:
            raise ValueError("offsets must be >= 1 (a shift from the future is not causal)")
        self.depth = max(self.offsets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        out = x.clone()
        for k, o in enumerate(self.offsets):
            sl = slice(k * self.fold, (k + 1) * self.fold)
            out[:, :, sl] = 0
            if o < t:
                out[:, o:, sl] = x[:, :t - o, sl]
        return out

    def init_state(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The shift buffer: the shifted channel groups of the last `depth` frames (zeros)."""
        n = self.fold * len(self.offsets)
        return [x.new_zeros(x.shape[0], n, *x.shape[2:]) for _ in range(self.depth)]

    def step(self, x: torch.Tensor, state: list[torch.Tensor] | None
             ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Shift one frame x (B, C, H, W) using the buffer (oldest first); -> (y, new buffer)."""
        if state is None:
            state = self.init_state(x)
        out = x.clone()
        for k, o in enumerate(self.offsets):
            sl = slice(k * self.fold, (k + 1) * self.fold)
            out[:, sl] = state[self.depth - o][:, sl]
        n = self.fold * len(self.offsets)
        return out, state[1:] + [x[:, :n].detach().clone()]


class PartitionSpatialEnhancement(nn.Module):
    """x (N, C, h, w) * (1 + gamma * sigmoid(conv(detail))), detail (N, 1, G, G) in [0, 1]."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        nn.init.constant_(self.conv.weight, 0.5)
        nn.init.constant_(self.conv.bias, -1.0)
        self.gamma = nn.Parameter(torch.zeros(channels))

    def attention(self, detail: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        a = torch.sigmoid(self.conv(detail))
        if a.shape[-2:] != size:
            a = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
        return a

    def forward(self, x: torch.Tensor, detail: torch.Tensor) -> torch.Tensor:
        a = self.attention(detail, x.shape[-2:])
        return x * (1 + self.gamma.view(1, -1, 1, 1) * a)
