"""Typed configs for mobifuse: simulator, stereo, DEI, network, training and benchmark.

Every field carries a one-line comment; YAML files in `configs/mobifuse/` override them and
unknown or mistyped keys fail before any work starts (`shared.config`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shared.config import NonNegFloat, NonNegInt, PosFloat, PosInt, Prob


@dataclass
class SimConfig:
    """The seeded scene simulator (`mobifuse.simulator`); lengths in metres."""

    width: PosInt = 320  # RGB width (px); the network works at ceil(width / work_downsample)
    height: PosInt = 240  # RGB height (px)
    focal_px: PosFloat = 280.0  # RGB focal length (px), both cameras (rectified pair)
    baseline_m: PosFloat = 0.015  # stereo baseline, phone-like
    cx_offset_px: float = 0.0  # left principal point minus the image centre, x (px)
    doffs_px: float = 0.0  # right minus left principal point, x (px): Z = f B / (d + doffs)
    scene_scale: PosFloat = 1.0  # every length of the sampled room and objects x this
    work_downsample: PosInt = 2  # network/evaluation resolution = RGB resolution / this
    tof_width: PosInt = 80  # ToF sensor width (px)
    tof_height: PosInt = 60  # ToF sensor height (px)
    tof_focal_px: PosFloat = 70.0  # ToF focal length (px)
    tof_offset_m: tuple[float, ...] = (0.02, 0.006, 0.0)  # ToF centre in the left camera frame
    tof_yaw_deg: float = 0.6  # small ToF rotation about the vertical axis
    mod_freq_hz: PosFloat = 30e6  # AMCW modulation frequency; unambiguous range c / (2 f)
    supersample: PosInt = 3  # sub-rays per ToF pixel side (edge mixing -> flying pixels)
    tof_power: PosFloat = 6.0e4  # direct amplitude (e-) at 1 m, IR albedo 1, normal incidence
    tof_read_noise: NonNegFloat = 20.0  # ToF read noise (electrons)
    tof_dark: NonNegFloat = 200.0  # ToF dark level (electrons)
    multipath_gain: NonNegFloat = 1.0  # scales the one-bounce multipath term (0 disables it)
    mpi_stride: PosInt = 4  # ToF pixels per multipath patch side
    wiggle_m: NonNegFloat = 0.01  # amplitude of the cyclic (4th-harmonic) wiggling error
    dropout_amplitude: NonNegFloat = 150.0  # ToF pixels below this amplitude (e-) are invalid
    min_snr: NonNegFloat = 4.0  # ... and so are pixels whose amplitude / noise sigma is below this
    ambient_range: tuple[float, ...] = (0.0, 3.0e4)  # ambient IR level (electrons at albedo 1)
    sun_prob: Prob = 0.5  # probability of a sunlit patch (ambient x sun_gain) in a scene
    sun_gain: NonNegFloat = 6.0  # ambient multiplier inside the sunlit patch
    lux_range: tuple[float, ...] = (20.0, 400.0)  # scene illuminance (lux), scales RGB photons
    photons_per_lux: PosFloat = 4.0  # RGB photo-electrons per lux at albedo 1
    rgb_read_noise: NonNegFloat = 3.0  # RGB read noise (electrons)
    n_objects: tuple[int, ...] = (3, 7)  # objects per scene, inclusive range
    object_depth: tuple[float, ...] = (0.3, 4.0)  # object centre depth range
    room_depth: tuple[float, ...] = (2.5, 4.5)  # back wall distance range
    texture_levels: tuple[float, ...] = (0.0, 0.05, 0.25, 0.6)  # texture strengths drawn from

    def validate(self) -> None:
        if len(self.tof_offset_m) != 3:
            raise ValueError("tof_offset_m must have 3 entries (x, y, z)")
        for name in ("ambient_range", "lux_range", "object_depth", "room_depth", "n_objects"):
            v = getattr(self, name)
            if len(v) != 2 or v[0] > v[1]:
                raise ValueError(f"{name} must be [low, high] with low <= high")
        if min(self.width, self.height, self.tof_width, self.tof_height, self.supersample) < 1:
            raise ValueError("resolutions and supersample must be >= 1")
        if self.mod_freq_hz <= 0 or self.focal_px <= 0 or self.baseline_m <= 0:
            raise ValueError("mod_freq_hz, focal_px and baseline_m must be positive")


@dataclass
class RigFamily:
    """Ranges the rig-randomised simulator draws each scene's camera rig from
    (`simulator.sample_rig`; focal length, baseline and modulation frequency log-uniform)."""

    baseline_m: tuple[float, ...] = (0.01, 0.25)  # stereo baseline (m)
    focal_px: tuple[float, ...] = (250.0, 1200.0)  # RGB focal length (px)
    width: tuple[int, ...] = (256, 1024)  # RGB width (px), odd widths included; height = 3/4
    cx_offset_px: tuple[float, ...] = (-20.0, 20.0)  # left principal point off the centre (px)
    doffs_px: tuple[float, ...] = (-40.0, 120.0)  # right minus left principal point, x (px)
    scene_scale: tuple[float, ...] = (0.5, 1.8)  # room + object size factor (depths ~0.3-8 m)
    tof_ratio: tuple[int, ...] = (2, 8)  # ToF resolution = RGB / this (integer, inclusive)
    mod_freq_hz: tuple[float, ...] = (20e6, 80e6)  # ToF modulation frequency

    def validate(self) -> None:
        for name in ("baseline_m", "focal_px", "width", "cx_offset_px", "doffs_px",
                     "scene_scale", "tof_ratio", "mod_freq_hz"):
            v = getattr(self, name)
            if len(v) != 2 or v[0] > v[1]:
                raise ValueError(f"{name} must be [low, high] with low <= high")
        if min(self.baseline_m[0], self.focal_px[0], self.scene_scale[0],
               self.mod_freq_hz[0]) <= 0 or self.width[0] < 64 or self.tof_ratio[0] < 1:
            raise ValueError("rig ranges must be positive (width >= 64, tof_ratio >= 1)")


@dataclass
class StereoConfig:
    """OpenCV SGBM settings (`mobifuse.stereo`). 0 = derive the value: the disparity search from
    the calibration and the depth range, block size and P1/P2 from the image size and channels
    (OpenCV's recommended values, see `stereo.sgbm_params`)."""

    num_disparities: NonNegInt = 0  # search range (multiple of 16); 0: from calibration + depths
    min_disparity: int = 0  # first disparity searched, used when num_disparities > 0
    max_disparities: PosInt = 256  # cap of a derived search range (a warning when it clips)
    depth_range: tuple[float, ...] = (0.3, 10.0)  # depths searched without ToF or calibration range
    block_size: NonNegInt = 0  # matching block (odd); 0: 3 below 500 px wide, 5 to 1000, 7 above
    color: bool = False  # match on RGB (cn = 3 in P1/P2) instead of grey
    p1: NonNegInt = 0  # SGBM smoothness penalty P1; 0: 8 cn block^2
    p2: NonNegInt = 0  # SGBM penalty P2 (> P1); 0: 32 cn block^2
    uniqueness_ratio: NonNegInt = 10  # SGBM uniqueness ratio (%); OpenCV suggests 5-15
    speckle_window: NonNegInt = 100  # speckle filter window (0 disables); OpenCV: 50-200
    speckle_range: NonNegInt = 2  # speckle filter disparity range (x16 inside OpenCV); 1-2
    pre_filter_cap: PosInt = 63  # SGBM pre-filter clip
    lr_max_diff: NonNegFloat = 1.0  # left-right check tolerance (px) for the validity mask

    def validate(self) -> None:
        if self.num_disparities % 16:
            raise ValueError("num_disparities must be 0 (derive) or a positive multiple of 16")
        if self.max_disparities % 16:
            raise ValueError("max_disparities must be a positive multiple of 16")
        if self.block_size and self.block_size % 2 == 0:
            raise ValueError("block_size must be 0 (derive) or odd")
        if self.p2 and self.p2 <= self.p1:
            raise ValueError("p2 must be larger than p1")
        if len(self.depth_range) != 2 or not 0 < self.depth_range[0] < self.depth_range[1]:
            raise ValueError("depth_range must be [near, far] with 0 < near < far")


@dataclass
class DEIConfig:
    """Depth Error Indication coefficients (`mobifuse.dei`)."""

    mpi_coef: NonNegFloat = 0.03  # metres of expected error per unit concavity x depth
    edge_coef: NonNegFloat = 3.0  # expected error per metre of depth jump across a pixel
    wrap_margin: Prob = 0.15  # fraction of the unambiguous range where wrap risk rises
    hole_sigma: PosFloat = 1.0  # sigma (m) assigned where the sensor gave nothing
    texture_eps: PosFloat = 2.0  # regulariser of the texture term (grey levels^2)
    disp_noise_px: NonNegFloat = 0.15  # disparity error floor (px)
    texture_coef: NonNegFloat = 6.0  # disparity error (px) per unit 1/sqrt(texture)
    lr_coef: NonNegFloat = 0.5  # disparity error (px) per px of left-right inconsistency
    uniq_coef: NonNegFloat = 1.0  # disparity error (px) for an ambiguous (margin 0) match
    dark_coef: NonNegFloat = 20.0  # disparity error (px) x grey level for dark images
    curv_coef: NonNegFloat = 0.5  # disparity error (px) for a flat matching-cost minimum
    hole_rel: NonNegFloat = 0.3  # extra sigma (x depth) where the sensor gave nothing
    # stereo depth factor: "own" = the stereo's own depth Z; "local_quantile" = max(Z, the
    # st_ref_quantile quantile of Z over a window st_ref_window x the width wide), robust to
    # gross mismatches, which read near (`dei.stereo_depth_reference`); changes the nets' inputs
    # ("own" needs its own factors: st_scale 1.0881, st_hole_scale 1; tof_scale is the same)
    st_depth_ref: Literal["own", "local_quantile"] = "local_quantile"
    st_ref_quantile: Prob = 0.75  # quantile of the stereo depth in the window
    st_ref_window: Prob = 0.4  # window side as a fraction of the frame width
    # ToF multipath compensation before everything else (`multipath.compensate_multipath`):
    # the depth minus this gain x the radiometric one-bounce estimate from the frame's own depth
    # and amplitude (0: off; 0.75 fitted on training-rig scenes, results/mobifuse/NOTES.md)
    tof_mpi_gain: NonNegFloat = 0.0
    # ToF splatting into the view (`geometry.reproject_tof`): samples within (1 + this) x the
    # nearest depth are one surface, and the one projected nearest the pixel centre wins
    # (0: the nearest sample, which reads near where footprints overlap)
    tof_surface_tol: NonNegFloat = 0.0
    # calibration factors, fit by `python -m mobifuse.experiments.calibrate_dei` (95 % of
    # |error| <= 2 sigma on held-out scenes of the bench's training rigs)
    tof_scale: PosFloat = 0.4332  # calibration factor of sigma_tof
    st_scale: PosFloat = 0.2334  # calibration factor of sigma_st (matched pixels)
    st_hole_scale: PosFloat = 4.4  # factor of the stereo hole term relative to st_scale


@dataclass
class NetConfig:
    """The two-stage fusion network (`mobifuse.models.TwoStageFusionNet`)."""

    widths: tuple[PosInt, ...] = (8, 16, 32)  # channels at scales 1/2, 1/4, 1/8
    refine_width: PosInt = 8  # channels of the full-resolution refinement convs
    snap_radius: NonNegInt = 2  # EdgeSnap window radius (candidates (2r+1)^2); 0 disables the stage
    snap_dilation: PosInt = 2  # EdgeSnap candidate spacing (work px); ToF px = 2 work px
    use_dei: bool = True  # False: the no-DEI ablation (DEI channels zeroed)
    guard_radius: NonNegInt = 2  # output clipped to the inputs' (2r+1)^2 hull (convex guard)
    max_depth: PosFloat = 5.0  # depth normaliser (m)
    # two more error-encoder inputs: each pixel's ray direction (u - cx) / f, (v - cy) / f on
    # the work grid (`models.ray_maps`), so a crop knows its camera (CAM-Convs, Facil et al. 2019)
    ray_channels: bool = False
    # two more, after the rays: the frame's field of view, tan of its half angles W / (2 f_x),
    # H / (2 f_y), constant over the frame, so a crop knows the whole view it comes from
    # (`models.fov_maps`)
    fov_channels: bool = False


@dataclass
class TrainConfig:
    """`python -m mobifuse.train`: simulate scenes, train the fusion net, save weights."""

    seed: int = 0  # seeds scenes, init and batches
    device: str = "cpu"  # auto | cpu | cuda
    sim: SimConfig = field(default_factory=SimConfig)
    rigs: RigFamily | None = None  # draw every scene's rig from these ranges (None: `sim`'s)
    stereo: StereoConfig = field(default_factory=StereoConfig)
    dei: DEIConfig = field(default_factory=DEIConfig)
    net: NetConfig = field(default_factory=NetConfig)
    train_scenes: PosInt = 160  # simulated training scenes
    val_scenes: PosInt = 16  # held-out validation scenes (different seeds)
    steps: PosInt = 1500  # optimiser steps
    batch_size: PosInt = 8  # crops per step
    crop: PosInt = 64  # square training crop (px, work resolution)
    lr: PosFloat = 2e-3  # AdamW learning rate (cosine decay)
    weight_decay: NonNegFloat = 1e-4  # AdamW weight decay
    grad_weight: NonNegFloat = 0.5  # weight of the gradient-matching loss term
    stereo_scale_prob: Prob = 0.0  # share of crops with scaled stereo error (train.stereo_scaled)
    stereo_scale_min: Prob = 0.05  # smallest stereo error scale alpha (log-uniform in [min, 1])
    # low-frequency residual term (`models.low_frequency_loss`; 0: off): the block-mean of
    # (depth - lf_target) on ToF-valid pixels whose DEI multipath channel is below lf_mpi_max
    lf_weight: NonNegFloat = 0.0  # weight of the term in the training loss
    lf_block: PosInt = 16  # tile side (work px); must divide `crop`
    lf_target: Literal["gt", "tof"] = "gt"  # residual against the truth or the ToF input
    lf_mpi_max: NonNegFloat = 0.1  # pixels count where clip(concavity / 0.05, 0, 3) < this
    ckpt_every: PosInt = 250  # steps between resumable checkpoints
    threads: PosInt = 1  # torch CPU threads (1: OpenMP barriers thrash on a shared CPU)

    def validate(self) -> None:
        if self.train_scenes < 1 or self.steps < 1 or self.batch_size < 1:
            raise ValueError("train_scenes, steps and batch_size must be >= 1")
        if self.crop % 8:
            raise ValueError("crop must be a multiple of 8")
        if self.crop % self.lf_block:
            raise ValueError("lf_block must divide crop")


@dataclass
class BenchConfig:
    """`python -m mobifuse.bench`: all methods on the same held-out simulated scenes."""

    train: TrainConfig = field(default_factory=TrainConfig)
    test_scenes: PosInt = 24  # held-out scenes for the overall table
    sweep_scenes: PosInt = 6  # scenes per sweep point
    sweep_ambient: tuple[float, ...] = (0.0, 1.5e4, 4.0e4, 8.0e4)  # ambient IR levels
    sweep_albedo: tuple[float, ...] = (0.05, 0.15, 0.4, 0.9)  # IR albedo of every surface
    sweep_texture: tuple[float, ...] = (0.0, 0.05, 0.25, 0.6)  # texture strength of every surface
    sweep_distance: tuple[float, ...] = (0.5, 1.5, 2.5, 3.5)  # object centre depth (m)
    latency_repeats: PosInt = 10  # timed inference repeats at 320x240
    chamfer_points: PosInt = 4000  # points per cloud for the Chamfer distance
    # cross-rig: a net trained on `train_rigs` only, tested on `test_rigs` it never saw
    train_rigs: RigFamily = field(default_factory=lambda: RigFamily(
        baseline_m=(0.01, 0.05), focal_px=(250.0, 600.0), width=(256, 480)))
    test_rigs: RigFamily = field(default_factory=lambda: RigFamily(
        baseline_m=(0.10, 0.25), focal_px=(800.0, 1200.0), width=(480, 1024)))
    rig_train_scenes: PosInt = 1536  # training scenes of the cross-rig net (train_rigs)
    rig_steps: PosInt = 25600  # its optimiser steps
    # its TrainConfig.lf_weight (the low-frequency residual term; None: train.lf_weight, which
    # the fixed-rig nets use)
    rig_lf_weight: NonNegFloat | None = None
    # the cross-rig net takes its camera: ray-direction and field-of-view maps
    # (`NetConfig.ray_channels`, `fov_channels`), the fixed-rig nets do not
    rig_camera_maps: bool = False
    # the cross-rig net's ToF input multipath-compensated (`DEIConfig.tof_mpi_gain` of its
    # training and of the frames it is scored on; the baselines keep the sensor's depth); 0: off
    rig_mpi_gain: NonNegFloat = 0.0
    # the cross-rig net's ToF splatted by the surface rule (`DEIConfig.tof_surface_tol`); 0: off
    rig_surface_tol: NonNegFloat = 0.0
    rig_test_scenes: PosInt = 12  # unseen-rig test scenes (test_rigs)
    rig_infamily_scenes: PosInt = 8  # held-out scenes of train_rigs
    pipeline_size: tuple[int, ...] = (640, 480)  # frame (W, H) of the end-to-end latency
    pipeline_threads: PosInt = 2  # cores the end-to-end latency may use
    agree_k: NonNegFloat = 1.0  # stereo-agreement refinement of the DEI net (0: off)
    # the scene-wide stereo offset's gate for the bench's own nets, fixed-rig and cross-rig
    # (`offset.stereo_offset`; 0: off); the shipped default model's arm uses its own (none)
    offset_gate: NonNegFloat = 1.0
