"""`python -m mobifuse.experiments.calibrate_dei`: fit the DEI calibration factors.

Renders held-out scenes of the bench's *training* rig family (`BenchConfig.train_rigs`, seeds
never used elsewhere), computes each sensor's uncalibrated sigma and its true error, and prints
the factor per sensor with |error| <= 2 sigma on 95 % of the pixels (`dei.calibrate_scale`).
Paste them into `DEIConfig.tof_scale` / `st_scale`; the bench checks the coverage on unseen rigs.
Also fits the stereo's matched pixels and holes apart (`st_scale_split`: matched-pixel term on
the left-right checked pixels; `st_hole_scale`: the hole term's own factor over it), which the
`st_depth_ref: local_quantile` DEI needs (`--set train.dei.st_depth_ref=local_quantile`).
Writes results/mobifuse/dei_calibration.json.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from mobifuse.config import BenchConfig
from mobifuse.data import build_frames
from mobifuse.dei import calibrate_scale, coverage, stereo_depth_reference
from shared.cli import parse_args, run
from shared.io import atomic_write_json
from shared.log import get_logger

log = get_logger("mobifuse.experiments.calibrate_dei")
CAL_SEED0 = 80_000


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(argv, BenchConfig, prog="mobifuse.experiments.calibrate_dei",
                           description=__doc__.split("\n\n")[0],
                           default_config="configs/mobifuse/bench.yaml")
    tc = cfg.train
    dei = dataclasses.replace(tc.dei, tof_scale=1.0, st_scale=1.0, st_hole_scale=1.0)
    seeds = [tc.seed * 100_000 + CAL_SEED0 + i for i in range(12)]
    frames = build_frames(seeds, tc.sim, tc.stereo, dei, cfg.train_rigs, desc="calibration")
    out = {"scenes": len(frames), "rigs": dataclasses.asdict(cfg.train_rigs)}
    for sensor, ch, key in (("tof", 0, "sigma_tof"), ("st", 2, "sigma_st")):
        sig = [f[key] for f in frames]
        err = [np.abs(f["geom"][ch] - f["gt"]) for f in frames]
        c = calibrate_scale(sig, err, 0.95)
        pooled_s, pooled_e = np.concatenate([s.ravel() for s in sig]), np.concatenate(
            [e.ravel() for e in err])
        out[f"{sensor}_scale"] = c
        out[f"{sensor}_coverage_before"] = coverage(pooled_s, pooled_e)
        out[f"{sensor}_coverage_after"] = coverage(c * pooled_s, pooled_e)
        log.info("%s: scale %.4f (coverage %.3f -> %.3f)", sensor, c,
                 out[f"{sensor}_coverage_before"], out[f"{sensor}_coverage_after"])
    out.update(split_stereo_scales(frames, dei))
    log.info("st split: matched %.4f, hole x %.4f (coverage %.3f)", out["st_scale_split"],
             out["st_hole_scale"], out["st_coverage_split"])
    atomic_write_json(Path(args.out or "results/mobifuse") / "dei_calibration.json", out)
    return 0


def split_stereo_scales(frames: list[dict], dei) -> dict:
    """Factors c_m (matched-pixel term, fitted on matched pixels) and c_h (hole term, on holes),
    each with |err| <= 2 c sigma on 95 % of its pixels; sigma = hypot(c_m sigma_z, c_h hole)."""
    sz, hs, err, valid = [], [], [], []
    for f in frames:
        z, v = np.maximum(f["geom"][2].astype(np.float64), 0.05), f["geom"][3] > 0.5
        if dei.st_depth_ref == "local_quantile":
            z = stereo_depth_reference(z, dei.st_ref_quantile, dei.st_ref_window)
        h = (dei.hole_sigma + dei.hole_rel * z) * ~v
        # uncalibrated sigma_st = sqrt(sigma_z^2 + h^2) + 1e-3
        sz.append(np.sqrt(np.maximum((f["sigma_st"] - 1e-3) ** 2 - h**2, 0)))
        hs.append(h)
        err.append(np.abs(f["geom"][2] - f["gt"]))
        valid.append(v)
    cm = calibrate_scale([s[v] for s, v in zip(sz, valid)], [e[v] for e, v in zip(err, valid)])
    ch = calibrate_scale([h[~v] for h, v in zip(hs, valid)], [e[~v] for e, v in zip(err, valid)])
    sig = np.concatenate([np.hypot(cm * s, ch * h).ravel() + cm * 1e-3 for s, h in zip(sz, hs)])
    cov = coverage(sig, np.concatenate([e.ravel() for e in err]))
    return {"st_scale_split": cm, "st_hole_scale": ch / cm, "st_coverage_split": cov}


if __name__ == "__main__":
    run(main, sys.argv[1:])
