"""Fuzz: bestshot loaders -- THUMOS14 per-class annotation files, ActionFormer JSON,
QVHighlights jsonl, ShotVL weights (safetensors + JSON header) and video files read through
OpenCV for `query`.

A mutated file is either read into valid values (finite, ordered segments; a model whose frame
embeddings are finite unit vectors; uint8 frames) or refused with one line naming the file."""

import json

import numpy as np
from fuzz_harness import Target, assert_clean, fuzz_settings, mutated_files_test
from hypothesis import given
from hypothesis import strategies as st

from bestshot.config import ModelConfig
from bestshot.metrics import load_actionformer_json, load_thumos_annotations, read_qvh_annotations
from bestshot.models import ShotVL, load_model, save_model
from bestshot.retrieval import read_video

TINY = ModelConfig(image_size=16, hidden=16, embed_dim=8, motion_channels=False)


def _seed_thumos(d):
    (d / "Diving_test.txt").write_text("video_test_0000004 1.2 3.4\nvideo_test_0000004 10 12.5\n")
    (d / "Ambiguous_test.txt").write_text("video_test_0000004 5.0 6.0\n")


def _check_segments(out, d):
    segs = out["segments"] + out["ambiguous"] if isinstance(out, dict) else out
    for s in segs:
        assert np.isfinite([s["start"], s["end"]]).all() and 0 <= s["start"] <= s["end"]
        assert isinstance(s["video"], str) and isinstance(s["label"], str)


def _seed_af(d):
    (d / "thumos.json").write_text(json.dumps({"database": {"video_test_0000004": {
        "subset": "Test", "duration": 30.0, "fps": 30.0,
        "annotations": [{"label": "Diving", "label_id": 7, "segment": [1.2, 3.4]}]}}}))


def _seed_qvh(d):
    (d / "a.jsonl").write_text(json.dumps({
        "qid": 1, "query": "a man jumps", "duration": 150, "vid": "abc_60_210",
        "relevant_windows": [[10, 14]], "saliency_scores": [[1, 2, 3]]}) + "\n")


def _check_qvh(rows, d):
    for r in rows:
        assert 0 < r["duration"] < float("inf")
        for s, e in r["relevant_windows"]:
            assert 0 <= s <= e <= r["duration"] + 1e-6


def _seed_model(d):
    import torch

    torch.manual_seed(0)
    save_model(ShotVL(TINY), d / "m.safetensors")


def _check_model(model, d):
    e = model.encode_frames(np.zeros((2, 16, 16, 3), np.uint8))
    assert np.isfinite(e).all() and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)


def _seed_video(d):
    import cv2

    wr = cv2.VideoWriter(str(d / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 8, (16, 16))
    for k in range(4):
        wr.write(np.full((16, 16, 3), 50 * k, np.uint8))
    wr.release()


def _check_video(out, d):
    frames, fps = out
    assert frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[-1] == 3
    assert np.isfinite(fps) and fps > 0


TARGETS = [
    Target("thumos", _seed_thumos, lambda d: load_thumos_annotations(d, "test"),
           _check_segments, ("Diving_test.txt", "Ambiguous_test.txt")),
    Target("actionformer", _seed_af, lambda d: load_actionformer_json(d / "thumos.json"),
           _check_segments, ("thumos.json",)),
    Target("qvh", _seed_qvh, lambda d: read_qvh_annotations(d / "a.jsonl"), _check_qvh,
           ("a.jsonl",)),
    Target("weights", _seed_model, lambda d: load_model(d / "m.safetensors")[0], _check_model,
           ("m.safetensors",)),
    Target("video", _seed_video, lambda d: read_video(d / "clip.avi"), _check_video,
           ("clip.avi",)),
]

test_mutated_files = mutated_files_test(TARGETS, 40, files=2)


@fuzz_settings(40)
@given(seg=st.lists(st.sampled_from([0, -1, 3.5, 1e308, float("nan"), "x", None, True]),
                    min_size=0, max_size=3))
def test_structured_actionformer_segments(seg):
    def seed(d):
        (d / "t.json").write_text(json.dumps({"database": {"v": {"annotations": [
            {"label": "A", "segment": seg}]}}}))

    assert_clean(Target("af-structured", seed, lambda d: load_actionformer_json(d / "t.json"),
                        _check_segments, names=lambda d: ["t.json"]))
