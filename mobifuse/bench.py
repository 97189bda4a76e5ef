"""Benchmark MobiFuse against its baselines on held-out simulated ToF + stereo scenes.

    python -m mobifuse.bench [--quick] [--out DIR] [--config configs/mobifuse/bench.yaml]

One process, same scenes and seeds for every arm: ToF only, SGBM only, RGB-guided joint
bilateral ToF upsampling, inverse-variance fusion with the DEI sigmas, the fusion network
without DEI (the key ablation), MobiFuse (the full network) and an oracle per-pixel best-sensor
selection (the ceiling). Reports MAE / RMSE / AbsRel / delta / bad-5cm overall and per region
mask, sweeps over ambient IR, IR albedo, texture strength and object distance, the DEI's
Spearman correlation with the true error, the back-projected point clouds' Chamfer distance,
and inference latency at 320x240 on this machine's cores (SGBM timed separately).

Cross-rig: a second net trained only on `train_rigs` (phone-like: baseline 1-5 cm, f 250-600
px) is tested per scene on `test_rigs` it never saw (baseline 10-25 cm, f 800-1200 px, up to
1,024 px wide) and on held-out `train_rigs` scenes, beside ToF only, SGBM only, inverse-variance
and the shipped default model (trained across all rigs, so not unseen: shown for reference).
The DEI's calibration (share of |error| <= 2 sigma, Spearman) is measured on the unseen rigs
(reliability.png), and `fuse()`'s per-frame cost at 640x480 is broken down.

Writes bench.json / bench.md / bench.png, sweeps.png, qualitative.png and reliability.png to
the run directory. Trained weights and simulated scenes are cached (shared.cache), so reruns
are fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mobifuse.agreement import MAX_RATIO
from mobifuse.api import default_model, model_offset_gate, post_steps, run_net
from mobifuse.baselines import (
    inverse_variance_fusion,
    joint_bilateral_upsample,
    oracle_selection,
    sgbm_only,
    tof_only,
)
from mobifuse.config import BenchConfig, DEIConfig, TrainConfig
from mobifuse.data import DATA_VERSION, build_dataset, build_frames, dei_key, sim_calibration
from mobifuse.dei import coverage
from mobifuse.denoise import DENOISE_C
from mobifuse.disocclusion import frame_shift, tof_shift
from mobifuse.metrics import dei_spearman, depth_metrics, mean_chamfer, region_metrics
from mobifuse.models import MODEL_VERSION, N_ERR, TwoStageFusionNet, load_model, save_model
from mobifuse.offset import stereo_offset
from mobifuse.simulator import MASKS, simulate_scene
from mobifuse.stereo import run_stereo
from mobifuse.train import (
    model_meta,
    predict,
    predict_frames,
    scene_seeds,
    to_tensors,
    train_fusion_net,
)
from shared.bench import BenchReport, save_figure
from shared.cache import cached_file
from shared.cli import parse_args, run
from shared.config import to_dict
from shared.errors import ConfigError
from shared.io import make_run_dir
from shared.log import get_logger
from shared.runtime import cpu_count

log = get_logger("mobifuse.bench")

ARMS = ("tof_only", "sgbm_only", "jbu_tof", "inv_var_dei", "net_no_dei", "mobifuse", "oracle")
BASELINES = ("tof_only", "sgbm_only", "jbu_tof", "inv_var_dei", "net_no_dei")
TEST_SEED0, SWEEP_SEED0 = 30_000, 40_000
SWEEPS = {"ambient": "ambient", "albedo": "ir_albedo", "texture": "texture",
          "distance": "distance"}


# --quick: fewer scenes and steps and three points per sweep; same resolution and physics
QUICK = {"train.train_scenes": 48, "train.val_scenes": 4, "train.steps": 400, "test_scenes": 8,
         "sweep_scenes": 2, "latency_repeats": 5, "sweep_ambient": [0.0, 40000.0, 80000.0],
         "sweep_albedo": [0.05, 0.4, 0.9], "sweep_texture": [0.0, 0.25, 0.6],
         "sweep_distance": [0.5, 2.5, 3.5], "rig_train_scenes": 24, "rig_steps": 400,
         "rig_test_scenes": 6, "rig_infamily_scenes": 4, "test_rigs.width": [480, 640]}


# trained nets shipped with the package (the --quick setting's), named by cache key; refresh
# with `python -m mobifuse.experiments.ship_weights` after changing the data, net or training
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def net_key(cfg: TrainConfig, use_dei: bool) -> tuple[TrainConfig, dict]:
    """(training config of the net with / without DEI channels, its cache-key config; the DEI
    calibration factors are left out: they never change the net's inputs; so are the stereo-error
    scaling and the low-frequency loss term when off, so that the other nets keep their keys; and
    the training device and thread count, which change the floating-point rounding, not what the
    net learns from: a net trained on a GPU serves the same setting on a CPU)."""
    tcfg = dataclasses.replace(cfg, net=dataclasses.replace(cfg.net, use_dei=use_dei))
    key = to_dict(tcfg)
    del key["device"], key["threads"]
    key["dei"] = dei_key(tcfg.dei)
    if tcfg.stereo_scale_prob == 0:
        del key["stereo_scale_prob"], key["stereo_scale_min"]
    if tcfg.lf_weight == 0:
        for k in ("lf_weight", "lf_block", "lf_target", "lf_mpi_max"):
            del key[k]
    for opt in ("ray_channels", "fov_channels"):  # nets cached before an option keep their keys
        if not getattr(tcfg.net, opt):
            del key["net"][opt]
    return tcfg, {"train": key, "data": DATA_VERSION, "model": MODEL_VERSION}


def trained_net(cfg: TrainConfig, train: Callable[[], dict], use_dei: bool
                ) -> TwoStageFusionNet:
    """The fusion net with / without DEI channels: shipped, cached, or trained now on
    `train()` (called only when it must train)."""
    tcfg, key = net_key(cfg, use_dei)
    info: dict = {}

    def build(tmp):
        model, metrics = train_fusion_net(tcfg, train(), desc=f"train use_dei={use_dei}")
        info.update(metrics)
        save_model(model, tmp, model_meta(tcfg, "python -m mobifuse.bench (cached net)"))

    path = cached_file("mobifuse-net", key, build, suffix=".safetensors", shipped=WEIGHTS_DIR)
    log.info("fusion net use_dei=%s: %s%s", use_dei, path,
             f" (trained in {info['train_s']:.0f} s)" if info else " (cached)")
    return load_model(path)


def refined(pred, f: dict, k: float, max_ratio: float = MAX_RATIO,
            denoise_c: float = DENOISE_C, shift: float = 0.0,
            offset_gate: float = 0.0) -> np.ndarray:
    """A DEI net's depth after the scene-wide stereo offset (`offset.stereo_offset`, gate
    `offset_gate`; 0, the default: off, as every experiment before it ran), the
    stereo-agreement refinement, the DEI bilateral denoising
    (`denoise.dei_bilateral`, re-clipped to the convex guard's interval) and the background
    fill of disocclusion holes (`disocclusion.background_fill`; `shift` = f t_x of the ToF on
    the work grid, 0: off; `frame_shift`), frame or stacked arrays."""
    g = f["geom"]
    return post_steps(pred, g[..., 0, :, :], g[..., 1, :, :], g[..., 2, :, :], g[..., 3, :, :],
                      f["sigma_tof"], f["sigma_st"], f["err"][..., 0, :, :], shift, offset_gate,
                      k, max_ratio, denoise_c)


def run_arms(d: dict, nets: dict[str, TwoStageFusionNet], k: float, shift: float = 0.0,
             offset_gate: float = 0.0) -> dict[str, np.ndarray]:
    """Every arm's depth (N, h, w) on the arrays of one dataset; MobiFuse with the scene-wide
    stereo offset at `offset_gate` and the stereo-
    agreement refinement at threshold `k` (the no-DEI ablation gets none: it uses the DEI)."""
    tof, st, gt = d["geom"][:, 0], d["geom"][:, 2], d["gt"]
    gray = d["err"][:, 0]
    jbu = np.stack([joint_bilateral_upsample(s, s > 0, g)  # per frame; each is array ops
                    for s, g in zip(d["tof_sparse"], gray)])
    geom, err, _ = to_tensors(d)
    return {"tof_only": tof_only(tof), "sgbm_only": sgbm_only(st), "jbu_tof": jbu,
            "inv_var_dei": inverse_variance_fusion(tof, d["sigma_tof"], st, d["sigma_st"]),
            "net_no_dei": predict(nets["no_dei"], geom, err),
            "mobifuse": refined(predict(nets["dei"], geom, err), d, k, shift=shift,
                                offset_gate=offset_gate),
            "oracle": oracle_selection(tof, st, gt)}


def timed_s(fn, repeats: int) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds of the process) over `repeats` calls.

    On a shared machine the wall time includes waiting for a core; the CPU time, summed over
    every thread of the process (`run_stereo` matches the right view and builds the cost volume
    in pool threads), is what the call costs."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return float(np.median(wall)), float(np.median(cpu))


def minor_faults(fn, repeats: int) -> float | None:
    """Minor page faults of the process per call of `fn` (mean of `repeats` calls after one
    warm-up; None where `resource` is missing). Freshly mapped pages are zeroed on their first
    touch: a call whose large temporaries glibc maps and unmaps each time pays for that."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    fn()
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / repeats


def net_calls(net: TwoStageFusionNet) -> tuple[Callable[[], object], Callable[[], object]]:
    """(traced, eager): one forward of `net` (put in eval mode) on the latency check's 4 + N_ERR
    random 240x320 input planes (drawn now from torch's generator), as `fuse()` runs it
    (`run_net(..., jit=True)`: numpy in and out) and as the eager module."""
    net.eval()
    g = torch.rand(1, 4, 240, 320) * 4
    e = torch.rand(1, N_ERR, 240, 320)
    geom, err = g[0].numpy(), e[0].numpy()

    def traced():
        return run_net(net, geom, err, jit=True)

    def eager():
        with torch.inference_mode():
            return net(g, e)

    return traced, eager


def latency(cfg: BenchConfig, net: TwoStageFusionNet) -> dict:
    """Seconds per 320x240 frame: fusion net (pre-processed inputs) and SGBM separately.

    The net is timed as `fuse()` runs it (`run_net(..., jit=True)`: numpy in and out, the
    TorchScript-frozen trace built in the warm-up call), one torch thread on one pinned core;
    the eager forward is timed beside it (`net_eager_*`), with both paths' minor page faults
    per call (`*_minor_faults`)."""
    sim = cfg.train.sim
    raw = simulate_scene(123, sim)
    traced, infer = net_calls(net)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pinned_cores(1):
            net_wall, net_cpu = timed_s(traced, cfg.latency_repeats)
            eager_wall, eager_cpu = timed_s(infer, cfg.latency_repeats)
            faults = {"net_minor_faults": minor_faults(traced, cfg.latency_repeats),
                      "net_eager_minor_faults": minor_faults(infer, cfg.latency_repeats)}
    finally:
        torch.set_num_threads(threads)
    cal = sim_calibration(sim)
    cal.validate()
    sgbm_wall, sgbm_cpu = timed_s(lambda: run_stereo(raw["left"], raw["right"], cal,
                                                     cfg.train.stereo),
                                  max(3, cfg.latency_repeats // 2))
    return {"net_wall_s": net_wall, "net_cpu_s": net_cpu, "net_eager_wall_s": eager_wall,
            "net_eager_cpu_s": eager_cpu, **faults, "sgbm_wall_s": sgbm_wall,
            "sgbm_cpu_s": sgbm_cpu}


def _plots(run_dir, sweep_rows: dict, d: dict, preds: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sweep_rows), figsize=(4.2 * len(sweep_rows), 3.6))
    for ax, (factor, pts) in zip(np.atleast_1d(axes), sweep_rows.items()):
        xs = [x for x, _ in pts]
        for arm in ARMS:
            ax.plot(xs, [m[arm] for _, m in pts], marker="o", label=arm,
                    lw=2.5 if arm == "mobifuse" else 1.2, ls="--" if arm == "oracle" else "-")
        ax.set_xlabel(factor)
        ax.set_ylabel("MAE (m)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.suptitle("mobifuse: MAE vs sweep factor (held-out simulated scenes)")
    fig.tight_layout()
    save_figure(fig, run_dir / "sweeps.png")
    plt.close(fig)

    rows = min(3, len(d["gt"]))
    titles = ["RGB", "ToF", "SGBM", "DEI_tof (log)", "DEI_stereo (log)", "fused", "GT"]
    fig, axes = plt.subplots(rows, len(titles), figsize=(2.4 * len(titles), 1.9 * rows),
                             squeeze=False)
    for r in range(rows):
        vmax = float(np.percentile(d["gt"][r], 99)) * 1.1
        ims = [(d["left"][r], {}), (d["geom"][r, 0], {"vmin": 0, "vmax": vmax}),
               (d["geom"][r, 2], {"vmin": 0, "vmax": vmax}),
               (np.log10(d["sigma_tof"][r]), {"vmin": -3, "vmax": 0}),
               (np.log10(d["sigma_st"][r]), {"vmin": -3, "vmax": 0}),
               (preds["mobifuse"][r], {"vmin": 0, "vmax": vmax}), (d["gt"][r], {"vmin": 0,
                                                                               "vmax": vmax})]
        for c, (im, kw) in enumerate(ims):
            axes[r, c].imshow(im, cmap=None if c == 0 else "turbo", **kw)
            axes[r, c].set_axis_off()
            if r == 0:
                axes[r, c].set_title(titles[c], fontsize=8)
    fig.tight_layout()
    save_figure(fig, run_dir / "qualitative.png")
    plt.close(fig)


def held_out_seeds(cfg: BenchConfig, seed0: int, n: int) -> list[int]:
    """`n` scene seeds of this training seed's held-out block starting at `seed0`."""
    return [cfg.train.seed * 100_000 + seed0 + i for i in range(n)]


def overall_rows(rep: BenchReport, cfg: BenchConfig, test: dict,
                 preds: dict[str, np.ndarray]) -> dict[str, dict]:
    """Depth, per-region and Chamfer metrics of every arm on the test scenes; a row per arm.
    Returns {arm: metrics}."""
    sim = cfg.train.sim
    gt = test["gt"]
    K = sim_calibration(sim).K_left / sim.work_downsample
    K[2, 2] = 1.0
    masks = {m: test[f"mask_{m}"] for m in MASKS}
    overall = {}
    for arm, p in preds.items():
        m = depth_metrics(p, gt)
        m.update(region_metrics(p, gt, masks))
        m["chamfer"] = mean_chamfer(p, gt, K, cfg.chamfer_points)
        overall[arm] = m
        rep.add(arm, setting="overall", **m)
    return overall


def sweeps(rep: BenchReport, cfg: BenchConfig, nets: dict) -> dict[str, list]:
    """Every arm's MAE at each point of each sweep (the same scenes at every point: only the
    swept factor changes); a row per arm and point. Returns {factor: [(value, {arm: mae})]}."""
    tc = cfg.train
    sweep_rows: dict[str, list] = {}
    for factor, key in SWEEPS.items():
        values = getattr(cfg, f"sweep_{factor}")
        sweep_rows[factor] = []
        for val in values:
            seeds = held_out_seeds(cfg, SWEEP_SEED0, cfg.sweep_scenes)
            d = build_dataset(seeds, tc.sim, tc.stereo, tc.dei, overrides={key: float(val)},
                              desc=f"{factor}={val:g}")
            pr = run_arms(d, nets, cfg.agree_k, frame_shift(tc.sim), cfg.offset_gate)
            maes = {arm: depth_metrics(p, d["gt"])["mae"] for arm, p in pr.items()}
            sweep_rows[factor].append((float(val), maes))
            for arm, v in maes.items():
                rep.add(arm, setting=f"{factor}={val:g}", mae=v)
    return sweep_rows


def _points(sweep_rows: dict[str, list]) -> list[dict]:
    """Every sweep point's {arm: mae}."""
    return [m for rows in sweep_rows.values() for _, m in rows]


def _win_share(sweep_rows: dict[str, list]) -> float:
    """Share of sweep points where MobiFuse's MAE <= the best baseline's."""
    return float(np.mean([m["mobifuse"] <= min(m[b] for b in BASELINES)
                          for m in _points(sweep_rows)]))


def checks(rep: BenchReport, overall: dict, sweep_rows: dict, rho: dict, lat: dict) -> None:
    """The package's targets, on the figures just measured."""
    fused = overall["mobifuse"]["mae"]
    best_single = min(overall["tof_only"]["mae"], overall["sgbm_only"]["mae"])
    rep.check("fused MAE / min(ToF-only, SGBM-only) MAE", fused / best_single, "<=", 0.5)
    red_iv = 1 - fused / overall["inv_var_dei"]["mae"]
    rep.check("MAE reduction vs inverse-variance fusion", red_iv, ">=", 0.20)
    red_nodei = 1 - fused / overall["net_no_dei"]["mae"]
    rep.check("MAE reduction vs no-DEI network", red_nodei, ">=", 0.10)
    rep.check("share of sweep points where MobiFuse <= best baseline", _win_share(sweep_rows),
              ">=", 0.90)
    rep.check("DEI_tof Spearman vs true ToF error", rho["tof"], ">=", 0.5)
    rep.check("DEI_stereo Spearman vs true SGBM error", rho["stereo"], ">=", 0.5)
    rep.check("fusion-net CPU s per 320x240 frame, 1 thread (excl. SGBM)", lat["net_cpu_s"],
              "<=", 0.1)


def headlines(rep: BenchReport, cfg: BenchConfig, overall: dict, sweep_rows: dict,
              rho: dict) -> None:
    """The rows of results/SUMMARY.md: error vs the best baseline (all, then non-learned only),
    the DEI's correlation, 3D reconstruction."""
    fused, pts = overall["mobifuse"]["mae"], _points(sweep_rows)
    best_base = min(BASELINES, key=lambda b: overall[b]["mae"])
    red_best = 1 - fused / overall[best_base]["mae"]
    max_red = max(1 - m["mobifuse"] / min(m[b] for b in BASELINES) for m in pts)
    rep.headline(claim="up to 77.7% lower depth error than baselines",
                 measured=f"{100 * max_red:.1f}% max over sweep points; "
                          f"{100 * red_best:.1f}% overall",
                 baseline=f"best baseline per point (overall: {best_base})",
                 ratio=overall[best_base]["mae"] / fused,
                 setting=f"{cfg.test_scenes} held-out sim scenes, 160x120")
    classic = ("tof_only", "sgbm_only", "jbu_tof", "inv_var_dei")  # no learned weights
    best_classic = min(classic, key=lambda b: overall[b]["mae"])
    max_red_c = max(1 - m["mobifuse"] / min(m[b] for b in classic) for m in pts)
    rep.headline(claim="up to 77.7% lower depth error than baselines",
                 measured=f"{100 * max_red_c:.1f}% max over sweep points; "
                          f"{100 * (1 - fused / overall[best_classic]['mae']):.1f}% overall",
                 baseline=f"best non-learned baseline per point (overall: {best_classic})",
                 ratio=overall[best_classic]["mae"] / fused,
                 setting=f"{cfg.test_scenes} held-out sim scenes, 160x120")
    rep.headline(claim="DEI characterises each sensor's depth error",
                 measured=f"Spearman ToF {rho['tof']:.2f}, stereo {rho['stereo']:.2f}",
                 baseline="-", ratio=None, setting="held-out sim scenes")
    rep.headline(claim="helps downstream 3D reconstruction",
                 measured=f"Chamfer {overall['mobifuse']['chamfer'] * 100:.2f} cm vs "
                          f"{overall[best_base]['chamfer'] * 100:.2f} cm ({best_base})",
                 baseline=best_base,
                 ratio=overall[best_base]["chamfer"] / overall["mobifuse"]["chamfer"],
                 setting="back-projected clouds")


def extras_and_notes(rep: BenchReport, cfg: BenchConfig, lat: dict, rho: dict,
                     sweep_rows: dict) -> None:
    """Latency (vs SGBM and the 100 ms budget), the DEI's correlations and the sweep win share
    into `rep.extra`; the latency and the arms in words."""
    rep.extra["latency"] = {**lat, "net_over_sgbm_cpu": lat["net_cpu_s"] / lat["sgbm_cpu_s"],
                            "net_cpu_over_100ms_budget": lat["net_cpu_s"] / 0.1,
                            "threads": cfg.train.threads, "cpu_count": cpu_count()}
    rep.extra["dei_spearman"] = rho
    rep.extra["sweep_win_share"] = _win_share(sweep_rows)
    rep.notes.append(f"latency per 320x240 frame, 1 thread on 1 pinned core: net CPU "
                     f"{lat['net_cpu_s'] * 1e3:.1f} ms as fuse() runs it (TorchScript-frozen; "
                     f"eager forward {lat['net_eager_cpu_s'] * 1e3:.1f} ms) "
                     f"(wall {lat['net_wall_s'] * 1e3:.1f} ms on the shared CPU) = "
                     f"{lat['net_cpu_s'] / lat['sgbm_cpu_s']:.2f}x SGBM's CPU time")
    rep.notes.append("arms: " + ", ".join(ARMS) + "; 'oracle' is a ceiling, not a baseline")


# ----------------------------------------------------------------------------- cross-rig

RIG_ARMS = ("tof_only", "sgbm_only", "inv_var_dei", "mobifuse", "default_model")  # + tof_prepared
RIG_TEST_SEED0, RIG_INFAMILY_SEED0 = 60_000, 70_000


def rig_train_config(cfg: BenchConfig) -> TrainConfig:
    """The cross-rig net's training: the bench's, on scenes of `train_rigs` only, with its own
    weight of the low-frequency residual term (`rig_lf_weight`) when set, its camera maps
    (ray directions and field of view) with `rig_camera_maps`, its ToF multipath-compensated
    with `rig_mpi_gain` and splatted by the surface rule with `rig_surface_tol`."""
    lf = cfg.train.lf_weight if cfg.rig_lf_weight is None else cfg.rig_lf_weight
    net = cfg.train.net
    if cfg.rig_camera_maps:
        net = dataclasses.replace(net, ray_channels=True, fov_channels=True)
    dei = dataclasses.replace(cfg.train.dei, tof_mpi_gain=cfg.rig_mpi_gain,
                              tof_surface_tol=cfg.rig_surface_tol)
    return dataclasses.replace(cfg.train, rigs=cfg.train_rigs, train_scenes=cfg.rig_train_scenes,
                               steps=cfg.rig_steps, lf_weight=lf, net=net, dei=dei)


def require_sensor_inputs(cfg: BenchConfig, prog: str) -> None:
    """For the experiments that score the cross-rig net on the bench's frames (written before
    its ToF preprocessing): a config that preprocesses its inputs is a one-line ConfigError."""
    if rig_train_config(cfg).dei != cfg.train.dei:
        raise ConfigError(f"{prog} scores the cross-rig net on the sensor's frames and predates "
                          "its ToF preprocessing: add --set rig_mpi_gain=0 --set "
                          "rig_surface_tol=0")


def rig_nets(cfg: BenchConfig) -> dict[str, TwoStageFusionNet]:
    """The cross-rig net (trained on `train_rigs`) and the shipped default model."""
    tc = rig_train_config(cfg)
    seeds, _ = scene_seeds(tc)
    train = functools.cache(lambda: build_frames(seeds, tc.sim, tc.stereo, tc.dei, tc.rigs,
                                                 desc="rig train scenes"))
    return {"mobifuse": trained_net(tc, train, True), "default_model": default_model()}


def rig_frames(cfg: BenchConfig, family, seed0: int, n: int, desc: str,
               dei: DEIConfig | None = None) -> list[dict]:
    """Held-out frames of `family` with the bench's DEI config (or `dei`: the cross-rig net's)."""
    tc = cfg.train
    return build_frames(held_out_seeds(cfg, seed0, n), tc.sim, tc.stereo, dei or tc.dei, family,
                        desc)


def rig_refined(preds: list, frames: list[dict], k: float, sim=None,
                offset_gate: float = 0.0) -> list[np.ndarray]:
    """`refined` per frame of a rig set, each with its own rig's fill shift (`frame_shift` at
    the frame's focal length; no fill without `sim`): the cross-rig arms' pipeline."""
    return [refined(p, f, k, shift=frame_shift(sim, f["rig"][1]) if sim else 0.0,
                    offset_gate=offset_gate) for p, f in zip(preds, frames)]


def rig_arms(frames: list[dict], nets: dict, k: float, sim=None, offset_gate: float = 0.0,
             net_frames: dict | None = None) -> dict[str, list[np.ndarray]]:
    """Every cross-rig arm's depth per frame (the nets' with the stereo-agreement refinement
    at threshold `k`, as `fuse()` returns them; the scene-wide stereo offset at `offset_gate`
    for the bench's cross-rig net, at its own metadata's gate for the default model).
    `net_frames` (name -> frames): the same scenes prepared as that net's DEI config says
    (a multipath-compensated ToF), for that net alone; the cross-rig net's own frames add the
    reference arm 'tof_prepared', their ToF depth."""
    out = {"tof_only": [f["geom"][0] for f in frames], "sgbm_only": [f["geom"][2] for f in frames],
           "inv_var_dei": [inverse_variance_fusion(f["geom"][0], f["sigma_tof"], f["geom"][2],
                                                   f["sigma_st"]) for f in frames]}
    for name, net in nets.items():
        gate = offset_gate if name == "mobifuse" else model_offset_gate(net)
        fr = (net_frames or {}).get(name, frames)
        out[name] = rig_refined(predict_frames(net, fr), fr, k, sim, gate)
    if net_frames and "mobifuse" in net_frames:  # a reference: the sensor's depth with the
        # cross-rig net's ToF preprocessing (multipath compensation, splatting), nothing else
        out["tof_prepared"] = [f["geom"][0] for f in net_frames["mobifuse"]]
    return out


def rig_table(rep: BenchReport, frames: list[dict], preds: dict, setting: str) -> dict:
    """A row per scene and arm (MAE, with the rig) and the per-scene ratios the targets use."""
    ratios = {"vs_best": [], "vs_tof": []}
    for i, f in enumerate(frames):
        mae_i = {a: depth_metrics(p[i], f["gt"])["mae"] for a, p in preds.items()}
        b, fpx, w, h, doffs, ratio, mod, scale = f["rig"]
        for a, v in mae_i.items():
            rep.add(a, setting=f"{setting} scene {i}", mae=v, baseline_m=b, focal_px=fpx,
                    width=int(w), doffs_px=doffs, tof_ratio=ratio, mod_mhz=mod / 1e6,
                    clipped_search=int(f["search"][2]))
        ratios["vs_best"].append(mae_i["mobifuse"] / min(mae_i["tof_only"], mae_i["sgbm_only"]))
        ratios["vs_tof"].append(mae_i["mobifuse"] / mae_i["tof_only"])
        if "tof_prepared" in mae_i:
            ratios.setdefault("vs_tof_prepared", []).append(mae_i["mobifuse"]
                                                            / mae_i["tof_prepared"])
    for a, p in preds.items():
        rep.add(a, setting=f"{setting} mean", mae=float(np.mean(
            [depth_metrics(p[i], f["gt"])["mae"] for i, f in enumerate(frames)])))
    return ratios


def dei_calibration(frames: list[dict]) -> dict:
    """Per sensor: share of pixels with |error| <= 2 sigma, Spearman(sigma, |error|) and the
    reliability diagram (mean |error| and coverage per sigma decile)."""
    out = {}
    for sensor, ch, key in (("tof", 0, "sigma_tof"), ("stereo", 2, "sigma_st")):
        sig = np.concatenate([f[key].ravel() for f in frames]).astype(np.float64)
        err = np.concatenate([np.abs(f["geom"][ch] - f["gt"]).ravel() for f in frames])
        edges = np.quantile(sig, np.linspace(0, 1, 11))
        idx = np.clip(np.searchsorted(edges, sig, side="right") - 1, 0, 9)
        out[sensor] = {
            "coverage_2sigma": coverage(sig, err),
            "spearman": dei_spearman(sig, err, np.zeros_like(err)),
            "bins": [{"sigma": float(np.median(sig[idx == k])), "mae": float(err[idx == k].mean()),
                      "rmse": float(np.sqrt((err[idx == k] ** 2).mean())),
                      "coverage": coverage(sig[idx == k], err[idx == k])}
                     for k in range(10) if (idx == k).any()]}
    return out


def reliability_plot(run_dir, cal: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, (sensor, c) in zip(axes, cal.items()):
        s = np.array([b["sigma"] for b in c["bins"]])
        ax.loglog(s, [b["rmse"] for b in c["bins"]], "o-", label="RMS error")
        ax.loglog(s, [b["mae"] for b in c["bins"]], "s-", label="mean |error|")
        ax.loglog(s, s, "k--", lw=1, label="error = sigma")
        ax.set_title(f"DEI {sensor}: |err| <= 2 sigma on {100 * c['coverage_2sigma']:.1f}%, "
                     f"Spearman {c['spearman']:.2f}", fontsize=8)
        ax.set_xlabel("predicted sigma (m), decile median")
        ax.set_ylabel("measured error (m)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("DEI reliability on unseen rigs")
    fig.tight_layout()
    save_figure(fig, run_dir / "reliability.png")
    plt.close(fig)


def cross_rig(rep: BenchReport, cfg: BenchConfig, run_dir) -> dict:
    """Train on `train_rigs`, test on unseen `test_rigs` and on held-out `train_rigs` scenes;
    rows per scene, the DEI's calibration on the unseen rigs, reliability.png."""
    nets = rig_nets(cfg)
    sets = {"unseen": (cfg.test_rigs, RIG_TEST_SEED0, cfg.rig_test_scenes, "unseen rigs"),
            "in_family": (cfg.train_rigs, RIG_INFAMILY_SEED0, cfg.rig_infamily_scenes,
                          "in-family rigs")}
    frames = {name: rig_frames(cfg, *a) for name, a in sets.items()}
    net_dei = rig_train_config(cfg).dei
    own = {name: {"mobifuse": rig_frames(cfg, *a, dei=net_dei)} if net_dei != cfg.train.dei
           else None for name, a in sets.items()}
    k, sim, gate = cfg.agree_k, cfg.train.sim, cfg.offset_gate
    unseen = frames["unseen"]
    res = {name: rig_table(rep, frames[name],
                           rig_arms(frames[name], nets, k, sim, gate, own[name]), a[3])
           for name, a in sets.items()}
    res["dei"] = dei_calibration(unseen)
    reliability_plot(run_dir, res["dei"])
    return res


def _cpu_ms(fn, repeats: int) -> float:
    """Median process CPU time (all threads) of `fn` in ms, after one warm-up call."""
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        ts.append(time.process_time() - t0)
    return float(np.median(ts)) * 1e3


def pipeline_latency(cfg: BenchConfig) -> dict:
    """Per-frame cost of `fuse()` with the shipped model at `pipeline_size`, broken down:
    SGBM (left view), SGBM of the mirrored pair (LR check), cost-volume evidence, the ToF +
    DEI rest of `prepare_frame`, the net, the agreement + denoising + fill post-steps: CPU time
    of each part with one torch / OpenCV thread (what the frame costs). Then the target's
    measure: the wall time of whole `fuse()` calls with `pipeline_threads` threads, the process
    pinned to that many cores (`pinned_cores`), median and minimum, with the load average
    before and after (meaningful only on an otherwise idle machine)."""
    import cv2

    from mobifuse.api import fuse, net_inputs, run_net
    from mobifuse.pipeline import prepare_frame
    from mobifuse.stereo import matching_evidence, right_disparity, sgbm_disparity

    W, H = cfg.pipeline_size
    sim = dataclasses.replace(cfg.train.sim, width=W, height=H, focal_px=560.0, baseline_m=0.05,
                              tof_width=W // 4, tof_height=H // 4, tof_focal_px=140.0)
    raw = simulate_scene(321, sim)
    cal = sim_calibration(sim)
    net, st, n = default_model(), cfg.train.stereo, max(3, cfg.latency_repeats // 2)
    args = (raw["left"], raw["right"], raw["tof_depth"], raw["tof_valid"], cal,
            raw["tof_amplitude"], None, sim.work_downsample, st, cfg.train.dei)
    threads = (torch.get_num_threads(), cv2.getNumThreads())
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    fr = prepare_frame(*args)
    rng = (fr["search"]["min_disp"], fr["search"]["num_disp"])
    g, e = net_inputs(fr)
    s2 = sim.work_downsample
    half = [cv2.resize(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), (-(-W // s2), -(-H // s2)),
                       interpolation=cv2.INTER_AREA) for im in (raw["left"], raw["right"])]
    out = {"size": [W, H], "disparities": rng[1],
           "sgbm_ms": _cpu_ms(lambda: sgbm_disparity(raw["left"], raw["right"], st, rng), n),
           "sgbm_right_ms": _cpu_ms(lambda: right_disparity(raw["left"], raw["right"], st, rng),
                                    n),
           "evidence_ms": _cpu_ms(lambda: matching_evidence(
               *half, np.zeros(half[0].shape), rng[0] // s2, -(-rng[1] // s2) + 1, 3), n),
           "prepare_ms": _cpu_ms(lambda: prepare_frame(*args), n),
           "net_ms": _cpu_ms(lambda: run_net(net, g, e, jit=True), n)}
    depth = run_net(net, g, e, jit=True)
    shift = tof_shift(fr["K_work"][0, 0], cal.T_left_tof)
    out["refine_ms"] = _cpu_ms(lambda: post_steps(
        depth, fr["tof"], fr["tof_valid"], fr["st"], fr["st_valid"], fr["sigma_tof"],
        fr["sigma_st"], fr["gray"], shift, model_offset_gate(net)), n)
    # the post-steps as fuse() runs them with the net's own offset gate (none for the shipped
    # default model); and the offset step alone, gate open
    out["offset_open_ms"] = _cpu_ms(lambda: stereo_offset(
        depth, fr["tof"], fr["tof_valid"], fr["st"], fr["st_valid"], fr["sigma_tof"],
        fr["sigma_st"], np.inf), n)
    out["tof_dei_rest_ms"] = out["prepare_ms"] - out["sgbm_ms"] - out["sgbm_right_ms"] - \
        out["evidence_ms"]
    out["total_cpu_ms"] = out["prepare_ms"] + out["net_ms"] + out["refine_ms"]
    torch.set_num_threads(cfg.pipeline_threads)
    cv2.setNumThreads(cfg.pipeline_threads)
    with pinned_cores(cfg.pipeline_threads) as cores:
        load = os.getloadavg()
        walls = walls_ms(lambda: fuse(raw["left"], raw["right"], raw["tof_depth"], cal, net,
                                      raw["tof_amplitude"], None, s2, st, cfg.train.dei),
                         3 * cfg.latency_repeats)
    out.update(threads=cfg.pipeline_threads, cores=cores, fuse_wall_ms=float(np.median(walls)),
               fuse_wall_ms_min=float(np.min(walls)), fuse_wall_calls=len(walls),
               load_before=list(load), load_after=list(os.getloadavg()))
    torch.set_num_threads(threads[0])
    cv2.setNumThreads(threads[1])
    return out


def walls_ms(fn, repeats: int) -> list[float]:
    """Wall milliseconds of `repeats` calls after one warm-up call."""
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return ts


@contextlib.contextmanager
def pinned_cores(n: int):
    """Every thread of this process (and those it starts) on `n` of its allowed cores, where
    the OS can pin (Linux); yields the cores used (None: not pinned). On a machine with more
    cores, the thread pools of `fuse` would otherwise spread beyond the n cores of the target."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    entry = os.sched_getaffinity(0)
    use = set(sorted(entry)[:n])
    before = {}
    for t in _threads():
        try:
            before[t] = os.sched_getaffinity(t)
            os.sched_setaffinity(t, use)
        except OSError:  # a thread that ended meanwhile
            pass
    try:
        yield sorted(use)
    finally:  # threads started inside (pool workers, torch's) go back to the caller's set
        for t in _threads():
            try:
                os.sched_setaffinity(t, before.get(t, entry))
            except OSError:
                pass


def _threads() -> list[int]:
    """Thread ids of this process (Linux), else [0] (the calling thread)."""
    task = "/proc/self/task"
    return [int(t) for t in os.listdir(task)] if os.path.isdir(task) else [0]


def rig_checks(rep: BenchReport, xr: dict, pl: dict) -> None:
    """The cross-rig targets: every unseen scene, DEI calibration, end-to-end latency."""
    u, f = xr["unseen"], xr["in_family"]
    rep.check("unseen rigs: worst scene fused MAE / min(ToF-only, SGBM-only)",
              max(u["vs_best"]), "<=", 0.7)
    rep.check("unseen rigs: worst scene fused MAE / ToF-only MAE", max(u["vs_tof"]), "<=", 1.0)
    rep.check("in-family rigs: worst scene fused MAE / ToF-only MAE", max(f["vs_tof"]), "<=", 1.0)
    for sensor in ("tof", "stereo"):
        c = xr["dei"][sensor]
        rep.check(f"unseen rigs: DEI_{sensor} share |err| <= 2 sigma (>= 0.90)",
                  c["coverage_2sigma"], ">=", 0.90)
        rep.check(f"unseen rigs: DEI_{sensor} share |err| <= 2 sigma (<= 0.98)",
                  c["coverage_2sigma"], "<=", 0.98)
        rep.check(f"unseen rigs: DEI_{sensor} Spearman vs true error", c["spearman"], ">=", 0.5)
    rep.check(f"fuse() wall ms per {pl['size'][0]}x{pl['size'][1]} frame on "
              f"{pl['threads']} cores (median of {pl['fuse_wall_calls']} calls), shipped model",
              pl["fuse_wall_ms"], "<=", 150.0)
    rep.notes.append(f"fuse() wall time on cores {pl['cores']}: median {pl['fuse_wall_ms']:.1f}"
                     f" ms, min {pl['fuse_wall_ms_min']:.1f} ms; load average "
                     f"{pl['load_before'][0]:.2f} before, {pl['load_after'][0]:.2f} after (a "
                     f"wall time is meaningful only on an otherwise idle machine); one-thread "
                     f"CPU time of the parts {pl['total_cpu_ms']:.1f} ms")
    rep.extra["cross_rig"] = xr
    rep.extra["pipeline_latency"] = pl


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(argv, BenchConfig, prog="mobifuse.bench",
                           description=__doc__,
                           default_config="configs/mobifuse/bench.yaml", quick=QUICK)
    torch.set_num_threads(cfg.train.threads)
    run_dir = make_run_dir(args.out, "mobifuse", "bench")
    tc = cfg.train
    train_seeds, _ = scene_seeds(tc)
    train = functools.cache(lambda: build_dataset(train_seeds, tc.sim, tc.stereo, tc.dei,
                                                  desc="train scenes"))
    test = build_dataset(held_out_seeds(cfg, TEST_SEED0, cfg.test_scenes), tc.sim, tc.stereo,
                         tc.dei, desc="test scenes")
    nets = {"dei": trained_net(tc, train, True), "no_dei": trained_net(tc, train, False)}

    rep = BenchReport("mobifuse", baseline="tof_only", command=sys.argv)
    preds = run_arms(test, nets, cfg.agree_k, frame_shift(tc.sim), cfg.offset_gate)
    overall = overall_rows(rep, cfg, test, preds)
    sweep_rows = sweeps(rep, cfg, nets)
    rho = {"tof": dei_spearman(test["sigma_tof"], test["geom"][:, 0], test["gt"]),
           "stereo": dei_spearman(test["sigma_st"], test["geom"][:, 2], test["gt"])}
    lat = latency(cfg, nets["dei"])

    xr = cross_rig(rep, cfg, run_dir)
    pl = pipeline_latency(cfg)

    checks(rep, overall, sweep_rows, rho, lat)
    rig_checks(rep, xr, pl)
    headlines(rep, cfg, overall, sweep_rows, rho)
    extras_and_notes(rep, cfg, lat, rho, sweep_rows)
    _plots(run_dir, sweep_rows, test, preds)
    rep.write(run_dir, plot_metrics=["mae"], config=cfg)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
