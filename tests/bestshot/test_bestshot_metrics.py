"""Highlight metrics, THUMOS14 mAP and QVHighlights jsonl against hand-computed cases."""

import json
import math

import numpy as np
import pytest

from bestshot.metrics import (
    detection_ap,
    frame_ap,
    highlight_metrics,
    load_actionformer_json,
    load_thumos_annotations,
    qvh_prediction,
    read_jsonl,
    read_qvh_annotations,
    scores_to_segments,
    segment_iou,
    thumos_map,
    write_jsonl,
)
from shared.errors import DataError


def _seg(v, s, e, label="A", score=None):
    d = {"video": v, "label": label, "start": s, "end": e}
    if score is not None:
        d["score"] = score
    return d


def test_frame_ap_hand_case():
    # ranks: FP, TP (precision 1/2), FP, TP (2/4) -> AP = (0.5 + 0.5) / 2
    assert frame_ap(np.array([0.9, 0.8, 0.7, 0.6]), np.array([0, 1, 0, 1], bool)) == 0.5
    assert frame_ap(np.array([0.1, 0.9]), np.array([0, 1], bool)) == 1.0
    assert math.isnan(frame_ap(np.zeros(3), np.zeros(3, bool)))


def test_highlight_metrics_hand_case():
    items = [{"scores": [0, 0, 1, 0, 0], "window": (1, 3), "apex": 2},   # hit, d=0
             {"scores": [1, 0, 0, 0, 0], "window": (3, 4), "apex": 4}]   # miss, d=4
    m = highlight_metrics(items, ks=(1, 4))
    assert m["hit1"] == 0.5 and m["hit1_pm1"] == 0.5 and m["hit1_pm4"] == 1.0
    assert m["dframe"] == 2.0
    # item 1: positives 1-3; ranking 2 (TP), then ties in frame order 0 (FP), 1, 3 (TP), 4
    # item 2: positives 3, 4; ranking 0 (FP), then 1, 2 (FP), 3, 4 (TP)
    ap1, ap2 = (1 + 2 / 3 + 3 / 4) / 3, (1 / 4 + 2 / 5) / 2
    assert m["frame_map"] == pytest.approx((ap1 + ap2) / 2)


def test_segment_iou():
    np.testing.assert_allclose(segment_iou((0, 10), np.array([[0, 6], [5, 15], [20, 30]])),
                               [0.6, 5 / 15, 0.0])


def test_detection_ap_hand_cases():
    gt = [_seg("v1", 0, 10), _seg("v1", 20, 30)]
    # TP, TP, duplicate (FP): precision 1, 1, 2/3; recall 0.5, 1, 1 -> AP 1
    pred = [_seg("v1", 0, 10, score=0.9), _seg("v1", 21, 30, score=0.8),
            _seg("v1", 0, 10, score=0.7)]
    assert detection_ap(gt, pred, 0.5) == 1.0
    # FP first, then one TP: recall 0.5 at precision 0.5 -> AP 0.25
    pred = [_seg("v1", 40, 50, score=0.95), _seg("v1", 0, 10, score=0.9)]
    assert detection_ap(gt, pred, 0.5) == 0.25
    # the wrong video never matches
    assert detection_ap(gt, [_seg("v2", 0, 10, score=1.0)], 0.3) == 0.0


def test_thumos_map_over_tious_and_classes():
    gt = [_seg("v1", 0, 10, "A"), _seg("v1", 0, 10, "B")]
    pred = [_seg("v1", 0, 6, "A", 1.0), _seg("v1", 0, 10, "B", 1.0)]  # A: tIoU 0.6
    m = thumos_map(gt, pred)
    assert m["mAP@0.3"] == 1.0 and m["mAP@0.6"] == 1.0 and m["mAP@0.7"] == 0.5
    assert m["mAP_mean"] == pytest.approx(0.9)


def test_scores_to_segments():
    segs = scores_to_segments(np.array([0, 1, 1, 0, 0.5, 0.7]), fps=2.0, threshold=0.5,
                              video="v", label="A")
    assert [(s["start"], s["end"], s["score"]) for s in segs] == [(0.5, 1.5, 1.0),
                                                                   (2.0, 3.0, 0.7)]


def test_thumos_original_files_and_actionformer_json(tmp_path):
    (tmp_path / "Diving_test.txt").write_text("video_test_0000004 1.2 3.4\n"
                                              "video_test_0000004  10.0 12.5 \n")
    (tmp_path / "Ambiguous_test.txt").write_text("video_test_0000004 5.0 6.0\n")
    (tmp_path / "Diving_val.txt").write_text("video_validation_0000051 1 2\n")
    a = load_thumos_annotations(tmp_path, "test")
    assert a["segments"] == [_seg("video_test_0000004", 1.2, 3.4, "Diving"),
                             _seg("video_test_0000004", 10.0, 12.5, "Diving")]
    assert a["ambiguous"] == [_seg("video_test_0000004", 5.0, 6.0, "Ambiguous")]
    js = {"database": {"video_test_0000004": {
        "subset": "Test", "duration": 30.0, "fps": 30.0,
        "annotations": [{"label": "Diving", "label_id": 7, "segment": [1.2, 3.4]},
                        {"label": "Diving", "label_id": 7, "segment": [10.0, 12.5]}]},
        "video_validation_0000051": {"subset": "Validation", "annotations": [
            {"label": "Diving", "segment": [1, 2]}]}}}
    (tmp_path / "thumos.json").write_text(json.dumps(js))
    assert load_actionformer_json(tmp_path / "thumos.json", "test") == a["segments"]
    assert len(load_actionformer_json(tmp_path / "thumos.json")) == 3
    (tmp_path / "Bad_test.txt").write_text("video 3 1\n")
    with pytest.raises(DataError, match=r"Bad_test.txt:1: bad segment"):
        load_thumos_annotations(tmp_path, "test")


def test_qvh_jsonl_round_trips(tmp_path):
    rows = [{"qid": 1, "query": "a man jumps", "duration": 150, "vid": "abc_60_210",
             "relevant_windows": [[10, 14], [30.5, 40]], "relevant_clip_ids": [5, 6],
             "saliency_scores": [[1, 2, 3], [4, 4, 4]]}]
    write_jsonl(tmp_path / "a.jsonl", rows)
    assert read_qvh_annotations(tmp_path / "a.jsonl") == rows
    scores = np.array([0, 0, 0.2, 0.9, 0.1, 0.3, 0.0, 0.4])  # 4 fps, 2-s clips = 8 frames
    pred = qvh_prediction(7, "q", "v", scores, fps=4.0, clip_s=1.0, top=2, window_s=1.0)
    assert pred["pred_saliency_scores"] == [0.9, 0.4]
    assert pred["pred_relevant_windows"][0] == [0.375, 1.375, 0.9]  # around frame 3
    write_jsonl(tmp_path / "p.jsonl", [pred])
    assert read_jsonl(tmp_path / "p.jsonl") == [pred]
    (tmp_path / "bad.jsonl").write_text('{"qid": 1, "query": "q", "vid": "v", "duration": 10,'
                                        ' "relevant_windows": [[5, 20]]}\n')
    with pytest.raises(DataError, match="outside"):
        read_qvh_annotations(tmp_path / "bad.jsonl")
