"""`python -m mobifuse.experiments.fusion_ceiling [--quick]`: how far can fusion go, per scene?

First the stereo-agreement threshold k and ratio test (`mobifuse.agreement`) are selected on
validation scenes only: rigs `VAL_RIGS` (baseline 5-10 cm, f 600-800 px, 480-640 px wide;
neither the bench's training nor its test rigs; scene seeds of their own) with the cross-rig
net, and the fixed phone rig's validation seeds with the fixed-rig net. For each (k, max_ratio)
of `K_GRID` x `RATIO_GRID` it prints the mean over scenes of the refined MAE / the ToF-only MAE
on each (the choice: no loss on the fixed rig, most of the gain on the validation rigs). Then,
for every unseen-rig scene of the bench's cross-rig test (and the in-family ones) it writes
(results/mobifuse/fusion_ceiling.json, `--out DIR` elsewhere) the MAE of:

- `tof_only`, `stereo_only`: the dense inputs the bench compares against (every pixel with
  ground truth; SGBM's holes nearest-filled, as the fusion net receives them);
- `stereo_measured` and `stereo_coverage`: SGBM's MAE over the pixels it measured (left-right
  check passed) and their share;
- `inv_var_dei`: the closed-form inverse-variance fusion with the DEI sigmas;
- `net`: the bench's cross-rig net (trained on `train_rigs` only), and `fused`: the same after
  the stereo-agreement refinement at `BenchConfig.agree_k` (what the bench reports);
- `oracle_pixel`: per pixel the better of the two dense inputs (the ceiling of any per-pixel
  sensor selector);
- `oracle_convex`: per pixel the best convex combination of the two dense inputs (0 where the
  truth lies between them, else the nearer one);
- `oracle_hull`: the distance of the truth to the convex guard's interval, [min, max] of both
  inputs over the (2 guard_radius + 1)^2 window: no guarded output can do better, so this is
  a hard lower bound on the net's MAE.

Each ratio is divided by min(tof_only, stereo_only) like the bench's target (<= 0.7).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mobifuse.agreement import MAX_RATIO
from mobifuse.baselines import inverse_variance_fusion, oracle_selection
from mobifuse.bench import (
    QUICK,
    RIG_INFAMILY_SEED0,
    RIG_TEST_SEED0,
    predict_frames,
    refined,
    require_sensor_inputs,
    rig_frames,
    rig_nets,
    trained_net,
)
from mobifuse.config import BenchConfig
from mobifuse.data import build_dataset
from mobifuse.train import scene_seeds
from shared.cli import parse_args, run
from shared.io import atomic_write_json
from shared.log import get_logger

log = get_logger("mobifuse.experiments.fusion_ceiling")
VAL_SEED0, VAL_SCENES = 90_000, 8
K_GRID = (0.0, 0.5, 0.75, 1.0, 1.25)
RATIO_GRID = (np.inf, 1.0, 0.5, 0.25)
VAL_RIGS = {"baseline_m": (0.05, 0.10), "focal_px": (600.0, 800.0), "width": (480, 640)}


def hull(d_tof: np.ndarray, d_st: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) of both inputs over the (2r+1)^2 window: the convex guard's interval."""
    both = torch.from_numpy(np.stack([d_tof, d_st]).astype(np.float32))[None]
    k = 2 * radius + 1
    hi = F.max_pool2d(both, k, 1, radius).amax(1)[0].numpy()
    lo = (-F.max_pool2d(-both, k, 1, radius)).amin(1)[0].numpy()
    return lo, hi


def scene_row(f: dict, net: np.ndarray, fused: np.ndarray, radius: int) -> dict:
    """The MAEs of one frame (see the module docstring)."""
    gt = f["gt"].astype(np.float64)
    m = np.isfinite(gt) & (gt > 0)
    tof, st = f["geom"][0].astype(np.float64), f["geom"][2].astype(np.float64)
    sv = f["geom"][3] > 0.5

    def mae(p, mask=m):
        return float(np.abs(p - gt)[mask].mean())

    lo_c, hi_c = np.minimum(tof, st), np.maximum(tof, st)
    lo, hi = hull(tof, st, radius)
    row = {"tof_only": mae(tof), "stereo_only": mae(st),
           "stereo_measured": mae(st, m & sv) if (m & sv).any() else float("nan"),
           "stereo_coverage": float((m & sv).sum() / m.sum()),
           "inv_var_dei": mae(inverse_variance_fusion(tof, f["sigma_tof"], st, f["sigma_st"])),
           "net": mae(net), "fused": mae(fused),
           "oracle_pixel": mae(oracle_selection(tof, st, gt)),
           "oracle_convex": mae(np.clip(gt, lo_c, hi_c)),
           "oracle_hull": mae(np.clip(gt, lo, hi))}
    best = min(row["tof_only"], row["stereo_only"])
    for k in ("net", "fused", "inv_var_dei", "oracle_pixel", "oracle_convex", "oracle_hull"):
        row[f"{k}_ratio"] = row[k] / best
    b, fpx, w = f["rig"][:3]
    row.update(baseline_m=float(b), focal_px=float(fpx), width=int(w))
    return row


def mean_ratio(preds: list[np.ndarray], frames: list[dict]) -> float:
    """Mean over frames of MAE(pred) / MAE(ToF only)."""
    return float(np.mean([np.abs(p - f["gt"])[f["gt"] > 0].mean()
                          / np.abs(f["geom"][0] - f["gt"])[f["gt"] > 0].mean()
                          for p, f in zip(preds, frames)]))


def build_frames_fixed(cfg: BenchConfig) -> list[dict]:
    """The fixed rig's validation scenes as a list of frames."""
    tc = cfg.train
    _, seeds = scene_seeds(tc)
    d = build_dataset(seeds, tc.sim, tc.stereo, tc.dei, desc="fixed-rig validation")
    return [{k: d[k][i] for k in ("geom", "err", "gt", "sigma_tof", "sigma_st")}
            for i in range(len(seeds))]


def table(name: str, rows: list[dict]) -> None:
    cols = ("tof_only", "stereo_only", "stereo_measured", "stereo_coverage", "inv_var_dei",
            "net", "fused", "oracle_pixel", "oracle_convex", "oracle_hull", "net_ratio",
            "fused_ratio",
            "oracle_pixel_ratio", "oracle_hull_ratio")
    print(f"\n{name}: B f width | " + " | ".join(cols))
    for i, r in enumerate(rows):
        print(f"{i:2d} {r['baseline_m']:.3f} {r['focal_px']:.0f} {r['width']} | "
              + " | ".join(f"{r[c]:.4f}" for c in cols))


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(argv, BenchConfig, prog="mobifuse.experiments.fusion_ceiling",
                           description=__doc__.split("\n\n")[0],
                           default_config="configs/mobifuse/bench.yaml", quick=QUICK)
    require_sensor_inputs(cfg, "mobifuse.experiments.fusion_ceiling")
    torch.set_num_threads(cfg.train.threads)
    net = rig_nets(cfg)["mobifuse"]
    radius = net.cfg.guard_radius
    val = rig_frames(cfg, dataclasses.replace(cfg.test_rigs, **VAL_RIGS), VAL_SEED0, VAL_SCENES,
                     "validation rigs")
    raw = predict_frames(net, val)
    tc = cfg.train
    fixed = build_frames_fixed(cfg)
    fixed_net = trained_net(tc, lambda: None, True)  # the bench's (cached) fixed-rig net
    raw_fixed = predict_frames(fixed_net, fixed)
    sel = {}
    print("validation: mean refined / ToF-only MAE (val rigs | fixed-rig val seeds)")
    for k in K_GRID:
        for r in RATIO_GRID:
            v = [mean_ratio([refined(p, f, k, r) for p, f in zip(rw, fr)], fr)
                 for rw, fr in ((raw, val), (raw_fixed, fixed))]
            sel[f"k={k:g} max_ratio={r:g}"] = v
            print(f"  k={k:<5g} max_ratio={r:<5g} {v[0]:.4f} | {v[1]:.4f}")
    out: dict = {"guard_radius": radius, "agree_k": cfg.agree_k, "max_ratio": MAX_RATIO,
                 "val_rigs": VAL_RIGS, "validation_val_rigs_and_fixed_rig": sel}
    for name, family, seed0, n in (("unseen", cfg.test_rigs, RIG_TEST_SEED0,
                                    cfg.rig_test_scenes),
                                   ("in_family", cfg.train_rigs, RIG_INFAMILY_SEED0,
                                    cfg.rig_infamily_scenes)):
        frames = rig_frames(cfg, family, seed0, n, f"{name} rigs")
        raw = predict_frames(net, frames)
        out[name] = [scene_row(f, p, refined(p, f, cfg.agree_k), radius)
                     for f, p in zip(frames, raw)]
        table(name, out[name])
    atomic_write_json(Path(args.out or "results/mobifuse") / "fusion_ceiling.json", out)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
