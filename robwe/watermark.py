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
           "payload_accuracy", "SlicePartition", "forge_key", "key_generator"]


@dataclass
class WatermarkKey:
    matrix: torch.Tensor  # (m, L) float32, N(0, 1)
    bits: torch.Tensor  # (m,) float32 in {-1, +1}
    offset: int = 0  # the key's first coordinate in the flat vector
    stride: int = 1  # its coordinates: offset, offset + stride, ..., L of them
    repeat: int = 1  # error-correcting redundancy: bits = a payload of m / repeat bits, tiled
    index: torch.Tensor | None = None  # (L,) int64: explicit coordinates (overrides offset)

    @property
    def num_bits(self) -> int:
        return self.bits.numel()

    @property
    def length(self) -> int:
        return self.matrix.shape[1]

    @property
    def end(self) -> int:
        """One past the last coordinate the key reads."""
        if self.index is not None:
            return int(self.index.max()) + 1 if self.length else 0
        return self.offset + self.stride * (self.length - 1) + 1 if self.length else self.offset

    def coords(self, vec: torch.Tensor) -> torch.Tensor:
        """The L coordinates of vec (P,) the key reads (gradients flow)."""
        if self.index is not None:
            return vec[self.index]
        return vec[self.offset:self.end:self.stride]


def key_generator(seed: int, purpose: int, client: int) -> torch.Generator:
    """A torch generator keyed by (seed, purpose, client): keys never depend on call order."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + purpose) * 1_000_003 + client)
                                         % (2**63))


def make_key(num_bits: int, length: int, gen: torch.Generator, offset: int = 0,
             stride: int = 1, repeat: int = 1, index: torch.Tensor | None = None) -> WatermarkKey:
    """A fresh key: matrix (num_bits, length) ~ N(0, 1), bits uniform in {-1, +1}; with
    `repeat` r > 1 the bits are a uniform payload of num_bits / r bits tiled r times (a
    repetition code, decoded by `payload_accuracy`)."""
    if repeat < 1 or num_bits % repeat:
        raise ConfigError(f"watermark.repeat={repeat} must divide the {num_bits} bits")
    matrix = torch.randn(num_bits, length, generator=gen)
    payload = torch.randint(0, 2, (num_bits // repeat,), generator=gen).float() * 2 - 1
    return WatermarkKey(matrix, payload.repeat(repeat), offset, stride, repeat, index)


def projection(key: WatermarkKey, vec: torch.Tensor) -> torch.Tensor:
    """K @ v[offset : offset + stride * L : stride]: (m,). vec: (P,) with P >= the key's end."""
    if vec.numel() < key.end:
        raise ValueError(f"vector of {vec.numel()} entries is shorter than the key's "
                         f"[{key.offset}, {key.end}) span")
    return key.matrix @ key.coords(vec)


def watermark_loss(key: WatermarkKey, vec: torch.Tensor) -> torch.Tensor:
    """Mean BCE(sigmoid(proj), (b+1)/2) over the m bits (a scalar)."""
    return F.binary_cross_entropy_with_logits(projection(key, vec), (key.bits + 1) / 2)


def bit_accuracy(key: WatermarkKey, vec: torch.Tensor) -> float:
    """Fraction of bits with sign(proj) == b (0.5 is chance)."""
    with torch.no_grad():
        return float((torch.sign(projection(key, vec)) == key.bits).float().mean())


def payload_accuracy(key: WatermarkKey, vec: torch.Tensor) -> float:
    """Fraction of payload bits recovered by soft-majority decoding of the repetition code:
    sign(sum over the r copies of proj) == payload bit. Equals `bit_accuracy` for repeat 1.
    (Summing r projections is one projection on a row of variance r: the signal adds up r
    times, independent noise sqrt(r) times.)"""
    with torch.no_grad():
        r = key.repeat
        soft = projection(key, vec).reshape(r, -1).sum(0)  # (m / r,)
        return float((torch.sign(soft) == key.bits[:key.num_bits // r]).float().mean())


@dataclass
class SlicePartition:
    """Disjoint slices of the shared weight vector y (P,), one per client (RobWE §2.3)."""

    total: int  # P
    num_clients: int  # N
    num_bits: int  # m, bits each slice must carry
    min_ratio: float = 10.0  # require L >= min_ratio * m
    placement: str = "slice"  # "slice" (disjoint, RobWE) or "shared" (all on one carrier)
    shared_len: int = 0  # carrier length for placement="shared" (0: the slice length L)
    layout: str = "contiguous"  # slice i = [i*L, (i+1)*L); "strided": i, i+N, i+2N, ...;
    # "scattered": perm[i*L:(i+1)*L] for a secret random permutation perm of the P coordinates
    repeat: int = 1  # repetition code over the bits (see make_key)
    secret: int = 0  # seed of the scattered layout's permutation (held by the server)

    def __post_init__(self) -> None:
        if self.layout not in ("contiguous", "strided", "scattered"):
            raise ConfigError(f"watermark.layout must be contiguous, strided or scattered, "
                              f"got '{self.layout}'")
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
        if self.placement == "shared":
            return 0
        return client if self.layout == "strided" else client * self.slice_len

    @property
    def stride(self) -> int:
        """1, or N for the strided layout (every client's slice spans every layer)."""
        return self.num_clients if self.layout == "strided" and self.placement == "slice" else 1

    def index(self, client: int) -> torch.Tensor | None:
        """The scattered layout's coordinates of `client` (L,), sorted; None otherwise."""
        if self.layout != "scattered" or self.placement != "slice":
            return None
        perm = torch.randperm(self.total, generator=torch.Generator().manual_seed(self.secret))
        lo = self.offset(client)
        return perm[lo:lo + self.slice_len].sort().values

    def key(self, client: int, gen: torch.Generator) -> WatermarkKey:
        return make_key(self.num_bits, self.key_len, gen, self.offset(client), self.stride,
                        self.repeat, self.index(client))


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
    return WatermarkKey(matrix.reshape(key.matrix.shape), bits, key.offset, key.stride,
                        key.repeat, key.index)
