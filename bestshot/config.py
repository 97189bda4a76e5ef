"""Typed configuration of a BestShot run (YAML -> these dataclasses via `shared.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shared.config import NonNegFloat, NonNegInt, PosFloat, PosInt, Prob

__all__ = ["VideoConfig", "CaptionConfig", "ModelConfig", "TrainConfig", "BenchConfig",
           "EvalConfig"]


@dataclass
class VideoConfig:
    """One split of generated human-motion videos (`shared.motion`): what varies between the
    in-distribution and the out-of-distribution split is only these values."""

    n_videos: PosInt = 48  # clips in the split
    seed: int = 0  # the split's base seed (clip i uses seed + i)
    image_size: PosInt = 64  # rendered frame side (pixels)
    fps: PosInt = 8  # rendered frames per second
    clip_seconds: PosFloat = 6.0  # clip length
    highlight_seconds: NonNegFloat = 0.12  # highlight window = apex +- this
    segments: PosInt = 2  # actions per clip (> 1: sequences with transitions and idle)
    actions: list[str] = field(default_factory=list)  # action pool ([] = all)
    # held-out action combinations: pairs never generated together in training ("a+b")
    heldout_pairs: list[str] = field(default_factory=list)
    combos: Literal["any", "exclude_heldout", "only_heldout"] = "any"
    camera_yaw_range: list[float] = field(default_factory=lambda: [-35.0, 35.0])  # degrees
    camera_pitch_range: list[float] = field(default_factory=lambda: [0.0, 15.0])  # degrees
    camera_distance_range: list[float] = field(default_factory=lambda: [2.6, 3.2])  # metres
    height_range: list[float] = field(default_factory=lambda: [1.6, 1.85])  # metres
    proportion_range: list[float] = field(default_factory=lambda: [0.95, 1.05])  # limb scale
    n_distractors: NonNegInt = 0  # up to this many extra people in the background
    occluder_prob: Prob = 0.0  # chance of an occluding pole or box in front of the person
    background_families: list[NonNegInt] = field(default_factory=lambda: [0, 1, 2])

    def validate(self) -> None:
        for name in ("camera_yaw_range", "camera_pitch_range", "camera_distance_range",
                     "height_range", "proportion_range"):
            v = getattr(self, name)
            if len(v) != 2 or v[0] > v[1]:
                raise ValueError(f"{name} must be [lo, hi] with lo <= hi, got {v}")
        for p in self.heldout_pairs:
            if p.count("+") != 1:
                raise ValueError(f"heldout_pairs: '{p}' is not of the form 'action+action'")
        if self.combos == "only_heldout" and not self.heldout_pairs:
            raise ValueError("combos=only_heldout needs heldout_pairs")
        if self.combos == "only_heldout" and self.segments < 2:
            raise ValueError("combos=only_heldout needs segments >= 2")


@dataclass
class CaptionConfig:
    max_codes: PosInt = 5  # posecodes per pose sentence (the rarest kept)
    common: Prob = 0.6  # a category shared by more of the corpus is not described
    paraphrases: PosInt = 2  # noisy captions per frame (the first is the clean template text)
    skip_prob: Prob = 0.2  # random posecode skip in the noisy captions
    randomise_thresholds: bool = True  # randomised binning in the noisy captions
    fps_frames: NonNegInt = 0  # furthest-point sampling: keep this many training frames (0 = all)
    visual_only_prob: Prob = 0.3  # share of fine-tuning captions that are visual text only


@dataclass
class ModelConfig:
    """ShotVL-lite: MiniLM text tower (frozen; LoRA optional) + a small vision tower."""

    kind: Literal["resnet", "vit"] = "resnet"  # vision tower (both from transformers classes)
    image_size: PosInt = 64  # vision tower input side
    patch_size: PosInt = 8  # vit
    hidden: PosInt = 64  # output width (resnet: last stage channels; vit: width)
    layers: PosInt = 3  # resnet: blocks over its 3 stages; vit: transformer layers
    heads: PosInt = 4  # vit
    motion_channels: bool = True  # add frame_t - frame_{t-motion_gap} as 3 extra channels
    motion_gap: PosInt = 1  # frames between the two images of the motion channels
    embed_dim: PosInt = 128  # joint embedding size
    lora_r: NonNegInt = 0  # LoRA rank on the text tower's attention (0 = frozen, cached)
    max_text_tokens: PosInt = 96


@dataclass
class TrainConfig:
    video: VideoConfig = field(default_factory=VideoConfig)
    caption: CaptionConfig = field(default_factory=CaptionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    # base: visual-content text only; stage: + action-stage text; shotvl: + pose text
    text: Literal["base", "stage", "shotvl"] = "shotvl"
    init: str = ""  # run dir or weights file to fine-tune from ("" = from scratch)
    steps: PosInt = 400
    videos_per_batch: PosInt = 8  # V: videos per batch
    frames_per_video: PosInt = 12  # F: frames per video (intra-video hard negatives)
    lr: PosFloat = 2e-3
    weight_decay: NonNegFloat = 0.05
    intra_weight: NonNegFloat = 2.0  # weight of the intra-video text->frame loss
    temperature: PosFloat = 0.07  # initial softmax temperature
    # L2-SP: weight of sum ||theta - theta_init||^2 when fine-tuning from `init` (0 = off;
    # no effect when training from scratch)
    l2sp: NonNegFloat = 0.0
    seed: int = 0
    device: str = "cpu"
    ckpt_every: PosInt = 100  # steps between checkpoints (rerun with the same --out resumes)

    def validate(self) -> None:
        if self.frames_per_video < 2:
            raise ValueError("frames_per_video must be >= 2 (hard negatives need two frames)")


@dataclass
class BenchConfig:
    train: TrainConfig = field(default_factory=TrainConfig)
    base_steps: PosInt = 300  # base model (visual-content text only)
    finetune_steps: PosInt = 300  # each fine-tuned arm (stage text; stage + pose text)
    test: VideoConfig = field(default_factory=lambda: VideoConfig(n_videos=16, seed=10_000))
    ood: VideoConfig = field(default_factory=lambda: VideoConfig(
        n_videos=16, seed=20_000, combos="only_heldout", camera_yaw_range=[40.0, 60.0],
        camera_pitch_range=[15.0, 25.0], height_range=[1.45, 1.6],
        proportion_range=[1.08, 1.15]))
    # validation: more held-out clips of the training distribution; the only split the WiSE-FT
    # mixing coefficient is chosen on (test and ood are never used for a choice)
    val: VideoConfig = field(default_factory=lambda: VideoConfig(n_videos=16, seed=30_000))
    # WiSE-FT: the fine-tuned arms are (1 - alpha) base + alpha fine-tuned, alpha chosen on
    # `val` from this grid ([1.0] = plain fine-tuning): the best Hit@1 among the alphas whose
    # retention R@1 is at most wise_tolerance below the base model's
    wise_alphas: list[Prob] = field(default_factory=lambda: [i / 10 for i in range(11)])
    wise_tolerance: Prob = 0.02
    smooth: NonNegInt = 1  # temporal smoothing half-width for the model arms (frames)
    ks: list[PosInt] = field(default_factory=lambda: [1, 2])  # Hit@1 +-k
    retention_videos: PosInt = 16  # gallery size of the visual-text -> frame R@1
    # retention R@1 is measured on this many extra clips of each split's distribution (disjoint
    # galleries of retention_videos): 16 clips give one visual text per clip, too few to see
    # a 2-point change
    retention_clips: PosInt = 128

    def validate(self) -> None:
        if not self.wise_alphas:
            raise ValueError("wise_alphas must list at least one alpha")


@dataclass
class EvalConfig:
    split: VideoConfig = field(default_factory=lambda: VideoConfig(n_videos=16, seed=10_000))
    caption: CaptionConfig = field(default_factory=CaptionConfig)
    heldout_phrasing: bool = False  # phrase the queries with the held-out templates
    smooth: NonNegInt = 1  # temporal smoothing half-width (frames)
    ks: list[PosInt] = field(default_factory=lambda: [1, 2])  # Hit@1 +-k
    # temporal localisation (THUMOS-style mAP): per clip and action, the action's description
    # as the query; frames scoring >= mean + loc_std x std form the predicted segments
    loc_std: float = 0.5
    seed: int = 0
