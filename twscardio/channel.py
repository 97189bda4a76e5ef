"""Bluetooth packet loss: the Gilbert-Elliott bursty channel.

A two-state Markov chain over packets, Good (delivered) and Bad (lost), with p = P(G->B) and
r = P(B->G). Mean burst length L = 1/r and stationary loss l = p / (p + r), so a target (l, L)
gives r = 1/L, p = r*l/(1-l). Transitions use uniform draws (the DFTS `gbChannel.py` draws them
with `random.gauss`, a bug). Packets carry `samples_per_packet` consecutive IMU samples, so a lost
packet removes a run of samples; delivered samples keep their true timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GilbertElliottChannel", "packet_loss_mask", "burst_lengths"]


@dataclass(frozen=True)
class GilbertElliottChannel:
    """Gilbert-Elliott channel parameterised by stationary loss `loss` and mean burst `burst`.

    `p` = P(Good->Bad), `r` = P(Bad->Good). `lost(n, rng)` -> bool (n,) over packets, True = lost.
    The chain starts in its stationary distribution, so the expected loss of every packet is
    exactly `loss`.
    """

    loss: float
    burst: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.loss < 1.0:
            raise ValueError(f"loss={self.loss} must be in [0, 1)")
        if self.burst < 1.0:
            raise ValueError(f"burst={self.burst} must be >= 1 packet")
        if self.p > 1.0:
            raise ValueError(f"loss={self.loss} with burst={self.burst} needs P(G->B) > 1")

    @property
    def r(self) -> float:
        return 1.0 / self.burst

    @property
    def p(self) -> float:
        return self.r * self.loss / (1.0 - self.loss) if self.loss > 0 else 0.0

    def lost(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Loss pattern of `n` packets. Vectorised: run lengths are geometric draws."""
        if n <= 0:
            return np.zeros(0, dtype=bool)
        if self.loss == 0.0:
            return np.zeros(n, dtype=bool)
        # Alternate Good and Bad runs: Good run ~ Geom(p), Bad run ~ Geom(r). Draw enough runs
        # for n packets at once (expected cycle length 1/p + 1/r), top up in the rare shortfall.
        start_bad = rng.random() < self.loss
        cycle = 1.0 / self.p + 1.0 / self.r
        k = int(2 * n / cycle) + 16
        runs: list[np.ndarray] = []
        total = 0
        while total < n:
            good = rng.geometric(self.p, size=k)
            bad = rng.geometric(self.r, size=k)
            pair = np.stack([bad, good] if start_bad else [good, bad], axis=1).ravel()
            runs.append(pair)
            total += int(pair.sum())
        lengths = np.concatenate(runs)
        # The first run is in the stationary state; memorylessness makes its length Geom too.
        states = np.zeros(lengths.size, dtype=bool)
        states[(0 if start_bad else 1)::2] = True
        return np.repeat(states, lengths)[:n]


def packet_loss_mask(n_samples: int, samples_per_packet: int, channel: GilbertElliottChannel,
                     rng: np.random.Generator) -> np.ndarray:
    """bool (n_samples,), True = delivered; samples travel in packets of `samples_per_packet`."""
    n_packets = -(-n_samples // samples_per_packet)
    lost = channel.lost(n_packets, rng)
    return ~np.repeat(lost, samples_per_packet)[:n_samples]


def burst_lengths(lost: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True in a bool vector (the loss bursts)."""
    x = np.concatenate([[False], np.asarray(lost, dtype=bool), [False]]).astype(np.int8)
    d = np.diff(x)
    return np.flatnonzero(d == -1) - np.flatnonzero(d == 1)
