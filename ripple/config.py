"""Typed configs of `ripple` (YAML -> dataclasses via `shared.config`).

`RippleConfig` is the whole truth about a train / eval / bench run: the small ReLU OPT model, how
it is trained, where the activation masks come from, and the I/O system being modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.config import NonNegFloat, NonNegInt, PosFloat, PosInt, Prob

__all__ = ["ModelConfig", "TrainConfig", "MaskConfig", "StorageConfig", "OnlineConfig",
           "RippleConfig"]


@dataclass
class ModelConfig:
    d_model: PosInt = 128  # hidden size of the OPT model
    ffn_dim: PosInt = 2048  # FFN width = neurons per layer
    layers: PosInt = 4  # decoder layers (one FFN each)
    heads: PosInt = 4  # attention heads
    max_positions: PosInt = 256  # longest sequence the positional table holds

    def validate(self) -> None:
        if min(self.d_model, self.ffn_dim, self.layers, self.heads) < 1:
            raise ValueError("d_model, ffn_dim, layers and heads must be >= 1")
        if self.d_model % self.heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by heads={self.heads}")


@dataclass
class TrainConfig:
    steps: PosInt = 500  # optimiser steps of byte-level LM pretraining
    batch_size: PosInt = 8  # windows per step
    seq_len: PosInt = 128  # tokens per window
    lr: PosFloat = 2e-3  # peak learning rate (AdamW, warm-up + cosine)
    l1: NonNegFloat = 1e-3  # weight of the L1 penalty on FFN activations (pushes sparsity to ~OPT)
    train_bytes: PosInt = 4_000_000  # bytes of the stdlib-py train split used for training

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.seq_len < 2:
            raise ValueError("steps, batch_size must be >= 1 and seq_len >= 2")
        if self.l1 < 0 or self.lr <= 0:
            raise ValueError("l1 must be >= 0 and lr > 0")


@dataclass
class MaskConfig:
    calib_tokens: PosInt = 8192  # tokens of calibration text (co-activation statistics)
    test_tokens: PosInt = 2048  # tokens of held-out text whose masks drive the I/O simulation
    seq_len: PosInt = 128  # window length of the forward passes that record masks
    calib_source: str = "stdlib-py"  # corpus the placement is calibrated on (train split)
    test_sources: list[str] = field(default_factory=lambda: ["stdlib-py", "pydoc-topics"])

    def validate(self) -> None:
        if self.calib_tokens < self.seq_len or self.test_tokens < self.seq_len:
            raise ValueError("calib_tokens and test_tokens must be >= seq_len")


@dataclass
class StorageConfig:
    bandwidth: PosFloat = 2.9e9  # sequential bandwidth of the modelled UFS 4.0 device, bytes/s
    knee_bytes: PosInt = 24576  # read size at which bandwidth saturates (IOPS_max = bw / knee)
    queue_depth: PosInt = 32  # UFS command queue entries
    page: PosInt = 4096  # flash page / O_DIRECT alignment

    def validate(self) -> None:
        if self.bandwidth <= 0 or self.knee_bytes < 1 or self.queue_depth < 1:
            raise ValueError("bandwidth, knee_bytes and queue_depth must be positive")
        if self.page < 512 or self.page & (self.page - 1):
            raise ValueError(f"page={self.page} must be a power of two >= 512")


@dataclass
class OnlineConfig:
    cache_ratio: float = 0.1  # DRAM cache size as a fraction of each layer's neurons (all arms)
    window: PosInt = 5  # LLM-in-a-flash windowing: keep neurons active in the last k tokens
    top_k: PosInt = 128  # neighbours kept per neuron by the offline placement (memory O(nK))
    gap_candidates: list[NonNegInt] = field(default_factory=lambda: [0, 1, 2, 3, 4, 6, 8, 12, 16])
    retune_every: PosInt = 16  # tokens between run-time re-tunings of the collapse threshold
    saturation: Prob = 0.9  # bottleneck detector: collapse off when bw >= this x device max
    segment_min: PosInt = 2  # a run this long (in bundles) is a "continuous segment"
    segment_admit: Prob = 0.1  # admission probability of neurons inside continuous segments

    def validate(self) -> None:
        if not 0 < self.cache_ratio < 1:
            raise ValueError(f"cache_ratio={self.cache_ratio} must be in (0, 1)")
        if not 0 <= self.segment_admit <= 1:
            raise ValueError("segment_admit must be a probability")
        if self.window < 1 or self.top_k < 1 or self.retune_every < 1 or self.segment_min < 2:
            raise ValueError("window, top_k, retune_every must be >= 1 and segment_min >= 2")
        if not self.gap_candidates or min(self.gap_candidates) < 0:
            raise ValueError("gap_candidates must be a non-empty list of gaps >= 0")


@dataclass
class RippleConfig:
    seed: int = 0  # seeds training, mask windows and the admission coin flips
    device: str = "cpu"  # torch device for training and mask collection
    checkpoint: str = ""  # an HF OPT / ReLU checkpoint dir to use instead of training ("" = train)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    masks: MaskConfig = field(default_factory=MaskConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    scaled_d_models: list[PosInt] = field(default_factory=lambda: [2048, 4096])  # fp16 bundles
    real_read_tokens: PosInt = 64  # tokens replayed as real O_DIRECT reads per arm
    real_read_repeats: PosInt = 3  # interleaved passes over the arms; the median pass is reported
    placement_sizes: list[PosInt] = field(default_factory=lambda: [2048, 4096, 8192, 16384])

    def validate(self) -> None:
        if self.real_read_tokens < 1 or self.real_read_repeats < 1:
            raise ValueError("real_read_tokens and real_read_repeats must be >= 1")
        if not self.placement_sizes or min(self.placement_sizes) < 2:
            raise ValueError("placement_sizes must list layer sizes >= 2")
