"""`python -m mobifuse.experiments.wide_validation [--quick]`: candidate methods for the unseen
wide-baseline rigs, measured on validation scenes only.

Validation sets (none of them the bench's test scenes):

- `val_wide`: `VAL_WIDE_SCENES` scenes of the bench's `test_rigs` family (B 10-25 cm, f 800-1200
  px) with seeds of their own (`VAL_WIDE_SEED0` + i; the bench tests on 60000 + i): the same
  rig family as the unseen test, new scenes and rigs;
- `val`: the rigs between the two families (`fusion_ceiling.VAL_RIGS`, seeds 90000+);
- `val_in_family`: validation scenes of `train_rigs` (seeds 91000+);
- `fixed`: the fixed phone rig's validation seeds, with the bench's fixed-rig net (post-steps
  only: the cross-rig nets are not used there).

Arms, each after the stereo-agreement refinement of the bench (`BenchConfig.agree_k`), as
MAE / ToF-only MAE per scene:

- `net`: the bench's cross-rig net (trained on `train_rigs` only), with the agreement step only;
- `stereo_scaled p=.. min=..`: the same net trained with the stereo-error scaling augmentation
  (`train.stereo_scaled`) at each (`stereo_scale_prob`, `stereo_scale_min`) of `SCALE_GRID`
  (same scenes, same seed; cached like the bench's nets);
- `dei_bilateral r=.. c=..`: then the DEI bilateral denoising (`denoise.dei_bilateral`: range
  kernel c sigma_ToF at the centre pixel, spatial sigma r / 2, window (2r + 1)^2, re-clipped to
  the convex guard's interval) at each (r, c) of `BILATERAL_GRID`; r = 3, c = 0.5 is what the
  bench and `fuse()` use;
- `flip_tta`: the mean of the net on the frame and on its mirror image (two nets' cost);
- `fill e=.. w=..`: the adopted steps (agreement, DEI bilateral r = 3, c = 0.5), then the
  background fill of disocclusion holes (`disocclusion.background_fill`) at each (edge ratio,
  width factor) of `FILL_GRID`; e = 0.15, w = 2 is what the bench and `fuse()` use.

Then, on `val_wide`, what limits (with the adopted post-steps, the fill included): per scene
the share of pixels neither sensor measured (ToF hole and SGBM hole) and their share of the
fused error, the fused and the per-pixel oracle ratio over the measured pixels only, and the
shipped default model's ratio (it saw such rigs in training: a reference, not an unseen-rig
result). Writes
results/mobifuse/wide_validation.json (`--out DIR` elsewhere).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from pathlib import Path

import numpy as np
import torch

from mobifuse.api import default_model, run_net
from mobifuse.baselines import oracle_selection
from mobifuse.bench import (
    QUICK,
    predict_frames,
    refined,
    require_sensor_inputs,
    rig_frames,
    rig_train_config,
    trained_net,
)
from mobifuse.config import BenchConfig
from mobifuse.data import build_frames
from mobifuse.denoise import dei_bilateral
from mobifuse.disocclusion import background_fill, frame_shift
from mobifuse.experiments.cross_rig_seeds import ratios
from mobifuse.experiments.fusion_ceiling import (
    VAL_RIGS,
    VAL_SCENES,
    VAL_SEED0,
    build_frames_fixed,
)
from mobifuse.models import N_ERR
from mobifuse.train import scene_seeds, with_camera
from shared.cli import parse_args, run
from shared.io import atomic_write_json
from shared.log import get_logger

log = get_logger("mobifuse.experiments.wide_validation")
VAL_WIDE_SEED0, VAL_WIDE_SCENES = 92_000, 12
SCALE_GRID = ((0.5, 0.05), (0.25, 0.2))
BILATERAL_GRID = ((2, 0.5), (3, 0.25), (3, 0.5), (3, 1.0), (5, 0.5), (7, 0.35))
FILL_GRID = ((0.15, 1.0), (0.15, 2.0), (0.15, 4.0), (0.05, 2.0), (0.3, 2.0))


def flipped(net, f: dict) -> np.ndarray:
    """The net's depth on the mirrored frame, mirrored back; a net with camera maps gets the
    mirrored camera's (its u ray map negated, as `train._crops` gives a flipped crop)."""
    e = np.ascontiguousarray(with_camera(f, net.cfg)[..., ::-1])
    if net.cfg.ray_channels:
        e[N_ERR] = -e[N_ERR]
    return run_net(net, np.ascontiguousarray(f["geom"][..., ::-1]), e)[..., ::-1]


def limits(frames: list[dict], fused: list[np.ndarray], dm, shifts: list[float]) -> list[dict]:
    """Per frame: unobserved pixels (both sensors' holes), their share of the fused error, the
    ratios over observed pixels, the oracle's, and the default model's ratio."""
    rows = []
    for f, d, shift in zip(frames, fused, shifts):
        gt = f["gt"]
        tof, tv, st, sv = f["geom"]
        m = gt > 0
        obs = m & ((tv > 0.5) | (sv > 0.5))
        err = np.abs(d - gt)
        orc = np.abs(oracle_selection(tof, st, gt) - gt)
        et = np.abs(tof - gt)
        best = min(et[m].mean(), np.abs(st - gt)[m].mean())
        dd = refined(run_net(dm, f["geom"], f["err"]), f, 1.0, shift=shift)  # + the post-steps
        rows.append({"rig": f["rig"][:3].tolist(),
                     "unobserved_share": float(1 - obs.sum() / m.sum()),
                     "unobserved_share_of_fused_error": float(err[m & ~obs].sum() / err[m].sum()),
                     "fused_ratio": float(err[m].mean() / best),
                     "oracle_ratio": float(orc[m].mean() / best),
                     "fused_ratio_observed": float(err[obs].mean() / et[obs].mean()),
                     "oracle_ratio_observed": float(orc[obs].mean() / et[obs].mean()),
                     "default_model_ratio": float(np.abs(dd - gt)[m].mean() / best)})
    return rows


def summary(r: list[float]) -> str:
    return f"mean {np.mean(r):.3f} worst {np.max(r):.3f} > 0.7: {sum(x > 0.7 for x in r)}"


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(argv, BenchConfig, prog="mobifuse.experiments.wide_validation",
                           description=__doc__.split("\n\n")[0],
                           default_config="configs/mobifuse/bench.yaml", quick=QUICK)
    require_sensor_inputs(cfg, "mobifuse.experiments.wide_validation")
    torch.set_num_threads(cfg.train.threads)
    k = cfg.agree_k
    sets = {"val_wide": rig_frames(cfg, cfg.test_rigs, VAL_WIDE_SEED0, VAL_WIDE_SCENES,
                                   "val wide rigs"),
            "val": rig_frames(cfg, dataclasses.replace(cfg.test_rigs, **VAL_RIGS), VAL_SEED0,
                              VAL_SCENES, "validation rigs"),
            "val_in_family": rig_frames(cfg, cfg.train_rigs, VAL_SEED0 + 1_000, VAL_SCENES,
                                        "validation in-family rigs")}
    tc0 = rig_train_config(cfg)
    seeds0, _ = scene_seeds(tc0)
    train = functools.cache(lambda: build_frames(seeds0, tc0.sim, tc0.stereo, tc0.dei, tc0.rigs,
                                                 desc="rig train scenes"))
    nets = {"net": trained_net(tc0, train, True)}
    for p, amin in SCALE_GRID:
        nets[f"stereo_scaled p={p:g} min={amin:g}"] = trained_net(dataclasses.replace(
            tc0, stereo_scale_prob=p, stereo_scale_min=amin), train, True)
    fixed_net = trained_net(cfg.train, lambda: None, True)
    sets["fixed"] = build_frames_fixed(cfg)
    out: dict = {"val_wide_seed0": VAL_WIDE_SEED0, "agree_k": k, "sets": {}}
    for name, frames in sets.items():
        base_net = fixed_net if name == "fixed" else nets["net"]
        raw = predict_frames(base_net, frames)
        base = [refined(p, f, k, denoise_c=0.0) for p, f in zip(raw, frames)]
        row = {"net": ratios(base, frames)}
        for arm, net in nets.items():
            if arm != "net" and name != "fixed":
                row[arm] = ratios([refined(p, f, k, denoise_c=0.0) for p, f in
                                   zip(predict_frames(net, frames), frames)], frames)
        radius = base_net.cfg.guard_radius
        for r, c in BILATERAL_GRID:
            row[f"dei_bilateral r={r} c={c:g}"] = ratios(
                [dei_bilateral(b, f["sigma_tof"], f["geom"][0], f["geom"][2], c, r, radius)
                 for b, f in zip(base, frames)], frames)
        row["flip_tta"] = ratios([refined(0.5 * (p + flipped(base_net, f)), f, k, denoise_c=0.0)
                                  for p, f in zip(raw, frames)], frames)
        sim = cfg.train.sim
        shifts = [frame_shift(sim, f["rig"][1] if "rig" in f else None) for f in frames]
        adopted = [dei_bilateral(b, f["sigma_tof"], f["geom"][0], f["geom"][2], 0.5, 3, radius)
                   for b, f in zip(base, frames)]
        for e, wf in FILL_GRID:
            row[f"fill e={e:g} w={wf:g}"] = ratios(
                [background_fill(a, (f["geom"][1] > 0.5) | (f["geom"][3] > 0.5), f["err"][0], s,
                                 e, wf) for a, f, s in zip(adopted, frames, shifts)], frames)
        out["sets"][name] = row
        print(f"\n{name} (MAE / ToF-only MAE per scene; mean, worst, scenes above 0.7)")
        for arm, r in row.items():
            print(f"  {arm:32s} {summary(r)}  " + " ".join(f"{x:.3f}" for x in r))
        if name == "val_wide":
            out["val_wide_limits"] = limits(frames, [refined(p, f, k, shift=s) for p, f, s in
                                                     zip(raw, frames, shifts)], default_model(),
                                            shifts)
    print("\nval_wide: unobserved share | its share of fused error | fused / oracle ratio over"
          " observed pixels | default model")
    for i, r in enumerate(out["val_wide_limits"]):
        print(f"  {i:2d} {r['unobserved_share']:.3f} | {r['unobserved_share_of_fused_error']:.2f}"
              f" | {r['fused_ratio_observed']:.3f} / {r['oracle_ratio_observed']:.3f}"
              f" | {r['default_model_ratio']:.3f}")
    atomic_write_json(Path(args.out or "results/mobifuse") / "wide_validation.json", out)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
