"""Typed configuration of a RobWE run (YAML -> these dataclasses via `shared.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from shared.config import NonNegFloat, NonNegInt, PosFloat, PosInt, Prob, Range

__all__ = ["DataConfig", "ModelConfig", "FLConfig", "WatermarkConfig", "ThreatConfig",
           "DetectionConfig", "AttackConfig", "RobWEConfig"]


@dataclass
class DataConfig:
    dataset: Literal["mnist5k", "digits", "mnist_idx", "cifar10"] = "mnist5k"  # see robwe.data
    path: str = ""  # directory of the IDX files / CIFAR-10 python batches (mnist_idx, cifar10)
    partition: Literal["dirichlet", "klabel"] = "dirichlet"  # non-IID split over clients
    beta: PosFloat = 0.5  # Dirichlet concentration (partition=dirichlet)
    k: PosInt = 4  # classes per client (partition=klabel)
    num_clients: PosInt = 20  # N; client i owns slice i of the shared weights
    test_frac: Prob = 0.2  # per-client held-out share (personalised test set)
    max_samples: NonNegInt = 0  # cap on the dataset size before partitioning (0 = all)

    def validate(self) -> None:
        if self.num_clients < 2:
            raise ValueError(f"num_clients must be >= 2, got {self.num_clients}")
        if self.dataset in ("mnist_idx", "cifar10") and not self.path:
            raise ValueError(f"dataset '{self.dataset}' needs data.path (a directory)")
        if self.dataset in ("mnist_idx", "cifar10") and not Path(self.path).is_dir():
            kind = "CIFAR-10" if self.dataset == "cifar10" else "MNIST"
            raise ValueError(f"data.path: {kind} directory not found: {self.path}")


@dataclass
class ModelConfig:
    kind: Literal["mlp", "cnn"] = "mlp"  # body architecture; the head is one Linear layer
    hidden: list[PosInt] = field(default_factory=lambda: [200, 100])  # mlp body widths
    channels: list[PosInt] = field(default_factory=lambda: [16, 32])  # cnn conv channels
    cnn_fc: PosInt = 128  # cnn body output width


@dataclass
class FLConfig:
    rounds: PosInt = 30  # communication rounds
    # share of (non-banned) clients sampled per round
    fraction: Annotated[float, Range(0, 1, lo_open=True)] = 0.5
    head_epochs: NonNegInt = 10  # FedRep: local epochs on the private head (body frozen)
    rep_epochs: NonNegInt = 1  # FedRep: local epochs on the shared body (head frozen)
    batch_size: PosInt = 10
    lr: PosFloat = 0.05  # paper code: 0.01 over 50 rounds of 500-sample clients
    momentum: Prob = 0.5
    weight_decay: NonNegFloat = 1e-4  # on weights, not biases
    # server protocol: each round also sample up to this many clients whose slice watermark
    # reads below watermark.target_bits in the global body (lowest first); 0 = plain sampling
    catch_up: NonNegInt = 2


@dataclass
class WatermarkConfig:
    head: bool = True  # private head watermark (Uchida projection of the head parameters)
    head_bits: PosInt = 64
    head_scale: NonNegFloat = 1.0  # weight of the head watermark loss
    slice: bool = True  # representation watermark in the client's slice of shared weights
    slice_bits: PosInt = 100  # m
    slice_scale: NonNegFloat = 10.0  # slice watermark loss weight (paper code 0.1; see README)
    placement: Literal["slice", "shared"] = "slice"  # shared = all clients on the same weights
    shared_len: NonNegInt = 0  # placement=shared: carrier length (0 = the slice length)
    min_slice_ratio: PosFloat = 10.0  # require slice length >= ratio * slice_bits
    # slice i = [i*L, (i+1)*L) (the paper, public positions); "strided": i, i+N, i+2N, ...;
    # "scattered": L coordinates of a secret random permutation of y, so an attacker who knows
    # the scheme does not know which weights carry a victim's bits (an option against removal)
    layout: Literal["contiguous", "strided", "scattered"] = "scattered"
    repeat: PosInt = 1  # repetition code: each payload bit tiled r times (must divide the bits)
    # which shared weight tensors form y: all (the paper), or only the last one (the layer
    # feeding the head, where every weight matters to the task: an option against removal)
    carrier: Literal["all", "last"] = "all"
    target_bits: Prob = 0.99  # a watermark below this at the end is reported as under-embedded
    verify_bits: Prob = 0.9  # ownership verification threshold (robwe.ownership)

    def validate(self) -> None:
        for name in ("head_bits", "slice_bits"):
            if getattr(self, name) % self.repeat:
                raise ValueError(f"repeat={self.repeat} must divide {name}="
                                 f"{getattr(self, name)}")


@dataclass
class ThreatConfig:
    malicious_frac: Prob = 0.0  # share of clients that forge their slice key
    tampered_frac: Prob = 0.1  # share of bits flipped and key entries replaced by a forger

    def validate(self) -> None:
        for name in ("malicious_frac", "tampered_frac"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")


@dataclass
class DetectionConfig:
    enabled: bool = True  # server-side tampered-watermark detection before aggregation
    confidence: float = 0.997  # normal mode: accept above the two-sided lower bound
    confidence_bad: float = 0.5  # bad mode: reject below the flagged cohort's bound
    bad_nums: NonNegInt = 7  # flagged uploads before bad mode starts
    min_cohort: PosInt = 3  # fewer cohort members: accept untested
    estimator: Literal["gaussian", "robust"] = "robust"  # mean/std or median/1.4826*MAD
    min_std: NonNegFloat = 0.02  # floor on the cohort spread (bit-accuracy units)

    def validate(self) -> None:
        for name in ("confidence", "confidence_bad"):
            v = getattr(self, name)
            if not 0.0 < v < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {v}")


@dataclass
class AttackConfig:
    """The attacker of the README's threat model: its data share, budget and the strength axes
    of the robustness curves (`robwe.robustness.attack_curves`)."""

    data_fracs: list[Prob] = field(default_factory=lambda: [0.01, 0.1, 1.0])  # of victim's data
    steps: PosInt = 200  # SGD steps per attack (10 epochs of a 200-sample client at batch 10)
    # attacker lr = lr_mult * fl.lr for each of these (a careful attacker picks the best one)
    lr_mults: list[PosFloat] = field(default_factory=lambda: [0.25, 1.0])
    finetune_steps: list[NonNegInt] = field(default_factory=lambda: [0, 50, 100, 200])
    prune_rates: list[Prob] = field(default_factory=lambda: [0.3, 0.5, 0.7, 0.9])
    overwrite_weights: list[PosFloat] = field(default_factory=lambda: [1.0, 10.0, 100.0])
    overwrite_lr_mults: list[PosFloat] = field(default_factory=lambda: [4.0])  # at weight 1
    noise_strengths: list[PosFloat] = field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0])
    distill_temperature: PosFloat = 2.0

    def validate(self) -> None:
        if any(not 0.0 < f <= 1.0 for f in self.data_fracs):
            raise ValueError(f"data_fracs must be in (0, 1], got {self.data_fracs}")
        if any(not 0.0 <= r < 1.0 for r in self.prune_rates):
            raise ValueError(f"prune_rates must be in [0, 1), got {self.prune_rates}")


@dataclass
class RobWEConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    fl: FLConfig = field(default_factory=FLConfig)
    watermark: WatermarkConfig = field(default_factory=WatermarkConfig)
    threat: ThreatConfig = field(default_factory=ThreatConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    seed: int = 0
    device: str = "cpu"  # cpu (or auto): the tiny models and thousands of small steps run on CPU
    checkpoint_every: PosInt = 5  # rounds between checkpoints (train.py resume)
    # torch threads: the tiny models gain nothing from intra-op threads, and on a shared
    # machine two spinning threads made a quick-bench arm 5-8x slower than one (measured)
    threads: PosInt = 1

    def validate(self) -> None:
        if self.device not in ("cpu", "auto"):
            raise ValueError(f"device '{self.device}' is not supported: robwe runs on cpu")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
