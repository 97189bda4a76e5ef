"""Evaluate MobiFuse on held-out simulated scenes, a Middlebury scene folder or a capture folder.

    python -m mobifuse.eval [--run runs/mobifuse/train-X] [--scenes 8]
    python -m mobifuse.eval --middlebury path/to/Scene [--tof-ratio 2] [--downsample 2]
    python -m mobifuse.eval --capture path/to/capture [--downsample 2] [--out DIR]

Without --run the shipped default model is evaluated. Simulated: metrics (MAE, RMSE, AbsRel,
delta, bad-5cm, per region) of the model, ToF only, SGBM only and the DEI inverse-variance
fusion, to metrics.json. Middlebury (layout in `mobifuse.data.load_middlebury_scene`; without
tof_depth.pfm a ToF map is simulated from the ground truth) and capture folders (layout in
`mobifuse.data.load_capture`): writes fused.pfm, sigma_tof.pfm, sigma_st.pfm, and, with ground
truth, metrics.json with fused, inverse-variance, ToF-only and stereo-only MAE and coverage side
by side (dense arms cover every pixel; "measured" rows only where the sensor gave a value).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from mobifuse.api import default_model, fuse, model_offset_gate, post_steps, trained_dei_config
from mobifuse.baselines import inverse_variance_fusion
from mobifuse.config import TrainConfig
from mobifuse.data import build_dataset, load_capture, load_middlebury_scene, write_pfm
from mobifuse.disocclusion import frame_shift
from mobifuse.metrics import depth_metrics, region_metrics
from mobifuse.models import MODEL_FILE, load_model
from mobifuse.simulator import MASKS
from mobifuse.train import frame_camera, predict, to_tensors
from shared.cli import build_parser, parse_args, run
from shared.errors import DataError, UserError
from shared.io import atomic_write_json, make_run_dir
from shared.log import get_logger

log = get_logger("mobifuse.eval")
EVAL_SEED0 = 50_000


def side_by_side(out: dict, gt: np.ndarray) -> dict:
    """MAE / median / coverage of fused, inverse-variance, ToF-only and stereo-only depth on
    the pixels with ground truth; the sensors also on their measured pixels only."""
    known = np.isfinite(gt) & (gt > 0)
    if not known.any():
        raise DataError("the ground truth has no known depth")
    iv = inverse_variance_fusion(out["tof"], out["sigma_tof"], out["stereo"], out["sigma_st"])
    tof = out.get("tof_sensor", out["tof"])  # the sensor's depth, without a net's preprocessing
    rows = {}
    for name, pred, m in (("fused", out["depth"], known), ("inverse_variance", iv, known),
                          ("tof_only", tof, known), ("stereo_only", out["stereo"], known),
                          ("tof_measured", tof, known & out["tof_valid"]),
                          ("stereo_measured", out["stereo"], known & out["stereo_valid"])):
        e = np.abs(pred - gt)[m]
        rows[name] = {"mae": float(e.mean()) if e.size else float("nan"),
                      "median": float(np.median(e)) if e.size else float("nan"),
                      "coverage": float(m.sum() / known.sum())}
    return rows


def _real(args, model, downsample: int) -> int:
    """--middlebury / --capture: fuse the folder, write maps, metrics side by side."""
    if args.middlebury:  # every input is read and checked before the run dir is made
        scene = load_middlebury_scene(args.middlebury, tof_ratio=args.tof_ratio)
        if "tof_depth" not in scene:
            raise DataError(f"{args.middlebury}: no tof_depth.pfm and no disp0.pfm to simulate "
                            "a ToF map from")
        left, right, tof, amp = scene["left"], scene["right"], scene["tof_depth"], None
        gt = scene.get("depth")
    else:
        scene = load_capture(args.capture)
        left, right, tof = scene["left"], scene["right"], scene["tof_depth"]
        amp, gt = scene.get("tof_amplitude"), scene.get("gt_depth")
    out = fuse(left, right, tof, scene["calib"], model=model, tof_amplitude=amp,
               downsample=downsample, offset_gate=args.offset_gate)
    if gt is not None:
        if gt.shape == left.shape[:2]:
            gt = gt[::downsample, ::downsample]
        if gt.shape != out["depth"].shape:
            raise DataError(f"ground truth shape {gt.shape} is neither the image's "
                            f"{left.shape[:2]} nor the work grid's {out['depth'].shape}")
    run_dir = make_run_dir(args.out, "mobifuse", "eval")
    for k in ("depth", "sigma_tof", "sigma_st"):
        write_pfm(run_dir / f"{'fused' if k == 'depth' else k}.pfm", out[k])
    for w in out["warnings"]:
        log.warning(w)
    if gt is not None:
        rows = side_by_side(out, gt)
        atomic_write_json(run_dir / "metrics.json", {
            **rows, "search": {k: out["search"][k] for k in ("min_disp", "num_disp", "clipped")},
            "tof_source": scene.get("tof_source", "capture"), "warnings": out["warnings"]})
        for name, r in rows.items():
            log.info("%-17s MAE %7.4f m  median %7.4f m  coverage %5.1f%%", name, r["mae"],
                     r["median"], 100 * r["coverage"])
    log.info("wrote %s", run_dir)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("mobifuse.eval", __doc__, default_config="configs/mobifuse/tiny.yaml",
                          run="a mobifuse.train run dir (default: the shipped model)")
    parser.add_argument("--capture", default=None, help="a ToF + stereo capture folder")
    parser.add_argument("--middlebury", default=None, help="a Middlebury 2014 scene folder")
    parser.add_argument("--tof-ratio", type=int, default=2,
                        help="ToF resolution = image / this, when simulated for --middlebury")
    parser.add_argument("--downsample", type=int, default=None,
                        help="work grid = image / this (default: sim.work_downsample)")
    parser.add_argument("--scenes", type=int, default=8, help="held-out simulated scenes")
    parser.add_argument("--offset-gate", type=float, default=None,
                        help="the scene-wide stereo offset's gate (0: off; default: the "
                             "model's own, none for the shipped default model)")
    args, cfg = parse_args(argv, TrainConfig, prog="mobifuse.eval", description="",
                           parser=parser)
    if args.capture and args.middlebury:
        raise UserError("give --capture or --middlebury, not both")
    if args.offset_gate is not None and not args.offset_gate >= 0:
        raise UserError(f"--offset-gate must be >= 0, got {args.offset_gate}")
    model = load_model(Path(args.run) / MODEL_FILE) if args.run else default_model()
    gate = model_offset_gate(model) if args.offset_gate is None else args.offset_gate
    downsample = args.downsample if args.downsample is not None else cfg.sim.work_downsample
    if args.capture or args.middlebury:
        return _real(args, model, downsample)
    seeds = [cfg.seed * 100_000 + EVAL_SEED0 + i for i in range(args.scenes)]
    # the net reads the scenes with its ToF preprocessing (the config's DEI otherwise); the
    # baselines read the sensor's ToF
    sensor_dei = dataclasses.replace(cfg.dei, tof_mpi_gain=0.0, tof_surface_tol=0.0)
    trained = trained_dei_config(model, None)  # the net's file's ToF preprocessing, else none
    net_dei = dataclasses.replace(cfg.dei, tof_mpi_gain=trained.tof_mpi_gain,
                                  tof_surface_tol=trained.tof_surface_tol)
    d = build_dataset(seeds, cfg.sim, cfg.stereo, sensor_dei, desc="eval scenes")
    dn = d if net_dei == sensor_dei else build_dataset(seeds, cfg.sim, cfg.stereo, net_dei,
                                                       desc="eval scenes, the net's inputs")
    geom, err, _ = to_tensors(dn)
    if model.cfg.ray_channels or model.cfg.fov_channels:  # each scene's camera, as in training
        err = torch.cat([err, torch.from_numpy(np.stack(
            [frame_camera({"err": e, "rig": r}, model.cfg) for e, r in zip(dn["err"], dn["rig"])]
        ))], 1)
    g = dn["geom"]
    fused = post_steps(predict(model, geom, err), g[:, 0], g[:, 1], g[:, 2], g[:, 3],
                       dn["sigma_tof"], dn["sigma_st"], dn["err"][:, 0], frame_shift(cfg.sim),
                       gate, guard_radius=model.cfg.guard_radius)
    preds = {"mobifuse": fused, "tof_only": d["geom"][:, 0],
             "sgbm_only": d["geom"][:, 2],
             "inv_var_dei": inverse_variance_fusion(d["geom"][:, 0], d["sigma_tof"],
                                                    d["geom"][:, 2], d["sigma_st"])}
    masks = {m: d[f"mask_{m}"] for m in MASKS}
    metrics = {arm: {**depth_metrics(p, d["gt"]), **region_metrics(p, d["gt"], masks)}
               for arm, p in preds.items()}
    run_dir = make_run_dir(args.out, "mobifuse", "eval")
    atomic_write_json(run_dir / "metrics.json", metrics)
    for arm, m in metrics.items():
        log.info("%-12s MAE %.4f m  RMSE %.4f m  bad5cm %.1f%%", arm, m["mae"], m["rmse"],
                 m["bad5cm"])
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
