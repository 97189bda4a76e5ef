"""Highlight-frame metrics (BestShot), THUMOS14 temporal-localisation mAP and the QVHighlights /
Moment-DETR jsonl format.

BestShot (the paper's exact definitions were not available; reconstructed):
  Hit@1-in-window: the argmax frame lies inside the annotated duration window [start, end];
  Hit@1+-k: |argmax - highlight frame| <= k; mean |delta frame|; frame-AP: frames ranked by
  score, the frames inside the window are the positives.

THUMOS14: ActivityNet-style detection AP per class (predictions by descending score, each
matched to the not-yet-matched ground truth of highest tIoU >= threshold; precision made
monotone before integrating over recall), mAP over classes at tIoU 0.3:0.1:0.7 and their mean.
Loaders read the original per-class annotation files (`<Class>_val.txt`, `<Class>_test.txt`,
lines `video start end`; `Ambiguous_*` segments kept apart) and ActionFormer's JSON
(`{"database": {vid: {"subset", "duration", "fps", "annotations": [{"label", "segment"}]}}}`).

QVHighlights: annotation lines `{"qid", "query", "duration", "vid", "relevant_windows", ...}`
and prediction lines `{"qid", "query", "vid", "pred_relevant_windows": [[s, e, score]],
"pred_saliency_scores": [one per 2-s clip]}`, read and written as jsonl.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from shared.errors import DataError
from shared.io import atomic_write_text
from shared.validate import parse_json, read_json_file, read_text

__all__ = ["hit_in_window", "hit_within", "frame_ap", "highlight_metrics", "segment_iou",
           "interpolated_ap", "detection_ap", "thumos_map", "TIOUS", "scores_to_segments",
           "load_thumos_annotations", "load_actionformer_json", "read_jsonl", "write_jsonl",
           "read_qvh_annotations", "qvh_prediction"]

TIOUS = (0.3, 0.4, 0.5, 0.6, 0.7)


# ------------------------------------------------------------------------------- BestShot

def hit_in_window(pred: int, window: tuple[int, int]) -> bool:
    """The predicted frame lies in the inclusive window [start, end]."""
    return window[0] <= pred <= window[1]


def hit_within(pred: int, apex: int, k: int) -> bool:
    return abs(pred - apex) <= k


def frame_ap(scores: np.ndarray, positive: np.ndarray) -> float:
    """Average precision of frames ranked by descending score (ties: earlier frame first);
    `positive` (T,) bool marks the frames inside the window. NaN without positives."""
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positive, bool)
    if s.shape != pos.shape or s.ndim != 1:
        raise DataError(f"frame_ap: scores {s.shape} and positive {pos.shape} must be equal 1-D")
    if not pos.any():
        return math.nan
    order = np.argsort(-s, kind="stable")
    hits = pos[order]
    prec = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(prec[hits].sum() / hits.sum())


def highlight_metrics(items: Sequence[dict], ks: Sequence[int] = (1, 3)) -> dict:
    """Mean metrics over items {"scores": (T,), "window": (s, e), "apex": int}: hit1 (in
    window), hit1_pm{k}, dframe (mean |argmax - apex|), frame_map."""
    if not items:
        raise DataError("highlight_metrics: no items")
    out: dict[str, list] = {"hit1": [], "dframe": [], "frame_map": []}
    for k in ks:
        out[f"hit1_pm{k}"] = []
    for it in items:
        s = np.asarray(it["scores"], dtype=np.float64)
        pred = int(np.argmax(s))
        lo, hi = int(it["window"][0]), int(it["window"][1])
        out["hit1"].append(hit_in_window(pred, (lo, hi)))
        for k in ks:
            out[f"hit1_pm{k}"].append(hit_within(pred, int(it["apex"]), k))
        out["dframe"].append(abs(pred - int(it["apex"])))
        pos = np.zeros(len(s), bool)
        pos[max(lo, 0):hi + 1] = True
        out["frame_map"].append(frame_ap(s, pos))
    return {k: float(np.nanmean(np.asarray(v, dtype=np.float64))) for k, v in out.items()}


# ------------------------------------------------------------------------------- THUMOS14

def segment_iou(seg: Sequence[float], segs: np.ndarray) -> np.ndarray:
    """tIoU of one [s, e] segment with each row of (M, 2) segments."""
    segs = np.asarray(segs, dtype=np.float64).reshape(-1, 2)
    inter = np.clip(np.minimum(seg[1], segs[:, 1]) - np.maximum(seg[0], segs[:, 0]), 0, None)
    union = (seg[1] - seg[0]) + (segs[:, 1] - segs[:, 0]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def interpolated_ap(prec: np.ndarray, rec: np.ndarray) -> float:
    """VOC/ActivityNet AP: precision made non-increasing, summed over the recall steps."""
    p = np.concatenate([[0.0], prec, [0.0]])
    r = np.concatenate([[0.0], rec, [1.0]])
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    idx = np.where(r[1:] != r[:-1])[0] + 1
    return float(np.sum((r[idx] - r[idx - 1]) * p[idx]))


def detection_ap(gt: Sequence[dict], pred: Sequence[dict], tiou: float) -> float:
    """AP of one class: gt [{"video", "start", "end"}], pred [... , "score"]. NaN without gt."""
    if not gt:
        return math.nan
    if not pred:
        return 0.0
    by_vid: dict[str, list[int]] = {}
    for i, g in enumerate(gt):
        by_vid.setdefault(g["video"], []).append(i)
    used = np.zeros(len(gt), bool)
    order = sorted(range(len(pred)), key=lambda i: -pred[i]["score"])
    tp = np.zeros(len(pred))
    for rank, i in enumerate(order):
        p = pred[i]
        cand = by_vid.get(p["video"], [])
        if not cand:
            continue
        ious = segment_iou((p["start"], p["end"]),
                           np.array([[gt[c]["start"], gt[c]["end"]] for c in cand]))
        for j in np.argsort(-ious, kind="stable"):
            if ious[j] < tiou:
                break
            if used[cand[j]]:
                continue
            used[cand[j]] = True
            tp[rank] = 1
            break
    ctp = np.cumsum(tp)
    prec = ctp / np.arange(1, len(tp) + 1)
    rec = ctp / len(gt)
    return interpolated_ap(prec, rec)


def thumos_map(gt: Sequence[dict], pred: Sequence[dict],
               tious: Sequence[float] = TIOUS) -> dict:
    """{"mAP@0.3": ..., ..., "mAP_mean": ...}: per tIoU the mean AP over the classes that have
    ground truth (items carry "label")."""
    labels = sorted({g["label"] for g in gt})
    if not labels:
        raise DataError("thumos_map: no ground-truth segments")
    out = {}
    for t in tious:
        aps = [detection_ap([g for g in gt if g["label"] == c],
                            [p for p in pred if p["label"] == c], t) for c in labels]
        out[f"mAP@{t:.1f}"] = float(np.nanmean(aps))
    out["mAP_mean"] = float(np.mean([out[f"mAP@{t:.1f}"] for t in tious]))
    return out


def scores_to_segments(scores: np.ndarray, fps: float, threshold: float, video: str,
                       label: str) -> list[dict]:
    """Per-frame scores -> segments: runs of consecutive frames with score >= threshold, each
    scored by its maximum; times in seconds ([first frame, last frame + 1] / fps)."""
    s = np.asarray(scores, dtype=np.float64)
    above = np.concatenate([[False], s >= threshold, [False]])
    edges = np.flatnonzero(above[1:] != above[:-1])
    return [{"video": video, "label": label, "start": a / fps, "end": b / fps,
             "score": float(s[a:b].max())} for a, b in zip(edges[::2], edges[1::2])]


_LINE = re.compile(r"^\s*(\S+)\s+(\S+)\s+(\S+)\s*$")


def load_thumos_annotations(folder: str | Path, split: str = "test") -> dict[str, list[dict]]:
    """Original THUMOS14 temporal annotations: every `<Class>_<split>.txt` in `folder`.
    -> {"segments": [{"video", "label", "start", "end"}], "ambiguous": [...]} (the
    `Ambiguous_<split>.txt` segments, to be ignored by an evaluator)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"THUMOS annotation folder not found: {folder}")
    files = sorted(folder.glob(f"*_{split}.txt"))
    if not files:
        raise DataError(f"{folder}: no '*_{split}.txt' annotation files")
    seg, amb = [], []
    for f in files:
        label = f.name[: -len(f"_{split}.txt")]
        for n, line in enumerate(read_text(f).splitlines(), 1):
            if not line.strip():
                continue
            m = _LINE.match(line)
            if not m:
                raise DataError(f"{f}:{n}: expected 'video start end', got {line[:60]!r}")
            try:
                s, e = float(m.group(2)), float(m.group(3))
            except ValueError:
                raise DataError(f"{f}:{n}: start/end are not numbers") from None
            if not (math.isfinite(s) and math.isfinite(e)) or s < 0 or e < s:
                raise DataError(f"{f}:{n}: bad segment [{s}, {e}]")
            item = {"video": m.group(1), "label": label, "start": s, "end": e}
            (amb if label == "Ambiguous" else seg).append(item)
    return {"segments": seg, "ambiguous": amb}


def load_actionformer_json(path: str | Path, subset: str | None = None) -> list[dict]:
    """ActionFormer-style JSON -> [{"video", "label", "start", "end"}] (subset: e.g.
    'validation' / 'test'; None keeps all)."""
    data = read_json_file(path)
    db = data.get("database") if isinstance(data, dict) else None
    if not isinstance(db, dict):
        raise DataError(f"{path}: no 'database' mapping")
    out = []
    for vid, v in db.items():
        if not isinstance(v, dict):
            raise DataError(f"{path}: database['{vid}'] is not a mapping")
        if subset is not None and str(v.get("subset", "")).lower() != subset.lower():
            continue
        anns = v.get("annotations", [])
        if not isinstance(anns, list):
            raise DataError(f"{path}: database['{vid}'].annotations is not a list")
        for i, a in enumerate(anns):
            where = f"{path}: database['{vid}'].annotations[{i}]"
            if not isinstance(a, dict) or not isinstance(a.get("label"), str):
                raise DataError(f"{where}: needs a string 'label'")
            seg = a.get("segment")
            s, e = _pair(seg, where + ".segment")
            out.append({"video": str(vid), "label": a["label"], "start": s, "end": e})
    return out


def _pair(seg, where: str) -> tuple[float, float]:
    if not isinstance(seg, list) or len(seg) != 2 or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in seg):
        raise DataError(f"{where}: expected [start, end] numbers, got {str(seg)[:40]}")
    s, e = float(seg[0]), float(seg[1])
    if not (math.isfinite(s) and math.isfinite(e)) or e < s:
        raise DataError(f"{where}: bad segment [{s}, {e}]")
    return s, e


# ------------------------------------------------------------------------------- QVHighlights

def read_jsonl(path: str | Path) -> list[dict]:
    """One JSON object per non-empty line; a bad line is a DataError naming file and line."""
    rows = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        obj = parse_json(line, f"{path}:{n}")
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{n}: expected a JSON object")
        rows.append(obj)
    return rows


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows))


def read_qvh_annotations(path: str | Path) -> list[dict]:
    """QVHighlights annotation lines, checked: qid, query (str), vid (str), duration > 0,
    relevant_windows [[s, e], ...] inside [0, duration]."""
    rows = read_jsonl(path)
    for n, r in enumerate(rows, 1):
        where = f"{path}: line {n}"
        for k, t in (("query", str), ("vid", str)):
            if not isinstance(r.get(k), t):
                raise DataError(f"{where}: '{k}' must be a string")
        if "qid" not in r:
            raise DataError(f"{where}: missing 'qid'")
        d = r.get("duration")
        if not isinstance(d, (int, float)) or isinstance(d, bool) or not 0 < d < math.inf:
            raise DataError(f"{where}: 'duration' must be a positive number")
        wins = r.get("relevant_windows", [])
        if not isinstance(wins, list):
            raise DataError(f"{where}: 'relevant_windows' must be a list")
        for w in wins:
            s, e = _pair(w, f"{where}: relevant_windows")
            if s < 0 or e > d + 1e-6:
                raise DataError(f"{where}: window [{s}, {e}] outside [0, {d}]")
    return rows


def qvh_prediction(qid, query: str, vid: str, scores: np.ndarray, fps: float,
                   clip_s: float = 2.0, top: int = 5, window_s: float = 2.0) -> dict:
    """A Moment-DETR prediction line from per-frame scores: saliency = max score per `clip_s`
    clip; windows = `window_s` long around the `top` best clips' peak frames, best first."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or not len(s) or not np.isfinite(s).all():
        raise DataError("qvh_prediction: scores must be a non-empty finite 1-D array")
    per = max(int(round(clip_s * fps)), 1)
    sal = [float(s[i:i + per].max()) for i in range(0, len(s), per)]
    dur = len(s) / fps
    wins = []
    for c in np.argsort(-np.asarray(sal), kind="stable")[:top]:
        peak = c * per + int(np.argmax(s[c * per:(c + 1) * per]))
        mid = (peak + 0.5) / fps
        a = min(max(mid - window_s / 2, 0.0), max(dur - window_s, 0.0))
        wins.append([round(a, 3), round(min(a + window_s, dur), 3), sal[c]])
    return {"qid": qid, "query": query, "vid": vid, "pred_relevant_windows": wins,
            "pred_saliency_scores": sal}
