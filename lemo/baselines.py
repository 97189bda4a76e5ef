"""Baselines the paper compares against.

- Dense LoRA (peft, r=8, α=16 on q/k/v/o): `LemoConfig(enabled=False)`.
- LoRA + gradient checkpointing: `model.gradient_checkpointing_enable()` (HF's own).
- LongLoRA S2-Attn (Chen et al., arXiv 2309.12307, §3.2): `s2_attention` below, used by the
  Llama-family layer when `LemoConfig.attention == "s2"` in training (evaluation runs dense, as
  LongLoRA does): `LemoConfig(attention="s2", mlp_prune_ratio=0.0)`, since LemoConfig's default
  prunes 50% of the MLP channels, which LongLoRA does not. It cuts attention FLOPs but every
  token still enters every head's q/k/v, so autograd saves as much as dense LoRA: the paper's
  "shadowy activation".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["s2_attention"]


def s2_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, groups: int,
                 scale: float) -> torch.Tensor:
    """Shifted sparse attention: (b, h, s, d) ×3 -> (b, h, s, d).

    Tokens attend causally within groups of G = s / `groups`; the second half of the heads is
    rolled by −G/2 first (and back after), so information flows between neighbouring groups.
    As in LongLoRA's reference code the roll wraps around, so the shifted heads' last group
    mixes the sequence's tail with its head.
    """
    b, h, s, d = q.shape
    if s % groups or (s // groups) % 2:
        raise ValueError(f"S2-Attn needs seq len {s} divisible by 2 x groups ({groups})")
    g, half = s // groups, h // 2

    def shift(t: torch.Tensor, sign: int) -> torch.Tensor:
        return torch.cat([t[:, :half], t[:, half:].roll(sign * (g // 2), dims=2)], dim=1)

    def grouped(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(b, h, groups, g, d).transpose(1, 2).reshape(b * groups, h, g, d)

    o = F.scaled_dot_product_attention(grouped(shift(q, -1)), grouped(shift(k, -1)),
                                       grouped(shift(v, -1)), is_causal=True, scale=scale)
    o = o.reshape(b, groups, h, g, d).transpose(1, 2).reshape(b, h, s, d)
    return shift(o, 1)
