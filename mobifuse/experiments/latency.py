"""`python -m mobifuse.experiments.latency [--set pipeline_threads=2]`: fuse()'s cost per frame.

The bench's 640x480 frame (`BenchConfig.pipeline_size`), the shipped model. Prints and writes
(results/mobifuse/latency.json, `--out DIR` elsewhere):

- the one-thread CPU time of each part (median of `latency_repeats`): SGBM left view, SGBM of
  the mirrored pair (LR check), cost-volume evidence, the ToF + DEI rest of `prepare_frame`, the
  TorchScript-frozen net, the stereo-agreement refinement, the DEI bilateral denoising and the
  background fill of disocclusion holes;
- the wall time of a whole `fuse()` call with 1 and with `pipeline_threads` threads
  (`torch.set_num_threads`, `cv2.setNumThreads`; whatever the setting, `prepare_frame` runs
  SGBM's two views, the cost volume and the ToF branch side by side in Python threads, and
  the bilateral denoising splits its rows over the torch thread count), median and minimum of
  3 x `latency_repeats` calls, with the load average before and after: a wall time means
  something only on a machine that was otherwise idle. The bench's own wall-time check
  (`pipeline_latency`: `fuse_wall_ms`) pins the process to `pipeline_threads` cores.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from mobifuse.agreement import stereo_agreement
from mobifuse.api import default_model, fuse, net_inputs, run_net
from mobifuse.bench import pipeline_latency, walls_ms
from mobifuse.config import BenchConfig
from mobifuse.denoise import dei_bilateral
from mobifuse.disocclusion import background_fill, tof_shift
from mobifuse.pipeline import prepare_frame
from shared.cli import parse_args, run
from shared.io import atomic_write_json
from shared.log import get_logger

log = get_logger("mobifuse.experiments.latency")


def wall_ms(fn, n: int) -> dict:
    ts = walls_ms(fn, n)
    return {"median": float(np.median(ts)), "min": float(np.min(ts))}


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(argv, BenchConfig, prog="mobifuse.experiments.latency",
                           description=__doc__.split("\n\n")[0],
                           default_config="configs/mobifuse/bench.yaml")
    out = {"load_before": os.getloadavg(), "cpu_count": os.cpu_count()}
    # pipeline_latency's dict: the one-thread CPU time of the parts, then the bench's pinned
    # wall-time check (fuse_wall_ms ...); the key keeps the name of the files written before
    out["cpu_ms_1_thread"] = pipeline_latency(cfg)
    fr_args, cal, raw = _frame(cfg)
    fr = prepare_frame(*fr_args)
    g, e = net_inputs(fr)
    net = default_model()
    depth = run_net(net, g, e, jit=True)
    t0 = time.process_time()
    for _ in range(cfg.latency_repeats):
        stereo_agreement(depth, fr["sigma_tof"], fr["st"], fr["st_valid"], fr["sigma_st"])
    out["cpu_ms_1_thread"]["agreement_ms"] = (time.process_time() - t0) / cfg.latency_repeats \
        * 1e3
    den = dei_bilateral(depth, fr["sigma_tof"], fr["tof"], fr["st"])
    shift = tof_shift(fr["K_work"][0, 0], cal.T_left_tof)
    t0 = time.process_time()
    for _ in range(cfg.latency_repeats):
        background_fill(den, fr["tof_valid"] | fr["st_valid"], fr["gray"], shift)
    cpu = out["cpu_ms_1_thread"]
    cpu["fill_ms"] = (time.process_time() - t0) / cfg.latency_repeats * 1e3
    cpu["denoise_ms"] = cpu["refine_ms"] - cpu["agreement_ms"] - cpu["fill_ms"]
    # refine_ms: agreement + denoising + fill
    for threads in sorted({1, cfg.pipeline_threads}):
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        out[f"fuse_wall_ms_{threads}_threads"] = wall_ms(
            lambda: fuse(raw["left"], raw["right"], raw["tof_depth"], cal, net,
                         raw["tof_amplitude"], None, 2, cfg.train.stereo, cfg.train.dei),
            3 * cfg.latency_repeats)
    out["load_after"] = os.getloadavg()
    for k, v in out.items():
        print(f"{k}: {v}")
    atomic_write_json(Path(args.out or "results/mobifuse") / "latency.json", out)
    return 0


def _frame(cfg: BenchConfig):
    """The bench's latency frame: (prepare_frame args, calibration, raw scene)."""
    import dataclasses

    from mobifuse.data import sim_calibration
    from mobifuse.simulator import simulate_scene

    W, H = cfg.pipeline_size
    sim = dataclasses.replace(cfg.train.sim, width=W, height=H, focal_px=560.0, baseline_m=0.05,
                              tof_width=W // 4, tof_height=H // 4, tof_focal_px=140.0)
    raw = simulate_scene(321, sim)
    cal = sim_calibration(sim)
    return ((raw["left"], raw["right"], raw["tof_depth"], raw["tof_valid"], cal,
             raw["tof_amplitude"], None, sim.work_downsample, cfg.train.stereo, cfg.train.dei),
            cal, raw)


if __name__ == "__main__":
    run(main, sys.argv[1:])
