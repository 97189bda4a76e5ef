"""`query` on real video files (written with OpenCV), its bad inputs, temporal smoothing against
a slow reference, the heuristics and furthest-point sampling, captions' held-out templates."""

import numpy as np
import pytest

from bestshot.baselines import middle_scores, min_motion_scores, random_scores
from bestshot.captions import (
    HELDOUT_TEMPLATES,
    TRAIN_TEMPLATES,
    compose,
    furthest_point_sampling,
    paraphrase,
)
from bestshot.retrieval import query, read_video, smooth_scores
from shared.errors import DataError


class Bright:
    """A stand-in dual encoder: a frame's score is its mean brightness (any text)."""

    def encode_frames(self, frames):
        return np.asarray(frames, np.float64).mean(axis=(1, 2, 3))[:, None] / 255.0

    def encode_texts(self, texts):
        return np.ones((len(texts), 1))


def _write_video(path, frames, fourcc="MJPG", fps=10):
    import cv2

    h, w = frames.shape[1:3]
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert wr.isOpened()
    for f in frames:
        wr.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    wr.release()


def _ramp(t=12, peak=7):
    v = np.full(t, 30, np.uint8)
    v[peak] = 220
    return np.broadcast_to(v[:, None, None, None], (t, 32, 32, 3)).copy()


@pytest.mark.parametrize("ext,fourcc", [(".avi", "MJPG"), (".mp4", "mp4v")])
def test_query_reads_video_files(tmp_path, ext, fourcc):
    path = tmp_path / f"clip{ext}"
    _write_video(path, _ramp(), fourcc)
    frames, fps = read_video(path)
    assert frames.shape[0] == 12 and frames.shape[-1] == 3 and fps == pytest.approx(10)
    idx, scores = query(path, "the brightest frame", model=Bright(), smooth=0)
    assert idx == 7 and scores.shape == (12,)
    idx, _ = query(_ramp(), "x", model=Bright(), smooth=0)  # frames in memory
    assert idx == 7


def test_query_bad_inputs_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x01 definitely not a video" * 10)
    with pytest.raises(DataError, match="bad.mp4"):
        query(bad, "a jump", model=Bright())
    with pytest.raises(DataError, match="not found"):
        query(tmp_path / "none.mp4", "a jump", model=Bright())
    with pytest.raises(DataError, match="empty"):
        query(_ramp(), "   ", model=Bright())
    with pytest.raises(DataError, match=r"\(T, H, W, 3\)"):
        query(np.zeros((4, 8, 8)), "a jump", model=Bright())
    with pytest.raises(DataError, match="uint8"):
        query(np.zeros((4, 8, 8, 3)), "a jump", model=Bright())


def test_smoothing_matches_a_slow_moving_average():
    s = np.random.default_rng(0).normal(size=17)
    for w in (0, 1, 3, 20):
        ref = [s[max(0, t - w):t + w + 1].mean() for t in range(len(s))]
        np.testing.assert_allclose(smooth_scores(s, w), ref)


def test_heuristics():
    assert np.argmax(middle_scores(9)) == 4
    r = random_scores(1000, np.random.default_rng(0))
    assert r.shape == (1000,) and 0.4 < r.mean() < 0.6
    f = np.zeros((10, 4, 4, 3), np.uint8)
    f[:4] = np.arange(4)[:, None, None, None] * 60  # moving at first, still from frame 4 on
    s = min_motion_scores(f, smooth=0)
    assert np.argmax(s) >= 4 and s[1] < s[6]


def test_furthest_point_sampling_against_brute_force():
    x = np.random.default_rng(1).normal(size=(40, 3))
    idx = furthest_point_sampling(x, 6, seed=0)
    assert len(set(idx.tolist())) == 6
    for k in range(1, 6):  # each pick maximises the distance to those before it
        d = np.linalg.norm(x[:, None] - x[idx[:k]][None], axis=2).min(1)
        assert d[idx[k]] == pytest.approx(d.max())
    assert len(furthest_point_sampling(x, 100)) == 40


def test_heldout_templates_never_produce_training_phrasings():
    parts = ("a person in a red top", "the squat at its bottom", "Both knees are bent.")
    train = {compose(*parts, t) for t in TRAIN_TEMPLATES}
    held = {compose(*parts, t) for t in HELDOUT_TEMPLATES}
    assert not train & held
    rng = np.random.default_rng(0)
    para = {paraphrase(t, rng) for t in sorted(train) for _ in range(20)}
    assert len(para) > len(train) and not para & held


def test_query_without_a_model_uses_the_shipped_shotvl():
    from shared.motion import MotionConfig, generate_clip

    clip = generate_clip(MotionConfig(image_size=64, fps=8, clip_seconds=3.0), 1, ["jump"])
    idx, scores = query(clip.frames, "a person in front of a wall, the jump at its airborne. "
                                     "Both feet are off the ground.")
    assert 0 <= idx < len(clip.frames) and scores.shape == (len(clip.frames),)
    assert np.isfinite(scores).all() and np.abs(scores).max() <= 1.0 + 1e-6
