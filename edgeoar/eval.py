"""`python -m edgeoar.eval --run DIR`: a trained model on held-out streams or real videos.

* default: the generated test and out-of-family splits of the run's config: accuracy per
  frames seen, and the IIE + MC exit with thresholds chosen on the validation split
  (metrics.json in the run dir of this evaluation);
* `--video PATH`: stream one file (anything PyAV reads) through `edgeoar.stream` and log each
  frame's (label, confidence, exited);
* `--ucf101 ROOT`: accuracy of the full-clip and IIE + MC decisions on the first `--limit`
  videos of UCF-101's official test list (the model's classes must be UCF-101's).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeoar.config import ExitConfig, TrainConfig
from edgeoar.data import check_stream, load_split, load_video, ucf101_split
from edgeoar.exits import compare_policies, step_scores
from edgeoar.models import MODEL_FILE, load_model
from edgeoar.online import stream
from edgeoar.train import accuracy_per_step, predict
from shared.cli import build_parser, parse_args, run
from shared.config import load_config, save_config
from shared.errors import DataError, UserError
from shared.io import atomic_write_json, make_run_dir
from shared.log import get_logger, progress

__all__ = ["evaluate_streams", "evaluate_ucf101", "decide", "main"]

log = get_logger("edgeoar.eval")


def evaluate_streams(cfg: TrainConfig, model, ec: ExitConfig) -> dict:
    """Accuracy per step and the IIE + MC exit on the test and OOD splits."""
    val = load_split(cfg, "val")
    pv = predict(model, val)
    tests = {}
    for split in ("test", "ood"):
        d = load_split(cfg, split)
        p = predict(model, d)
        tests[split] = (step_scores(p["rgb"], p["motion"], p["gate"]), d["label"])
    res = compare_policies(step_scores(pv["rgb"], pv["motion"], pv["gate"]), val["label"],
                           tests, ec.operating_rule(), ec.conf_grid, ec.mc_grid,
                           policies=("iie_mc", "full_clip"))
    out = {"thresholds": {"tau_conf": res["iie_mc"]["param"][0],
                          "tau_mc": res["iie_mc"]["param"][1]}}
    for split in tests:
        d = load_split(cfg, split)
        out[split] = {"acc_per_step": accuracy_per_step(predict(model, d), d["label"]).tolist(),
                      **{p: {k: v for k, v in res[p][split].items()
                             if k in ("acc", "frames", "frac", "auc", "wrong_early")}
                         for p in res}}
    return out


def decide(frames) -> tuple[int, str]:
    """(frames seen, label) at the exit of a `stream` (or its last frame)."""
    seen, label = 0, ""
    for seen, (_, label, _, exited) in enumerate(frames, 1):  # noqa: B007
        if exited:
            break
    return seen, label


def evaluate_ucf101(model, names: list[str], root: str, limit: int,
                    thresholds: tuple[float, float] | None = None) -> dict:
    items, ucf_names = ucf101_split(root, 1, "test")
    if ucf_names != names:
        raise DataError(f"{root}: the model's classes are not UCF-101's classInd.txt")
    right, right_exit, frames = 0, 0, []
    for path, label in progress(items[:limit], desc="UCF-101"):
        d = load_video(path, model.steps, model.image_size, model.cell)
        out = predict(model, {"rgb": d["rgb"][None], "mv": d["mv"][None],
                              "part": d["part"][None], "diff": d["diff"][None],
                              "label": np.array([label])})
        s = step_scores(out["rgb"], out["motion"], out["gate"])
        right += int(s["p_iie"][0, -1].argmax() == label)
        seen, lab = decide(stream(path, model, names, thresholds))
        right_exit += int(lab == names[label])
        frames.append(seen)
    n = len(items[:limit])
    return {"videos": n, "acc_full_clip": right / n, "acc_iie_mc": right_exit / n,
            "frames_mean": float(np.mean(frames))}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("edgeoar.eval", __doc__.split("\n")[0],
                          run="a run directory of `python -m edgeoar.train` (required)")
    parser.add_argument("--video", default=None, help="stream this video file instead")
    parser.add_argument("--ucf101", default=None, metavar="ROOT",
                        help="evaluate on UCF-101's split-1 test list under ROOT")
    parser.add_argument("--limit", type=int, default=200, help="UCF-101 videos (default 200)")
    args, ec = parse_args(argv, ExitConfig, prog="edgeoar.eval", description="", parser=parser)
    if args.run is None:
        raise UserError("--run DIR is required")
    model, info = load_model(Path(args.run) / MODEL_FILE)
    if args.video is not None:
        for i, (_, label, conf, exited) in enumerate(stream(args.video, Path(args.run)), 1):
            log.info("frame %d: %s (%.3f)%s", i, label, conf, " EXIT" if exited else "")
            if exited:
                break
        return 0
    if args.ucf101 is not None:
        ucf101_split(args.ucf101, 1, "test")  # a bad layout fails before any output
        th = info.get("exit")
        metrics = evaluate_ucf101(model, info["classes"], args.ucf101, max(args.limit, 1),
                                  (th["tau_conf"], th["tau_mc"]) if th else None)
    else:
        cfg = load_config(Path(args.run) / "config.yaml", TrainConfig)
        check_stream(cfg.stream)
        metrics = evaluate_streams(cfg, model, ec)
    run_dir = make_run_dir(args.out, "edgeoar", "eval")
    save_config(ec, run_dir / "config.yaml")
    atomic_write_json(run_dir / "metrics.json", metrics)
    log.info("%s; wrote %s", {k: v for k, v in metrics.items() if not isinstance(v, dict)},
             run_dir)
    return 0


if __name__ == "__main__":
    run(main)
