"""`python -m mobifuse.experiments.train_scale`: the cross-rig net's training budget, scaled.

Each arm of `ARMS` trains the bench's cross-rig net (phone rigs `train_rigs` only, the bench's
config otherwise) on the arm's own training scenes and steps (S1: 96 / 1,600, the budget before
S4; S4: 4x; S16: 16x), with net seeds `--seeds` (the seed changes the initialisation and the
crop order; every seed of an arm trains on the same scenes). Each net is scored, after the
bench's refinement, per scene as MAE / ToF-only MAE (the sensor's depth: with
`rig_mpi_gain` > 0 the net reads frames with a multipath-compensated ToF, the denominator
frames without) on:

- validation sets, the only ones a choice is made on: 48 fresh unseen-rig scenes (`test_rigs`,
  seeds 65,000+), 8 scenes of rigs between the families (`fusion_ceiling.VAL_RIGS`, 90,000+) and 8
  scenes of the training rigs (91,000+);
- the bench's 12 unseen-rig test scenes (60,000+) and its 8 in-family scenes (70,000+), reported,
  never chosen on.

Scenes render in `--workers` processes (chunks of `CHUNK` seeds, each cached like the bench's
frames); then `--workers` processes each train one (arm, seed) net at a time on
`train.device` (`--set train.device=cuda` on a GPU) and score it on the CPU; a net's results are
written as it finishes. Every training process holds its arm's scenes in memory (S16: about
4.5 GB). Writes
OUT/train_scale.json (default OUT: results/mobifuse/train_scale) and each net as
OUT/nets/ARM_sSEED.safetensors.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import cv2
import numpy as np
import torch

from mobifuse.bench import (
    QUICK,
    RIG_INFAMILY_SEED0,
    RIG_TEST_SEED0,
    held_out_seeds,
    rig_frames,
    rig_refined,
    rig_train_config,
)
from mobifuse.config import BenchConfig
from mobifuse.data import build_frames
from mobifuse.experiments.cross_rig_seeds import ratios
from mobifuse.experiments.fusion_ceiling import VAL_RIGS, VAL_SCENES, VAL_SEED0
from mobifuse.models import save_model
from mobifuse.train import model_meta, predict_frames, scene_seeds, train_fusion_net
from shared.cli import build_parser, parse_args, run
from shared.errors import ConfigError
from shared.io import atomic_write_json
from shared.log import get_logger

log = get_logger("mobifuse.experiments.train_scale")
ARMS = {"S1": (96, 1_600), "S4": (384, 6_400), "S16": (1_536, 25_600)}  # (scenes, steps)
SEEDS = (0, 1, 2)
CHUNK = 32
FRESH_SEED0, FRESH_SCENES = 65_000, 48


def eval_sets(cfg: BenchConfig) -> dict[str, tuple]:
    """Name -> (rig family, first seed, scenes) of every scored set."""
    return {"fresh_unseen": (cfg.test_rigs, FRESH_SEED0, FRESH_SCENES),
            "val": (dataclasses.replace(cfg.test_rigs, **VAL_RIGS), VAL_SEED0, VAL_SCENES),
            "val_in_family": (cfg.train_rigs, VAL_SEED0 + 1_000, VAL_SCENES),
            "unseen": (cfg.test_rigs, RIG_TEST_SEED0, cfg.rig_test_scenes),
            "in_family": (cfg.train_rigs, RIG_INFAMILY_SEED0, cfg.rig_infamily_scenes)}


# the validation sets of the S16 rule under the short names the later pipeline rules use
# (results/mobifuse/stereo_offset/, fov_bias/)
RULE_SETS = {"fresh": "fresh_unseen", "between": "val", "in": "val_in_family"}


def rule_sets(cfg: BenchConfig) -> dict[str, list[dict]]:
    """Short name -> frames of the S16 rule's validation sets (`eval_sets`), as
    `bench.rig_frames` builds them."""
    sets = eval_sets(cfg)
    return {short: rig_frames(cfg, *sets[name], name) for short, name in RULE_SETS.items()}


def set_scores(res: list[np.ndarray], frames: list[dict], label: str) -> dict:
    """A set's per-scene ratios (`ratios`) and a rule's figures: scenes at or below 0.7, the
    worst, the mean; printed as one line after `label`."""
    r = np.array(ratios(res, frames))
    out = {"ratios": r.tolist(), "at_or_below_0.7": int((r <= 0.7).sum()),
           "worst": float(r.max()), "mean": float(r.mean())}
    print(f"{label} {out['at_or_below_0.7']:2d}/{len(r)} worst {out['worst']:.3f} "
          f"mean {out['mean']:.4f}", flush=True)
    return out


def _frames(cfg: BenchConfig, family, seeds: list[int], dei=None) -> list[dict]:
    """Frames of `seeds` on rigs of `family`, built (and cached) in chunks of `CHUNK`, with the
    bench's DEI config or `dei` (the cross-rig net's: `BenchConfig.rig_mpi_gain`)."""
    tc = cfg.train
    out: list[dict] = []
    for i in range(0, len(seeds), CHUNK):
        out += build_frames(seeds[i:i + CHUNK], tc.sim, tc.stereo, dei or tc.dei, family,
                            desc=f"scenes {seeds[i]}+")
    return out


def arm_config(cfg: BenchConfig, budget: tuple[int, int], seed: int):
    """The cross-rig net's TrainConfig with `budget` = (scenes, steps), net seed `seed`."""
    tc = rig_train_config(cfg)
    return dataclasses.replace(tc, train_scenes=budget[0], steps=budget[1],
                               seed=seed)


def _render(job: tuple) -> int:
    cfg, family, seeds, dei = job
    torch.set_num_threads(1)
    cv2.setNumThreads(1)  # one thread a process: OpenCV's own pool oversubscribes the cores
    _frames(cfg, family, seeds, dei)
    return len(seeds)


def render_all(cfg: BenchConfig, budgets: list[tuple[int, int]], workers: int) -> None:
    """Every chunk the jobs will read, rendered in parallel into the frame cache."""
    tc = rig_train_config(cfg)
    train_seeds, _ = scene_seeds(dataclasses.replace(tc, train_scenes=max(b[0] for b in budgets)))
    jobs = [(cfg, cfg.train_rigs, train_seeds[i:i + CHUNK], tc.dei)
            for i in range(0, len(train_seeds), CHUNK)]
    deis = [cfg.train.dei] + ([tc.dei] if tc.dei != cfg.train.dei else [])
    for family, seed0, n in eval_sets(cfg).values():
        seeds = held_out_seeds(cfg, seed0, n)
        jobs += [(cfg, family, seeds[i:i + CHUNK], d) for i in range(0, n, CHUNK) for d in deis]
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        done = sum(pool.map(_render, jobs))
    log.info("rendered %d scenes in %d chunks", done, len(jobs))


def one_net(job: tuple) -> dict:
    """Train one (arm, seed) net, save it, score it on every set."""
    cfg, arm, budget, seed, out_dir, command = job
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    tc = arm_config(cfg, budget, seed)
    seeds0, _ = scene_seeds(dataclasses.replace(tc, seed=cfg.train.seed))
    train = _frames(cfg, cfg.train_rigs, seeds0, tc.dei)
    t0 = time.perf_counter()
    model, metrics = train_fusion_net(tc, train, desc=f"{arm} seed {seed}")
    model = model.cpu()
    save_model(model, Path(out_dir) / "nets" / f"{arm}_s{seed}.safetensors",
               model_meta(tc, f"{command} (net {arm} seed {seed})"))
    row: dict = {"train_s": time.perf_counter() - t0, "final_loss": metrics["final_loss"],
                 "train_scenes": tc.train_scenes, "steps": tc.steps}
    for name, (family, seed0, n) in eval_sets(cfg).items():
        frames = _frames(cfg, family, held_out_seeds(cfg, seed0, n))
        own = frames if tc.dei == cfg.train.dei else _frames(
            cfg, family, held_out_seeds(cfg, seed0, n), tc.dei)  # the net's inputs
        r = np.array(ratios(rig_refined(predict_frames(model, own), own, cfg.agree_k,
                                        cfg.train.sim), frames))
        row[name] = {"ratios": r.tolist(), "mean": float(r.mean()), "worst": float(r.max()),
                     "above_1": int((r > 1).sum()), "at_or_below_0.7": int((r <= 0.7).sum())}
    log.info("%s seed %d: %s", arm, seed, {k: (round(v["worst"], 3), round(v["mean"], 3))
                                           for k, v in row.items() if isinstance(v, dict)})
    return {"arm": arm, "seed": seed, **row}


def summary(rows: list[dict], arms: list[str]) -> dict:
    """Per arm and set: the means over seeds of the mean and worst ratios; per-seed counts."""
    out: dict = {}
    for arm in arms:
        rs = sorted((r for r in rows if r["arm"] == arm), key=lambda r: r["seed"])
        out[arm] = {name: {"mean": float(np.mean([r[name]["mean"] for r in rs])),
                           "worst": float(np.mean([r[name]["worst"] for r in rs])),
                           "above_1": [r[name]["above_1"] for r in rs],
                           "at_or_below_0.7": [r[name]["at_or_below_0.7"] for r in rs]}
                    for name in rs[0] if isinstance(rs[0][name], dict)} if rs else {}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("mobifuse.experiments.train_scale", __doc__.split("\n\n")[0],
                          "configs/mobifuse/bench.yaml")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS),
                        help="training budgets (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS),
                        help="net seeds (default: 0 1 2)")
    parser.add_argument("--workers", type=int, default=2,
                        help="processes for rendering and for the nets (default: 2)")
    parser.add_argument("--no-render", action="store_true",
                        help="skip the parallel rendering step (every scene already cached)")
    parser.add_argument("--render-only", action="store_true",
                        help="render every scene the arms read into the frame cache, then stop "
                             "(a GPU call can render first and train in the next)")
    args, cfg = parse_args(argv, BenchConfig, prog="mobifuse.experiments.train_scale",
                           description=__doc__.split("\n\n")[0], parser=parser,
                           default_config="configs/mobifuse/bench.yaml", quick=QUICK)
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1 (got {args.workers})")
    if args.render_only and args.no_render:
        raise ConfigError("--render-only and --no-render exclude each other")
    if not args.no_render:
        render_all(cfg, [ARMS[a] for a in args.arms], args.workers)
    if args.render_only:
        return 0
    out_dir = Path(args.out or "results/mobifuse/train_scale")
    (out_dir / "nets").mkdir(parents=True, exist_ok=True)
    command = "python -m mobifuse.experiments.train_scale " + " ".join(
        argv if argv is not None else sys.argv[1:])
    jobs = [(cfg, a, ARMS[a], s, str(out_dir), command)  # the largest budgets first
            for a in sorted(args.arms, key=ARMS.get, reverse=True) for s in args.seeds]
    rows: list[dict] = []
    with ProcessPoolExecutor(min(args.workers, len(jobs)), mp_context=mp.get_context("spawn")
                             ) as pool:
        for fut in as_completed([pool.submit(one_net, j) for j in jobs]):
            rows.append(fut.result())  # written after each net: a cut-short run keeps its nets
            atomic_write_json(out_dir / "train_scale.json", {
                "command": command,
                "torch": torch.__version__,
                "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                "summary": summary(rows, list(args.arms)), "nets": rows})
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
