"""`python -m mobifuse.experiments.cross_rig_seeds [--quick]`: training noise of the cross-rig
net under both stereo DEIs, and where its error exceeds the ToF's.

For each stereo depth reference of `VARIANTS` (the stereo's own depth, and the calibrated
`local_quantile` default) and each net seed of `SEEDS`, the bench's cross-rig net is trained on
the *same* `train_rigs` scenes (the seed changes the initialisation and the crop order only;
cached like the bench's nets) and evaluated per scene, as MAE / ToF-only MAE, on:

- validation rigs (`fusion_ceiling.VAL_RIGS`: baseline 5-10 cm, f 600-800 px; seeds 90000+)
  and validation scenes of `train_rigs` (seeds 91000+), the only sets any choice is made on;
- the bench's unseen test rigs and its in-family scenes (reported, never chosen on).

Rows: the net alone, after the stereo-agreement refinement (`BenchConfig.agree_k`, what the
bench reports) and at each (k, max_ratio) of `AGREE_GRID`, after the ToF-anchor rule
(`tof_anchor`, a candidate safety rule) at each c of `ANCHOR_GRID`,
and the mean of the seeds' refined outputs (an ensemble, for reference: it costs one net per
seed at inference). For the worst unseen scene of each net it splits the excess error
sum(|fused - gt| - |ToF - gt|) over pixel classes: ToF-valid or hole, the depth-edge mask, SGBM
measured or not, and whether the output moved towards the stereo (|fused - SGBM| <
|ToF - SGBM| / 2); and, on ToF-valid pixels off depth edges, per quintile of the true depth,
the excess and the mean bias of the output and of the ToF. The same for the worst validation
scene of the training rigs. Writes results/mobifuse/cross_rig_seeds.json (`--out DIR` elsewhere).

`--variants`, `--seeds` restrict the nets trained; `--lean` skips the agreement and anchor grids
(the net alone, the refined output and the ensemble remain); `--tag NAME` writes
cross_rig_seeds_NAME.json. A candidate training option is measured with `--set train.KEY=VALUE`
(the low-frequency loss term's weight of the cross-rig net: `--set rig_lf_weight=W`). `summary`
holds, per set, the mean over seeds of the mean and of the worst refined scene, and each seed's
figures. "Refined" is the bench's pipeline after the
net: the stereo-agreement step, the DEI bilateral denoising and the background fill.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from pathlib import Path

import numpy as np
import torch

from mobifuse.bench import (
    QUICK,
    RIG_INFAMILY_SEED0,
    RIG_TEST_SEED0,
    predict_frames,
    refined,
    require_sensor_inputs,
    rig_frames,
    rig_refined,
    rig_train_config,
    trained_net,
)
from mobifuse.config import BenchConfig
from mobifuse.data import build_frames
from mobifuse.experiments.fusion_ceiling import VAL_RIGS, VAL_SCENES, VAL_SEED0
from mobifuse.train import scene_seeds
from shared.cli import build_parser, parse_args, run
from shared.io import atomic_write_json
from shared.log import get_logger

log = get_logger("mobifuse.experiments.cross_rig_seeds")
SEEDS = (0, 1, 2)
VARIANTS = {"own": {"st_depth_ref": "own", "st_scale": 1.0881, "st_hole_scale": 1.0},
            "local_quantile": {"st_depth_ref": "local_quantile", "st_scale": 0.2334,
                               "st_hole_scale": 4.4}}
ANCHOR_GRID = (1.0, 2.0, 3.0, 4.0)
AGREE_GRID = ((0.0, 0.5), (0.5, 0.5), (1.0, 0.5), (1.0, 0.25), (1.0, 0.125), (1.5, 0.25))


def tof_anchor(depth: np.ndarray, tof: np.ndarray, tof_valid: np.ndarray,
               sigma_tof: np.ndarray, c: float) -> np.ndarray:
    """`depth` clipped to [ToF - c sigma_tof, ToF + c sigma_tof] where the ToF measured (a
    candidate safety rule: where the ToF's DEI says it is reliable, the output may not stray
    further from it than c of its sigmas); between `depth` and the ToF, so a convex mix."""
    d = np.asarray(depth, dtype=np.float64)
    t = np.asarray(tof, dtype=np.float64)
    band = c * np.asarray(sigma_tof, dtype=np.float64)
    return np.where(np.asarray(tof_valid) > 0.5, np.clip(d, t - band, t + band),
                    d).astype(np.float32)


def ratios(preds: list[np.ndarray], frames: list[dict]) -> list[float]:
    """Per frame MAE(pred) / MAE(ToF only) over the pixels with ground truth."""
    out = []
    for p, f in zip(preds, frames):
        m = f["gt"] > 0
        out.append(float(np.abs(p - f["gt"])[m].mean() / np.abs(f["geom"][0] - f["gt"])[m].mean()))
    return out


def excess_split(pred: np.ndarray, f: dict) -> dict:
    """Share of the excess error sum(|pred - gt| - |ToF - gt|) from each pixel class, and
    each class's share of the pixels; the classes overlap (one split per line)."""
    gt = f["gt"]
    m = gt > 0
    tof, st = f["geom"][0], f["geom"][2]
    ex = (np.abs(pred - gt) - np.abs(tof - gt))[m]
    total = float(ex.sum())
    flat = (f["geom"][1] > 0.5) & (f["mask_edges"] == 0)
    cls = {"tof_valid": f["geom"][1] > 0.5, "edge": f["mask_edges"] > 0, "tof_valid_flat": flat,
           "st_measured": f["geom"][3] > 0.5,
           "moved_to_stereo": np.abs(pred - st) < 0.5 * np.abs(tof - st)}
    out = {"excess_m_sum": total, "pixels": int(m.sum()),
           "mae_tof": float(np.abs(tof - gt)[m].mean()),
           "mae_pred": float(np.abs(pred - gt)[m].mean())}
    for name, c in cls.items():
        c = c[m]
        out[name] = {"pixel_share": float(c.mean()), "excess_share": float(ex[c].sum() / total),
                     "excess_share_not": float(ex[~c].sum() / total)}
    # ToF-valid pixels off depth edges, by quintile of the true depth: excess and mean biases
    z, fl = gt[m], flat[m]
    edges = np.quantile(z[fl], np.linspace(0, 1, 6)) if fl.any() else np.zeros(6)
    out["flat_by_depth"] = []
    q = np.clip(np.searchsorted(edges, z, side="right") - 1, 0, 4)  # quintile of each pixel
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        b = fl & (q == k)
        if b.any():
            out["flat_by_depth"].append({
                "depth_m": [float(lo), float(hi)], "excess_m_sum": float(ex[b].sum()),
                "bias_fused_m": float((pred[m] - z)[b].mean()),
                "bias_tof_m": float((tof[m] - z)[b].mean()),
                "sigma_tof_median_m": float(np.median(f["sigma_tof"][m][b]))})
    pos = ex > 0
    out["worse_pixels_share"] = float(pos.mean())
    out["worse_excess_sum"] = float(ex[pos].sum())
    out["better_gain_sum"] = float(-ex[~pos].sum())
    return out


def variant_config(cfg: BenchConfig, dei: dict) -> BenchConfig:
    return dataclasses.replace(cfg, train=dataclasses.replace(
        cfg.train, dei=dataclasses.replace(cfg.train.dei, **dei)))


def summary(res: dict) -> dict:
    """Per set: each seed's mean and worst refined ratio, and their means over the seeds."""
    out = {}
    for name in res["seeds"][next(iter(res["seeds"]))]:
        if name.startswith("worst_"):
            continue
        r = [res["seeds"][s][name]["refined"] for s in res["seeds"]]
        out[name] = {"mean": float(np.mean([np.mean(x) for x in r])),
                     "worst": float(np.mean([max(x) for x in r])),
                     "per_seed_mean": [float(np.mean(x)) for x in r],
                     "per_seed_worst": [float(max(x)) for x in r],
                     "above_0.7": [int(np.sum(np.array(x) > 0.7)) for x in r]}
    return out


def evaluate(cfg: BenchConfig, sets: dict[str, list[dict]], seeds=SEEDS,
             lean: bool = False) -> dict:
    """Per seed and set: per-scene ratios of the net, the refined output, the anchored ones;
    the seeds' ensemble; the worst unseen scene's excess split."""
    tc0 = rig_train_config(cfg)
    seeds0, _ = scene_seeds(tc0)
    train = functools.cache(lambda: build_frames(seeds0, tc0.sim, tc0.stereo, tc0.dei, tc0.rigs,
                                                 desc="rig train scenes"))
    out: dict = {"seeds": {}}
    refined_all: dict[str, list] = {name: [] for name in sets}
    for s in seeds:
        net = trained_net(dataclasses.replace(tc0, seed=s), train, True)
        row: dict = {}
        for name, frames in sets.items():
            raw = predict_frames(net, frames)
            ref = rig_refined(raw, frames, cfg.agree_k, cfg.train.sim)
            refined_all[name].append(ref)
            row[name] = {"net": ratios(raw, frames), "refined": ratios(ref, frames)}
            if not lean:
                grids(row[name], raw, ref, frames, cfg.agree_k)
            if name in ("unseen", "val_in_family"):
                worst = int(np.argmax(row[name]["refined"]))
                row[f"worst_{name}"] = {"scene": worst, "rig": frames[worst]["rig"].tolist(),
                                        "split": excess_split(ref[worst], frames[worst])}
        out["seeds"][s] = row
        log.info("seed %d: " + " | ".join(f"{n} worst %.3f mean %.3f" for n in sets), s,
                 *[v for n in sets for v in (max(row[n]["refined"]),
                                               np.mean(row[n]["refined"]))])
    out["ensemble"] = {name: ratios([np.mean(ps, axis=0) for ps in zip(*refined_all[name])],
                                    frames) for name, frames in sets.items()}
    out["summary"] = summary(out)
    return out


def grids(row: dict, raw: list, ref: list, frames: list[dict], k0: float) -> None:
    """The ToF-anchor rule at each c of `ANCHOR_GRID` and the agreement step at each
    (k, max_ratio) of `AGREE_GRID` (then the denoising; no fill), into `row`."""
    for c in ANCHOR_GRID:
        anch = [tof_anchor(p, f["geom"][0], f["geom"][1], f["sigma_tof"], c)
                for p, f in zip(raw, frames)]
        row[f"anchor{c:g}"] = ratios(anch, frames)
        row[f"anchor{c:g}_refined"] = ratios(
            [refined(p, f, k0) for p, f in zip(anch, frames)], frames)
        row[f"refined_anchor{c:g}"] = ratios(
            [tof_anchor(p, f["geom"][0], f["geom"][1], f["sigma_tof"], c)
             for p, f in zip(ref, frames)], frames)
    for k, r in AGREE_GRID:
        row[f"agree k={k:g} ratio={r:g}"] = ratios(
            [refined(p, f, k, r) for p, f in zip(raw, frames)], frames)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("mobifuse.experiments.cross_rig_seeds", __doc__.split("\n\n")[0],
                          "configs/mobifuse/bench.yaml")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="stereo DEIs to train nets for (default: both)")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS),
                        help="net seeds (default: 0 1 2)")
    parser.add_argument("--lean", action="store_true",
                        help="skip the agreement and anchor grids")
    parser.add_argument("--tag", default="", help="write cross_rig_seeds_TAG.json")
    args, cfg = parse_args(argv, BenchConfig, prog="mobifuse.experiments.cross_rig_seeds",
                           description=__doc__.split("\n\n")[0], parser=parser,
                           default_config="configs/mobifuse/bench.yaml", quick=QUICK)
    require_sensor_inputs(cfg, "mobifuse.experiments.cross_rig_seeds")
    torch.set_num_threads(cfg.train.threads)
    res: dict = {"seeds": args.seeds, "anchor_grid": list(ANCHOR_GRID), "variants": {},
                 "command": "python -m mobifuse.experiments.cross_rig_seeds "
                            + " ".join(argv if argv is not None else sys.argv[1:])}
    name = f"cross_rig_seeds_{args.tag}.json" if args.tag else "cross_rig_seeds.json"
    for vname in args.variants:
        vc = variant_config(cfg, VARIANTS[vname])
        sets = {"val": rig_frames(vc, dataclasses.replace(vc.test_rigs, **VAL_RIGS), VAL_SEED0,
                                  VAL_SCENES, "validation rigs"),
                "val_in_family": rig_frames(vc, vc.train_rigs, VAL_SEED0 + 1_000, VAL_SCENES,
                                            "validation in-family rigs"),
                "unseen": rig_frames(vc, vc.test_rigs, RIG_TEST_SEED0, vc.rig_test_scenes,
                                     "unseen rigs"),
                "in_family": rig_frames(vc, vc.train_rigs, RIG_INFAMILY_SEED0,
                                        vc.rig_infamily_scenes, "in-family rigs")}
        res["variants"][vname] = evaluate(vc, sets, args.seeds, args.lean)
        atomic_write_json(Path(args.out or "results/mobifuse") / name, res)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
