"""RobWE's two watermarks and the key forgery of its threat model.

Both watermarks are Uchida-style projections (Uchida et al. 2017; RobWE §2.2-2.3):

    proj = K @ v[offset : offset + L]          K: (m, L) ~ N(0, 1),  v: a flat parameter vector
    loss = BCE(sigmoid(proj), (b + 1) / 2)      b: (m,) in {-1, +1}
    bit accuracy = mean(sign(proj) == b)

- **Head watermark** (`HeadWatermark`): v = the private head's parameters, offset 0, L = len(v).
- **Slice watermark** (`SlicePartition`): v = y, the shared weights flattened (P,); client i owns
  the disjoint slice [i*L, (i+1)*L) with L = floor(P / N), so averaging never mixes two
  clients' watermark objectives on the same coordinates. `placement="shared"` puts every
  client on the same carrier [0, shared_len) (default L): the FedIPR-style baseline, where
  N*m bits compete for the same coordinates (FedIPR's carrier, the normalisation scales, has
  a few hundred entries).

The targets are 0/1, not +-1: the public code passes +-1 to BCE, which is unbounded below.
`forge_key` is the malicious client of §2.4: flip a fraction of the bits and replace the same
fraction of the key's entries with fresh N(0, 1) values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from shared.errors import ConfigError

__all__ = ["WatermarkKey", "make_key", "projection", "watermark_loss", "bit_accuracy",
           "SlicePartition", "forge_key", "key_generator"]


@dataclass
class WatermarkKey:
    matrix: torch.Tensor  # (m, L) float32, N(0, 1)
    bits: torch.Tensor  # (m,) float32 in {-1, +1}
    offset: int = 0  # where the key's L coordinates start in the flat vector

    @property
    def num_bits(self) -> int:
        return self.bits.numel()

    @property
    def length(self) -> int:
        return self.matrix.shape[1]


def key_generator(seed: int, purpose: int, client: int) -> torch.Generator:
    """A torch generator keyed by (seed, purpose, client): keys never depend on call order."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + purpose) * 1_000_003 + client)
                                         % (2**63))


def make_key(num_bits: int, length: int, gen: torch.Generator, offset: int = 0) -> WatermarkKey:
    """A fresh key: matrix (num_bits, length) ~ N(0, 1), bits uniform in {-1, +1}."""
    matrix = torch.randn(num_bits, length, generator=gen)
    bits = torch.randint(0, 2, (num_bits,), generator=gen).float() * 2 - 1
    return WatermarkKey(matrix, bits, offset)


def projection(key: WatermarkKey, vec: torch.Tensor) -> torch.Tensor:
    """K @ v[offset:offset+L]: (m,). vec: (P,) with P >= offset + L."""
    if vec.numel() < key.offset + key.length:
        raise ValueError(f"vector of {vec.numel()} entries is shorter than the key's "
                         f"[{key.offset}, {key.offset + key.length}) span")
    return key.matrix @ vec[key.offset:key.offset + key.length]


def watermark_loss(key: WatermarkKey, vec: torch.Tensor) -> torch.Tensor:
    """Mean BCE(sigmoid(proj), (b+1)/2) over the m bits (a scalar)."""
    return F.binary_cross_entropy_with_logits(projection(key, vec), (key.bits + 1) / 2)


def bit_accuracy(key: WatermarkKey, vec: torch.Tensor) -> float:
    """Fraction of bits with sign(proj) == b (0.5 is chance)."""
    with torch.no_grad():
        return float((torch.sign(projection(key, vec)) == key.bits).float().mean())


@dataclass
class SlicePartition:
    """Disjoint slices of the shared weight vector y (P,), one per client (RobWE §2.3)."""

    total: int  # P
    num_clients: int  # N
    num_bits: int  # m, bits each slice must carry
    min_ratio: float = 10.0  # require L >= min_ratio * m
    placement: str = "slice"  # "slice" (disjoint, RobWE) or "shared" (all on one carrier)
    shared_len: int = 0  # carrier length for placement="shared" (0: the slice length L)

    def __post_init__(self) -> None:
        if self.placement not in ("slice", "shared"):
            raise ConfigError(f"watermark.placement must be slice or shared, "
                              f"got '{self.placement}'")
        if self.slice_len < self.min_ratio * self.num_bits:
            raise ConfigError(
                f"watermark.slice_bits={self.num_bits}: a slice of {self.slice_len} weights "
                f"({self.total} shared weights / {self.num_clients} clients) is too short; "
                f"it needs >= {self.min_ratio:g} x {self.num_bits} = "
                f"{math.ceil(self.min_ratio * self.num_bits)} weights")
        if self.placement == "shared" and not self.num_bits <= self.key_len <= self.total:
            raise ConfigError(f"watermark.shared_len={self.shared_len} must be in "
                              f"[{self.num_bits}, {self.total}] (slice_bits..shared weights)")

    @property
    def slice_len(self) -> int:
        """L = floor(P / N)."""
        return self.total // self.num_clients

    @property
    def key_len(self) -> int:
        """Coordinates a key spans: L, or the shared carrier's length."""
        if self.placement == "shared" and self.shared_len:
            return self.shared_len
        return self.slice_len

    def offset(self, client: int) -> int:
        if not 0 <= client < self.num_clients:
            raise IndexError(f"client {client} not in [0, {self.num_clients})")
        return 0 if self.placement == "shared" else client * self.slice_len

    def key(self, client: int, gen: torch.Generator) -> WatermarkKey:
        return make_key(self.num_bits, self.key_len, gen, self.offset(client))


def forge_key(key: WatermarkKey, frac: float, gen: torch.Generator) -> WatermarkKey:
    """A malicious client's forgery: flip round(frac*m) bits and replace round(frac*m*L)
    entries of the matrix with fresh N(0, 1) draws. Returns a new key (same offset)."""
    if not 0.0 <= frac <= 1.0:
        raise ValueError(f"tampered fraction must be in [0, 1], got {frac}")
    bits = key.bits.clone()
    flip = torch.randperm(bits.numel(), generator=gen)[:round(frac * bits.numel())]
    bits[flip] = -bits[flip]
    matrix = key.matrix.clone().reshape(-1)
    swap = torch.randperm(matrix.numel(), generator=gen)[:round(frac * matrix.numel())]
    matrix[swap] = torch.randn(swap.numel(), generator=gen)
    return WatermarkKey(matrix.reshape(key.matrix.shape), bits, key.offset)
