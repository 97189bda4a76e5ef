"""Typed configs for twscardio (YAML -> dataclasses via `shared.config`).

One dataclass per pipeline stage, nested in `TrainConfig` (the recipe config) and `BenchConfig`.
Every field carries a one-line comment; `validate()` rejects values outside the ranges the
paper's setting and the simulator support.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from shared.config import NonNegFloat, NonNegInt, PosFloat, PosInt, Prob, Range


@dataclass
class ChannelConfig:
    """Bluetooth link: a Gilbert-Elliott packet-loss channel per bud."""

    loss: float = 0.1  # stationary packet-loss rate, 0..0.3 in the paper's sweep
    burst: PosFloat = 3.0  # mean burst length in packets (1/r), 1..8
    samples_per_packet: PosInt = 2  # IMU samples per BLE packet, 1..4
    independent_buds: bool = True  # each bud has its own link (else one loss pattern for both)

    def validate(self) -> None:
        if not 0.0 <= self.loss < 0.9:
            raise ValueError(f"channel.loss={self.loss} must be in [0, 0.9)")
        if self.burst < 1.0:
            raise ValueError(f"channel.burst={self.burst} must be >= 1 packet")
        if not 1 <= self.samples_per_packet <= 16:
            raise ValueError(f"channel.samples_per_packet={self.samples_per_packet} not in 1..16")


@dataclass
class SimConfig:
    """Physiological earbud-IMU simulator (see `twscardio.simulator` for the assumptions)."""

    duration_s: PosFloat = 60.0  # recording length
    fs_sim: PosFloat = 500.0  # internal physics rate (Hz)
    fs_in: PosFloat = 50.0  # IMU output rate delivered to the phone (15/25/50/100 Hz)
    fs_ref: PosFloat = 100.0  # reference SCG/ECG rate (Hz), also the network's output grid
    hr_range: list[float] = field(default_factory=lambda: [55.0, 95.0])  # subject mean HR, bpm
    motion_level: NonNegFloat = 0.0  # 0 none, 1 low, 2 medium, 3 high (head turns/nods, chewing)
    walking: bool = False  # add gait impacts (1.6-2.2 Hz) to the motion
    accel_noise_ug: NonNegFloat = 100.0  # accelerometer noise density, ug/sqrt(Hz)
    gyro_noise_dps: NonNegFloat = 0.005  # gyroscope noise density, deg/s/sqrt(Hz)
    timestamp_jitter_s: NonNegFloat = 0.0005  # std of sampling-instant jitter
    clock_drift_ppm: NonNegFloat = 20.0  # max |drift| of the bud clock
    rate_jitter: NonNegFloat = 0.0  # relative std of the IMU interval (irregular AirPods rate)
    # "randomised": the widened morphology / coupling / rhythm / noise family the network trains
    # on (`twscardio.simulator`); "fixed": the original single family
    morphology: Literal["fixed", "randomised"] = "fixed"
    channel: ChannelConfig = field(default_factory=ChannelConfig)

    def validate(self) -> None:
        if self.duration_s < 2.0:
            raise ValueError(f"sim.duration_s={self.duration_s} must be >= 2 s")
        if not 5.0 <= self.fs_in <= self.fs_sim / 4:
            raise ValueError(f"sim.fs_in={self.fs_in} must be in [5, fs_sim/4]")
        if self.fs_ref > self.fs_sim / 2:
            raise ValueError(f"sim.fs_ref={self.fs_ref} must be <= fs_sim/2")
        if len(self.hr_range) != 2 or not 30 <= self.hr_range[0] <= self.hr_range[1] <= 180:
            raise ValueError(f"sim.hr_range={self.hr_range} must be [lo, hi] within 30..180")
        if not 0.0 <= self.motion_level <= 5.0:
            raise ValueError(f"sim.motion_level={self.motion_level} must be in [0, 5]")
        if not 0.0 <= self.rate_jitter < 0.3:
            raise ValueError(f"sim.rate_jitter={self.rate_jitter} must be in [0, 0.3)")


@dataclass
class EnhanceConfig:
    """Enhancement: gaps, validity mask, short-gap fill, uniform resampling (sec. 2.2.1-2)."""

    fs_out: PosFloat = 100.0  # uniform output grid (Hz)
    gap_factor: PosFloat = 1.5  # a gap is an interval > gap_factor / fs_nominal
    max_short_gap: NonNegInt = 2  # missing samples filled by PCHIP and marked valid
    method: Literal["spline", "pchip", "linear", "bandlimited"] = "spline"  # upsampler

    def validate(self) -> None:
        if self.gap_factor <= 1.0:
            raise ValueError(f"enhance.gap_factor={self.gap_factor} must be > 1")
        if self.max_short_gap < 0:
            raise ValueError("enhance.max_short_gap must be >= 0")


@dataclass
class FusionConfig:
    """Motion handling by multi-axis fusion (sec. 2.2.3)."""

    band_hz: list[float] = field(default_factory=lambda: [0.7, 15.0])  # BCG band-pass
    window_s: PosFloat = 5.0  # fusion / SQI window
    ridge: NonNegFloat = 1e-5  # ridge of the gyro-referenced canceller (x regressor power)
    gate_gyro_rms: NonNegFloat = 0.05  # rad/s: below this the canceller only detrends (no gyro fit)
    period_range_s: list[float] = field(default_factory=lambda: [0.4, 1.5])  # beat lags for SQI
    reject_gyro_rms: NonNegFloat = 1.5  # rad/s: above this the window is rejected as unusable
    reject_sqi: NonNegFloat = 0.15  # fused SQI below this: window rejected
    # "global": one quality-weighted periodic-component weight vector per recording;
    # "pica": periodic component analysis per window (`fusion.pica_weights`)
    method: str = "global"
    pica_context_s: NonNegFloat = 2.5  # pica: each window's statistics see +-this much more
    pica_period: str = "scan"  # pica: "scan" the beat lags for the most periodic, or "window"
    pica_shrink: NonNegFloat = 0.0  # pica: weight of the pooled (global) statistics per window
    # weight of the cross-bud covariance (`fusion.cross_bud_covariance`: what the two buds
    # share at zero lag, the BCG; CCA) next to the beat-lag covariance in the global fusion,
    # taken on the axes high-passed at cross_bud_hp_hz (Hz; zero-phase Butterworth, order 2) so
    # that a breathing sway both buds share does not count for a direction; 0 = no high-pass.
    # 2 / 2 Hz: chosen by the rule declared in results/twscardio/NOTES.md on validation subjects
    # 0-143 at 50 Hz/10 % and 25 Hz/20 %, plain and with a common breathing sway (mean IBI 12.66
    # ms against 13.57 off, below off in all four; `experiments.cross_bud --hp`). 0 turns it off.
    cross_bud: NonNegFloat = 2.0
    cross_bud_hp_hz: NonNegFloat = 2.0
    # a recording whose mean window SQI (`quality`) is below this is re-fused on its own beats
    # (`fusion.refit_on_beats`); 0 (the default) turns the fallback off. 0.5 is the value
    # chosen on validation subjects (`python -m twscardio.experiments.fusion_fallback`), where
    # it helped; on the bench it helped in family and hurt out of family, breaking two met
    # targets, so it is an option, not the default (results/twscardio/NOTES.md)
    refit_below_sqi: Prob = 0.0
    # ... and only where at most this share of its windows rotate (gyro rms above the gate):
    # under head motion the refit helped and hurt about equally on validation
    refit_max_rotating: Prob = 0.2
    # ... and the refit is kept only if its two buds' parts agree better than the first
    # fusion's (`fusion.bud_agreement`, high-passed at cross_bud_hp_hz): a check that does not
    # rest on the beats the refit was fitted to (results/twscardio/NOTES.md)
    refit_check: bool = False

    def validate(self) -> None:
        if self.method not in ("global", "pica"):
            raise ValueError(f"fusion.method='{self.method}' must be 'global' or 'pica'")
        if self.pica_period not in ("scan", "window"):
            raise ValueError(f"fusion.pica_period='{self.pica_period}' must be 'scan' or 'window'")
        lo, hi = self.band_hz
        if not 0 < lo < hi:
            raise ValueError(f"fusion.band_hz={self.band_hz} must be 0 < lo < hi")
        if self.cross_bud_hp_hz and not lo < self.cross_bud_hp_hz < hi:
            raise ValueError(f"fusion.cross_bud_hp_hz={self.cross_bud_hp_hz} must be 0 (off) or "
                             f"inside fusion.band_hz={self.band_hz}")
        plo, phi = self.period_range_s
        if not 0 < plo < phi < self.window_s:
            raise ValueError("fusion.period_range_s must satisfy 0 < lo < hi < window_s")


@dataclass
class QualityConfig:
    """Per-window SQI and "no reliable beat" rejection (`twscardio.quality`).

    weights/bias: logistic calibration over [template, periodicity, cross_bud, cross_axis],
    fitted by `python -m twscardio.experiments.calibrate_sqi` on the training simulator, with
    the fusion in use (the cross-bud term; results/twscardio/sqi_calibration_refit.json).
    """

    weights: list[float] = field(default_factory=lambda: [7.814, 12.757, 5.134, 0.345])
    bias: float = -12.294
    # sqi below this: "no reliable beat"; the largest margin to both targets (>= 95 % of no-beat,
    # <= 5 % of clean windows rejected) on 48 validation subjects, ties to the lowest threshold
    # (`python -m twscardio.experiments.sqi_operating_point`, with the weights above): noise /
    # no contact 100 / 99.8 % rejected, clean windows 0.17 % (50 Hz / 10 %) and 0.17 % (25 Hz /
    # 20 %) (results/twscardio/sqi_operating_point_refit.json)
    threshold: Prob = 0.28
    missing_cross_bud: Prob = 0.5  # cross-bud value used when one bud delivered nothing
    # features see the window plus this much signal on each side where the recording has it
    # (a 5-s window is judged on 20 s: more beats, so noise looks less periodic; on held-out
    # training recordings, beat windows rejected at 97.5 % no-beat rejection: 0 s 6.8 %,
    # 2.5 s 5.0 %, 5 s 4.3 %, 7.5 s 3.8 %)
    context_s: NonNegFloat = 7.5
    # and the beats found must look alike: the median r of the window's beats (+- context_s)
    # with the recording's median beat (`quality.beat_consistency`) at least this; 0 = off.
    # Youden's J (no-beat minus clean rejection) on 96 validation subjects, middle of its best
    # range 0.74-0.77 (`python -m twscardio.experiments.beat_consistency --subjects 96`): no-beat
    # rejected 98.4 -> 100 % (worst kind and rate), clean windows 1.9 % either way
    min_beat_r: Prob = 0.76

    def validate(self) -> None:
        if len(self.weights) != 4:
            raise ValueError(f"quality.weights must have 4 entries, got {len(self.weights)}")


# the network's input channels (`pipeline.network_features`): 17, and 18 with the
# beat-synchronous prior as the last channel (TrainConfig.prior)
N_FEATURES = 17
N_FEATURES_PRIOR = 18


@dataclass
class NetConfig:
    """BCG->SCG network (non-autoregressive dilated TCN), `twscardio.models.BCG2SCGNet`."""

    channels: PosInt = 32  # hidden width
    dilations: list[PosInt] = field(default_factory=lambda: [1, 2, 4, 8, 16, 1])  # residual blocks
    kernel: PosInt = 5  # conv kernel size
    dropout: Annotated[float, Range(0, 1, hi_open=True)] = 0.05  # dropout inside residual blocks
    # with the beat-synchronous prior (TrainConfig.prior "sync"): the output is the prior channel
    # plus the network's correction, whose last layer starts at zero (the untrained network
    # outputs its prior); False: the network maps its inputs to the SCG on its own
    residual_prior: bool = False
    # networks trained alike whose outputs are averaged (`models.NetEnsemble`): member k's
    # initialisation and crop draws are seeded seed + 1009 k (`train.MEMBER_SEED_STRIDE`), its
    # training data is the same; member 0 is the single network of members 1
    members: PosInt = 1

    def validate(self) -> None:
        if self.channels < 1 or self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError("net.channels must be >= 1 and net.kernel odd")


@dataclass
class LossConfig:
    """Region-focused loss (sec. 2.2.4): w(t) = 1 + lam * sum_beats G(t-AO) + G(t-AC)."""

    kind: Literal["region", "l1"] = "region"  # 'l1' is the plain-L1 ablation (public code)
    lam: NonNegFloat = 4.0  # up-weighting of the AO/AC regions
    sigma_ms: PosFloat = 20.0  # Gaussian width of each region
    corr_weight: NonNegFloat = 0.5  # weight of the (1 - Pearson r) term
    # the region term's error: |e| (the paper's) or e^2 (ours, an option: the mean of waveforms
    # under an uncertain timing might correlate better than their median; measured on validation
    # subjects, it lowers (d)'s per-beat r by 0.017-0.018: NOTES)
    err: Literal["l1", "l2"] = "l1"
    # weight of the mean (1 - r) over short sliding windows, each weighted by its target's
    # variance: the bench scores r per beat ([R - 50, R + 550] ms), the term above per crop.
    # 1 chosen on validation subjects, a gain within noise (results/twscardio/NOTES.md, "A
    # per-beat correlation term"); `--quick` keeps 0 (bench.QUICK); unused by kind 'l1'
    local_r_weight: NonNegFloat = 1.0
    local_r_s: PosFloat = 0.6  # length of those windows (s)
    local_r_hop_s: PosFloat = 0.1  # their hop (s)
    # lambda x mean |correction| of a residual network (`net.residual_prior`): an L1 prior on
    # the correction of the prior channel, which keeps the prior where the evidence for a
    # change is weak (ours, an option; both loss kinds; 0 = off)
    correction_l1: NonNegFloat = 0.0


@dataclass
class SyncConfig:
    """Beat-synchronous SCG (`twscardio.beatsync`): the timing model and its training data."""

    pre_s: PosFloat = 0.35  # median BCG complex from this long before each J peak
    post_s: PosFloat = 0.45  # ... to this long after it
    hidden: PosInt = 64  # MLP width
    members: PosInt = 8  # MLPs (seeds) whose predictions are averaged
    epochs: PosInt = 150  # passes over the training subjects
    lr: PosFloat = 1e-3
    weight_decay: NonNegFloat = 1e-2
    # training-family subjects, one recording each, in consecutive blocks; each block draws its
    # recordings' conditions (rate, loss, burst, packet size) from a fresh stream. 45,000 x 8
    # members chosen on 192 validation subjects (results/twscardio/NOTES.md, "The timing model on
    # more subjects"): (e)'s per-beat r 0.803 -> 0.824 at 50 Hz / 10 %, 0.759 -> 0.792 at 25 Hz /
    # 20 %, against 9,000 x 4; `--quick` keeps [3000, 6000] x 4 (bench.QUICK)
    blocks: list[PosInt] = field(default_factory=lambda: [3000, 6000, 9000, 9000, 9000, 9000])
    duration_s: PosFloat = 20.0  # length of each training recording
    # the template is averaged over Gaussian shifts of its AO / AC waves with these SDs (ms): the
    # expected SCG under the timing model's error (the head transit alone is +-7.5 ms) correlates
    # better with the true one than a sharp guess; chosen on validation subjects (AO 6 ms since
    # the 45,000-subject timing model, results/twscardio/NOTES.md; it was 4 ms)
    blur_ao_ms: NonNegFloat = 6.0
    blur_ac_ms: NonNegFloat = 14.0

    def validate(self) -> None:
        if self.pre_s + self.post_s > 2.0:
            raise ValueError("sync.pre_s + sync.post_s must be <= 2 s (one beat complex)")
        if self.duration_s < 5.0:
            raise ValueError(f"sync.duration_s={self.duration_s} must be >= 5 s")


# share of the training recordings drawn at rest (motion 0) that the network's keys were made with;
# `data.draw_conditions` keeps it for the timing model's and the SQI's data, whose random
# streams would change with another share
REST_SHARE = 0.3


@dataclass
class TrainConfig:
    """`python -m twscardio.train`: simulate subjects, train the BCG->SCG network."""

    seed: int = 0  # seeds simulator subjects, conditions and the network init
    device: str = "cpu"  # auto | cpu | cuda
    # training recordings: the randomised family, 60 s each. Without the prior many short
    # recordings of distinct heads beat few long ones (see n_subjects); with it, 3072 x 60 s
    # scored above 6144 x 10 s on 48 validation subjects ((d)'s r 0.826 -> 0.843 / 0.790 ->
    # 0.804; 3.8x the windows too, so longer recordings and more windows are not told apart;
    # results/twscardio/NOTES.md, "Longer training recordings"); `--quick` keeps 1536 x 10 s.
    # Test and validation recordings set their own length (BenchConfig.duration_s,
    # `train.VAL_DURATION_S`)
    sim: SimConfig = field(default_factory=lambda: SimConfig(morphology="randomised",
                                                             duration_s=60.0))
    enhance: EnhanceConfig = field(default_factory=EnhanceConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    net: NetConfig = field(default_factory=NetConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)  # arm (e): beat-synchronous SCG
    # training subjects (test subjects use disjoint seeds); many distinct head responses matter
    # more than long or repeated recordings of the same head (per-subject AO lag). Chosen on 48
    # validation subjects (`python -m twscardio.experiments.network_data`): (d) at 50 Hz / 10 %
    # loss, per-beat SCG r / IBI MAE 0.300 / 30.8 ms with 96 x 60 s, 0.655 / 13.9 ms with
    # 1536 x 10 s, 0.706 / 11.3 ms with 3072 x 10 s (4000 steps each), 0.736 / 10.1 ms with
    # 6144 x 10 s x 8000 steps (better than 3072 x 4000 at 25 Hz / 20 % too; see steps); with
    # the prior, 3072 x 60 s (sim above)
    n_subjects: PosInt = 3072
    recordings_per_subject: PosInt = 1  # each with randomly drawn rate / loss / motion
    fs_choices: list[PosFloat] = field(default_factory=lambda: [15.0, 25.0, 50.0, 100.0])
    max_loss: Prob = 0.3  # training loss rates drawn in [0, max_loss]
    max_motion: NonNegFloat = 3.0  # training motion levels drawn in [0, max_motion]
    rest_share: Prob = REST_SHARE  # share of training recordings at rest (motion 0; 0.6 measured)
    window_s: PosFloat = 5.0  # network window
    hop_s: PosFloat = 2.5  # network window hop
    # optimiser steps: 8000, chosen with 6144 x 10-s subjects before the prior (validation, as
    # n_subjects: 8000 steps on 3072 subjects, or 6144 subjects at 4000 steps, did not beat 3072
    # x 4000 on both figures); kept for 3072 x 60 s (not re-chosen)
    steps: PosInt = 8000
    batch_size: PosInt = 16
    crop_s: PosFloat = 2.56  # random crop of each window per step (the TCN is fully convolutional)
    lr: PosFloat = 2e-3
    weight_decay: NonNegFloat = 1e-4
    ckpt_every: PosInt = 250  # steps between checkpoints (resume)
    # an 18th input channel for the network: "sync" = the beat-synchronous SCG (arm e: the
    # template at (b)'s J peaks minus the timing model's lag), which the network takes as
    # input; "none" = the 17 channels alone. With "sync" the network trains on subjects after
    # the timing model's (sum(sync.blocks) onward), subjects the timing model never saw.
    # Chosen for (d) on 48 validation subjects by a rule declared first (then `python -m
    # twscardio.experiments.network_data --arms d,e --variant prior:prior=sync`; now that
    # "sync" is the default, `--variant none:prior=none` gives the other arm): (d)'s per-beat
    # SCG r 0.760 -> 0.829 at 50 Hz / 10 %, 0.681 -> 0.761 at 25 Hz / 20 %, IBI MAE 9.99 ->
    # 10.23 and 12.68 -> 11.76 ms (results/twscardio/NOTES.md)
    prior: Literal["none", "sync"] = "sync"

    def validate(self) -> None:
        if self.n_subjects < 1 or self.recordings_per_subject < 1:
            raise ValueError("n_subjects and recordings_per_subject must be >= 1")
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("steps, batch_size and lr must be positive")
        if not 0 < self.crop_s <= self.window_s:
            raise ValueError(f"crop_s={self.crop_s} must be in (0, window_s]")
        if not 0 < self.hop_s <= self.window_s <= self.sim.duration_s:
            raise ValueError("need 0 < hop_s <= window_s <= sim.duration_s")
        if not 0 <= self.max_loss < 0.9:
            raise ValueError(f"max_loss={self.max_loss} must be in [0, 0.9)")
        cap = 0.45 * self.enhance.fs_out  # `fusion.bandpass` caps the band's top here
        if self.fusion.cross_bud_hp_hz and self.fusion.cross_bud_hp_hz >= cap:
            raise ValueError(f"fusion.cross_bud_hp_hz={self.fusion.cross_bud_hp_hz} must be below "
                             f"0.45 x enhance.fs_out = {cap:g} Hz (the fused band's top)")
        if self.net.residual_prior and self.prior == "none":
            raise ValueError("net.residual_prior needs the prior channel (prior: sync)")
        if self.loss.correction_l1 and not self.net.residual_prior:
            raise ValueError("loss.correction_l1 needs a residual network (net.residual_prior: "
                             "true), whose output corrects the prior channel")
        if self.loss.local_r_weight and self.loss.kind == "region":  # the term is used
            fs = self.enhance.fs_out
            if not self.loss.local_r_s <= self.crop_s:
                raise ValueError(f"loss.local_r_s={self.loss.local_r_s} must be <= crop_s="
                                 f"{self.crop_s} (its windows lie in each training crop)")
            if round(self.loss.local_r_s * fs) < 2:
                raise ValueError(f"loss.local_r_s={self.loss.local_r_s} must span >= 2 samples "
                                 f"at enhance.fs_out={fs:g} Hz")
            if round(self.loss.local_r_hop_s * fs) < 1:
                raise ValueError(f"loss.local_r_hop_s={self.loss.local_r_hop_s} must be >= 1 "
                                 f"sample at enhance.fs_out={fs:g} Hz")


@dataclass
class BenchConfig:
    """`python -m twscardio.bench`: arms (a)-(d) on held-out subjects, sweeps, checks."""

    train: TrainConfig = field(default_factory=TrainConfig)
    n_test_subjects: PosInt = 48  # held-out subjects per setting (16: one = 6.25 % of windows)
    duration_s: PosFloat = 60.0  # test recording length
    loss_sweep: list[Prob] = field(default_factory=lambda: [0.0, 0.05, 0.1, 0.2, 0.3])
    burst_sweep: list[PosFloat] = field(default_factory=lambda: [1.0, 3.0, 8.0])
    fs_sweep: list[PosFloat] = field(default_factory=lambda: [15.0, 25.0, 50.0, 100.0])
    motion_sweep: list[NonNegFloat] = field(default_factory=lambda: [0.0, 1.0, 2.0, 3.0])
    stream_seconds: PosFloat = 60.0  # signal streamed through the real-time API for timing
    # subject-level bootstrap draws for each check's 95 % interval (reporting only: verdicts
    # stay on the point estimates; `bench.check_intervals`); 0 = off
    bootstrap_draws: NonNegInt = 200
    # processes for the test subjects (0: one per usable CPU core, at most 8, each ~0.45 GB;
    # 1: this process alone); the figures do not depend on it, the real-time timing runs alone
    # after them
    workers: NonNegInt = 0
