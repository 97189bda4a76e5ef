"""Evaluate a trained MobiFuse model on held-out simulated scenes or on a real capture folder.

    python -m mobifuse.eval --run runs/mobifuse/train-X [--scenes 8]
    python -m mobifuse.eval --run runs/mobifuse/train-X --capture path/to/capture [--out DIR]

Simulated: metrics (MAE, RMSE, AbsRel, delta, bad-5cm, per region) of the model, ToF only,
SGBM only and the DEI inverse-variance fusion, to metrics.json. Capture (layout in
`mobifuse.data.load_capture`): writes fused.pfm, sigma_tof.pfm, sigma_st.pfm, and metrics.json
when the folder holds gt_depth.pfm at the work resolution.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mobifuse.api import fuse
from mobifuse.baselines import inverse_variance_fusion
from mobifuse.config import TrainConfig
from mobifuse.data import build_dataset, load_capture, write_pfm
from mobifuse.metrics import depth_metrics, region_metrics
from mobifuse.models import MODEL_FILE, load_model
from mobifuse.simulator import MASKS
from mobifuse.train import predict, to_tensors
from shared.cli import build_parser, parse_args, run
from shared.errors import DataError, UserError
from shared.io import atomic_write_json, make_run_dir
from shared.log import get_logger

log = get_logger("mobifuse.eval")
EVAL_SEED0 = 50_000


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("mobifuse.eval", __doc__, default_config="configs/mobifuse/tiny.yaml",
                          run="a mobifuse.train run dir (its model.safetensors is evaluated)")
    parser.add_argument("--capture", default=None, help="a ToF + stereo capture folder")
    parser.add_argument("--scenes", type=int, default=8, help="held-out simulated scenes")
    args, cfg = parse_args(argv, TrainConfig, prog="mobifuse.eval", description="",
                           parser=parser)
    if args.run is None:
        raise UserError("--run DIR is required (a mobifuse.train run dir)")
    model = load_model(Path(args.run) / MODEL_FILE)
    if args.capture:  # every input is read and checked before the run dir is made
        cap = load_capture(args.capture)
        c = cap["calib"]
        out = fuse(cap["left"], cap["right"], cap["tof_depth"],
                   {"left": c.K_left, "tof": c.K_tof, "baseline_m": c.baseline_m},
                   c.T_left_tof, model=model, tof_amplitude=cap.get("tof_amplitude"),
                   mod_freq_hz=c.mod_freq_hz, downsample=cfg.sim.work_downsample)
        if "gt_depth" in cap and cap["gt_depth"].shape != out["depth"].shape:
            raise DataError(f"gt_depth.pfm shape {cap['gt_depth'].shape} != work "
                            f"resolution {out['depth'].shape}")
        run_dir = make_run_dir(args.out, "mobifuse", "eval")
        for k in ("depth", "sigma_tof", "sigma_st"):
            write_pfm(run_dir / f"{'fused' if k == 'depth' else k}.pfm", out[k])
        if "gt_depth" in cap:
            metrics = {"mobifuse": depth_metrics(out["depth"], cap["gt_depth"]),
                       "tof_only": depth_metrics(out["tof"], cap["gt_depth"])}
            atomic_write_json(run_dir / "metrics.json", metrics)
        log.info("wrote %s", run_dir)
        return 0
    seeds = [cfg.seed * 100_000 + EVAL_SEED0 + i for i in range(args.scenes)]
    d = build_dataset(seeds, cfg.sim, cfg.stereo, cfg.dei, desc="eval scenes")
    geom, err, _ = to_tensors(d)
    preds = {"mobifuse": predict(model, geom, err), "tof_only": d["geom"][:, 0],
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
