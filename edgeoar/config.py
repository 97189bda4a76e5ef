"""Typed configs for edgeoar (YAML -> dataclasses via `shared.config`).

`StreamConfig` (the human-motion streams), `CodecConfig` (H.264 through PyAV), `ModelConfig`
(TFEM backbone, heads, gate), `TrainConfig` (the `python -m edgeoar.train` recipe: iterative /
full-clip-only / joint training), `ExitConfig` (exit policies, thresholds chosen on the
validation split) and `BenchConfig`. `validate()` rejects values the pipeline cannot run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from edgeoar.exits import OperatingRule
from shared.config import NonNegFloat, NonNegInt, PosFloat, PosInt, Prob

# `shared.motion.MotionConfig` settings of the training family: a short idle lead (cut with
# the eased-in start when the clip is trimmed to the onset, `StreamConfig.onset_m`) and a
# camera close enough for a 64 px frame; the generator's defaults for
# the rest (yaw -40..40 deg, pan/zoom, background families 0-2, 0-1 distractors, occluders)
IN_FAMILY = {"idle_seconds": [0.0, 0.15], "camera_distance": [2.4, 3.0]}
# the out-of-family test arm: camera yaw, distance and body height outside the training
# ranges, the other background families, more distractors (applied over IN_FAMILY)
OUT_OF_FAMILY = {"camera_yaw_deg": [45.0, 60.0], "camera_distance": [3.0, 3.4],
                 "height_range": [1.45, 1.6], "background_families": [3, 4, 5],
                 "n_distractors": [2, 3]}


@dataclass
class StreamConfig:
    """Single-action clips from `shared.motion`, trimmed to the action's onset."""

    image_size: PosInt = 64  # frame side in pixels (a multiple of 16: H.264 macroblocks)
    fps: PosInt = 15  # stream frame rate (frames per second)
    clip_frames: PosInt = 16  # frames of the full clip (the full-clip model's observation)
    actions: list[str] = field(default_factory=list)  # class names; empty = every action
    train_per_class: PosInt = 24  # training clips per class
    val_per_class: PosInt = 8  # validation clips per class (exit thresholds are set here)
    test_per_class: PosInt = 8  # in-family test clips per class
    ood_per_class: PosInt = 8  # out-of-family test clips per class (never trained or tuned on)
    motion: dict[str, Any] = field(default_factory=lambda: dict(IN_FAMILY))  # MotionConfig
    ood_motion: dict[str, Any] = field(default_factory=lambda: dict(OUT_OF_FAMILY))  # over motion
    seed: int = 0  # seeds every clip (splits use disjoint seeds)
    # clips start at the last frame before some joint has moved this far (metres; ~1 px at
    # the in-family distance and 64 px): trimmed to the action's onset; 0 = the generator's
    # timeline (idle hold and eased-in start, motion first visible 1-6 frames in)
    onset_m: NonNegFloat = 0.04

    def validate(self) -> None:
        if self.image_size % 16 or not 32 <= self.image_size <= 512:
            raise ValueError(f"stream.image_size={self.image_size} must be a multiple of 16 "
                             "in [32, 512]")
        if not 4 <= self.clip_frames <= 256:
            raise ValueError(f"stream.clip_frames={self.clip_frames} must be in [4, 256]")
        if not 1 <= self.fps <= 120:
            raise ValueError(f"stream.fps={self.fps} must be in [1, 120]")
        if len(set(self.actions)) != len(self.actions):
            raise ValueError(f"stream.actions has duplicates: {self.actions}")


@dataclass
class CodecConfig:
    """The H.264 round trip every stream goes through (`edgeoar.codec`)."""

    gop: PosInt = 8  # I-frame interval (frames); I-frames carry no motion vectors
    crf: NonNegInt = 23  # libx264 constant rate factor (0 lossless .. 51 worst)
    # x264 preset; ultrafast and superfast code every block as 16x16 (no partition to read)
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = "veryfast"
    cell: PosInt = 4  # pixels per cell of the motion-vector / partition grid

    def validate(self) -> None:
        if self.crf > 51:
            raise ValueError(f"codec.crf={self.crf} must be <= 51")
        if self.cell not in (4, 8, 16):
            raise ValueError(f"codec.cell={self.cell} must be 4, 8 or 16")


@dataclass
class ModelConfig:
    """The two-modality online recogniser (`edgeoar.models.OnlineRecognizer`)."""

    motion_source: Literal["codec", "diff"] = "codec"  # motion vectors or frame difference
    partition_guidance: bool = True  # MSEM from the codec block partition (codec source only)
    width: PosInt = 24  # channels of the first stage (later stages 4/3x, 2x)
    feat_dim: PosInt = 64  # per-frame feature size of each modality
    shift_div: PosInt = 8  # 1/shift_div of the channels shifted per temporal offset
    shift_offsets: list[PosInt] = field(default_factory=lambda: [1, 2])  # TLSM layers (frames)
    aggregation: Literal["max", "mean"] = "max"  # running aggregation over frames
    gate_hidden: PosInt = 32  # gate MLP width

    def validate(self) -> None:
        if not self.shift_offsets or len(set(self.shift_offsets)) != len(self.shift_offsets):
            raise ValueError(f"model.shift_offsets={self.shift_offsets} must be distinct, "
                             "non-empty")
        if self.shift_div < 2 * len(self.shift_offsets):
            raise ValueError("model.shift_div must be >= 2 x len(shift_offsets)")
        if self.motion_source == "diff" and self.partition_guidance:
            raise ValueError("model.partition_guidance needs motion_source=codec (the partition "
                             "comes from the decoder)")


@dataclass
class TrainConfig:
    """`python -m edgeoar.train`: streams -> codec -> model, gate/main training."""

    seed: int = 0  # network init and batch order
    device: str = "cpu"  # auto | cpu | cuda
    stream: StreamConfig = field(default_factory=StreamConfig)
    codec: CodecConfig = field(default_factory=CodecConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    mode: Literal["iterative", "full_clip", "joint"] = "iterative"  # training schedule
    rounds: PosInt = 3  # iterative rounds (main then gate); other modes: same epoch budget
    main_epochs: PosInt = 5  # f_Main epochs per round
    gate_epochs: PosInt = 1  # f_Gate epochs per round
    batch_size: PosInt = 16
    lr: PosFloat = 6e-3  # AdamW rate of the gate (and of a branch whose own rate is unset)
    # per-modality rates: each branch's per-frame CNN and its per-step classifiers
    # (`train.param_groups`); unset = lr. One shared 6e-3 is too high for the RGB branch (it
    # stays at chance); the configs carry rates tuned on validation (results/edgeoar/NOTES.md)
    lr_rgb: PosFloat | None = None
    lr_motion: PosFloat | None = None
    weight_decay: NonNegFloat = 1e-4
    early_weight: NonNegFloat = 1.0  # prefix t weighs 1 + early_weight * (1 - t/T)
    # weight of the full clip's self-distillation into every step's classifiers (f_Main
    # epochs; `train.distill_loss`); 0 = off
    distill: NonNegFloat = 0.0
    # each optimiser's rate over its own phase's epochs (`train.lr_factor`): none = constant,
    # cosine = half a cosine from the rate towards 0 (the last of 15 epochs at 0.3 %, of 3 at 7 %)
    lr_decay: Literal["none", "cosine"] = "none"
    augment: bool = True  # random horizontal shifts of each clip during training
    log_every: PosInt = 1  # epochs between progress log lines

    def validate(self) -> None:
        if self.batch_size > 4096:
            raise ValueError(f"batch_size={self.batch_size} must be <= 4096")
        for key in ("lr", "lr_rgb", "lr_motion"):
            v = getattr(self, key)
            if v is not None and v > 1.0:
                raise ValueError(f"{key}={v} must be <= 1")

    def branch_lr(self, branch: str) -> float:
        """The rate of a branch ('rgb' or 'motion'; anything else: the gate's `lr`)."""
        own = {"rgb": self.lr_rgb, "motion": self.lr_motion}.get(branch)
        return self.lr if own is None else own


@dataclass
class ExitConfig:
    """Exit policies and how their thresholds are chosen on the validation split."""

    tolerance: Prob = 0.02  # val accuracy may drop this much below the full clip's (target: 2)
    # how the operating point is chosen on validation (`exits.OperatingRule`): fewest_frames
    # (the fewest frames within the tolerance: the edge of the bar), budget (the most
    # accurate point within `frame_budget`), centre (the centre of the feasible region) or
    # lower_bound (the bar held by a lower confidence bound of the paired accuracy difference)
    rule: Literal["fewest_frames", "budget", "centre", "lower_bound"] = "fewest_frames"
    frame_budget: Prob = 0.34  # budget / centre: the largest mean fraction of frames allowed
    margin_z: PosFloat = 1.645  # lower_bound: one-sided normal quantile (1.645: 95 %)
    conf_grid: PosInt = 41  # thresholds swept per confidence policy
    mc_grid: list[Prob] = field(default_factory=lambda: [0.0, 0.5, 0.7, 0.8, 0.9, 0.95])
    random_seed: int = 0  # the random-exit baseline

    def validate(self) -> None:
        if self.conf_grid < 3:
            raise ValueError("exits.conf_grid must be >= 3")

    def operating_rule(self) -> OperatingRule:
        return OperatingRule(self.rule, self.tolerance, self.frame_budget, self.margin_z)


@dataclass
class BenchConfig:
    """`python -m edgeoar.bench`: every exit policy + the ablations, in- and out-of-family."""

    train: TrainConfig = field(default_factory=TrainConfig)
    exits: ExitConfig = field(default_factory=ExitConfig)
    ablations: bool = True  # also train full-clip-only, joint and frame-difference models
    timing_frames: PosInt = 32  # frames streamed for the per-frame compute figures
    energy_watts: PosFloat = 5.0  # assumed edge-board power for the energy proxy
