"""`python -m bestshot.eval --run DIR`: evaluate a trained ShotVL on a generated split, or
query a video file.

On a split (the config's `split`, held-out clips by default): highlight-frame metrics of the
apex and stage queries (Hit@1 in window, Hit@1+-k, mean |delta frame|, frame-mAP), the
visual-text retention R@1, and zero-shot temporal localisation (THUMOS14-style mAP at tIoU
0.3:0.7, each action's description as the query). Writes metrics.json and predictions.jsonl
(Moment-DETR format). Queries select posecodes with the split's own category frequencies.

On a file: `--video clip.mp4 --query "the top of the jump"` prints the best frame and writes
scores.json. `--run` may also be a CLIP-style checkpoint directory (zero-shot).
"""

from __future__ import annotations

import numpy as np

from bestshot.config import EvalConfig
from bestshot.data import VideoSet, generate_split, make_queries
from bestshot.metrics import (
    highlight_metrics,
    qvh_prediction,
    scores_to_segments,
    thumos_map,
    write_jsonl,
)
from bestshot.models import from_pretrained
from bestshot.posecodes import category_frequencies
from bestshot.retrieval import (
    query,
    read_video,
    retention_r1,
    score_items,
    smooth_scores,
    video_embeddings,
)
from shared.cli import build_parser, parse_args, run
from shared.errors import ConfigError
from shared.io import atomic_write_json, make_run_dir
from shared.log import get_logger

__all__ = ["evaluate", "localisation_map", "main"]

log = get_logger("bestshot.eval")


def localisation_map(model, vs: VideoSet, emb: list[np.ndarray], cfg: EvalConfig) -> dict:
    """THUMOS-style mAP: for every clip and action in the split, frames scored against the
    action's description are thresholded into segments (seconds) and matched to the true
    action segments."""
    from shared.motion import ACTIONS

    names = sorted({vs.action_names[a] for a in vs.segments[:, :, 0].ravel() if a >= 0})
    txt = dict(zip(names, model.encode_texts([ACTIONS[n].description for n in names])))
    gt, pred = [], []
    for v in range(len(vs)):
        for a, s, e, *_ in vs.segments[v]:
            if a >= 0:
                gt.append({"video": str(v), "label": vs.action_names[a], "start": s / vs.fps,
                           "end": e / vs.fps})
        for n in names:
            sc = smooth_scores(emb[v] @ txt[n], cfg.smooth)
            thr = sc.mean() + cfg.loc_std * sc.std()
            pred += scores_to_segments(sc, vs.fps, thr, str(v), n)
    return thumos_map(gt, pred)


def evaluate(model, cfg: EvalConfig) -> tuple[dict, list[dict]]:
    """(metrics, Moment-DETR prediction lines) of `model` on the config's split."""
    vs = generate_split(cfg.split)
    n, t, k = vs.codes.shape
    freqs = category_frequencies(vs.codes.reshape(n * t, k))
    items = make_queries(vs, freqs, cfg.caption, cfg.heldout_phrasing, cfg.seed)
    emb = video_embeddings(model, vs.frames)
    scores = score_items(model, vs.frames, items, cfg.smooth, emb)
    m = highlight_metrics([{**it, "scores": s} for it, s in zip(items, scores)], tuple(cfg.ks))
    m["n_queries"] = len(items)
    m["retention_r1"] = retention_r1(model, vs.frames, vs.visual, cfg.seed, emb)
    m["localisation"] = localisation_map(model, vs, emb, cfg)
    preds = [qvh_prediction(i, it["text"], f"clip_{it['video']:04d}", s, vs.fps)
             for i, (it, s) in enumerate(zip(items, scores))]
    return m, preds


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("bestshot.eval", __doc__.split("\n\n")[0] if __doc__ else "",
                          default_config=None, run="trained run dir (model.safetensors) or a "
                                                   "CLIP-style checkpoint directory")
    parser.add_argument("--video", default=None, help="a video file to query (any OpenCV "
                                                      "format)")
    parser.add_argument("--query", default=None, help="the text query for --video")
    args, cfg = parse_args(argv, EvalConfig, prog="bestshot.eval", description="",
                           parser=parser, quick={"split.n_videos": 4})
    if args.run is None:
        raise ConfigError("--run DIR is required (a trained run or a CLIP-style checkpoint)")
    if (args.video is None) != (args.query is None):
        raise ConfigError("--video and --query go together")
    model = from_pretrained(args.run)
    if args.video is not None:
        frames, fps = read_video(args.video)  # checked before the run dir is made
        idx, scores = query(frames, args.query, model, cfg.smooth)
        out = make_run_dir(args.out, "bestshot", "eval")
        atomic_write_json(out / "scores.json", {"video": args.video, "query": args.query,
                                                "frame": idx, "time_s": idx / fps,
                                                "scores": scores})
        print(f"frame {idx} ({idx / fps:.2f} s) of {len(scores)}")
        return 0
    m, preds = evaluate(model, cfg)
    out = make_run_dir(args.out, "bestshot", "eval")
    atomic_write_json(out / "metrics.json", m)
    write_jsonl(out / "predictions.jsonl", preds)
    log.info("Hit@1 %.3f, frame-mAP %.3f, retention R@1 %.3f, localisation mAP %.3f; wrote %s",
             m["hit1"], m["frame_map"], m["retention_r1"], m["localisation"]["mAP_mean"], out)
    return 0


if __name__ == "__main__":
    run(main)
