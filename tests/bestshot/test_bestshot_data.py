"""Generated splits: posecodes equal the generator's true joint angles, action combinations
respect the held-out pairs, queries' windows hold their highlight frame, captions per mode."""

import numpy as np
import pytest

from bestshot.captions import HELDOUT_TEMPLATES
from bestshot.config import CaptionConfig, VideoConfig
from bestshot.data import caption_frames, clip_actions, colour_name, generate_split, make_queries
from bestshot.posecodes import POSECODES, category_frequencies, posecode_values
from shared.errors import DataError

TINY = VideoConfig(n_videos=3, image_size=32, fps=6, clip_seconds=5.0, segments=2, seed=5)


@pytest.fixture(scope="module")
def vs():
    return generate_split(TINY)


def test_posecode_angles_equal_the_generators_joint_angles_exactly():
    from shared.motion import JOINT_INDEX, JOINTS, MotionConfig, generate_clip

    clip = generate_clip(MotionConfig(image_size=32, fps=10, clip_seconds=3.0), 0,
                         actions=["squat"])
    v = posecode_values(clip.joints3d, JOINTS)
    names = [s.name for s in POSECODES]
    for side in ("left", "right"):
        # knees and elbows rotate about one axis: the posecode angle is 180 - |flexion|
        for a, b, c in (("hip", "knee", "ankle"), ("shoulder", "elbow", "wrist")):
            k = names.index(f"angle:{side}_{a}-{side}_{b}-{side}_{c}")
            flex = np.degrees(np.abs(clip.angles[:, JOINT_INDEX[f"{side}_{b}"], 0]))
            np.testing.assert_allclose(v[:, k], 180.0 - flex, atol=1e-3)  # float32 joints


def test_split_shapes_and_ground_truth(vs):
    n, t = vs.frames.shape[:2]
    assert vs.frames.shape == (3, t, 32, 32, 3) and t == 30
    assert vs.joints.shape == (3, t, len(vs.names), 3) and vs.codes.shape[:2] == (3, t)
    for v in range(n):
        for a, s, e, apex, hs, he in vs.segments[v]:
            assert 0 <= s <= hs <= apex <= he < e <= t
            assert (vs.action[v, s:e] == a).all()
        assert vs.visual[v].startswith("a ") and "in front of" in vs.visual[v]


def test_held_out_action_pairs():
    pool = ["squat", "jump", "wave", "punch"]
    cfg = VideoConfig(segments=2, heldout_pairs=["squat+wave"], combos="exclude_heldout")
    for i in range(50):
        seq = clip_actions(cfg, i, pool)
        assert sorted(seq) != ["squat", "wave"]
    only = VideoConfig(segments=2, heldout_pairs=["squat+wave"], combos="only_heldout")
    assert all(sorted(clip_actions(only, i, pool)) == ["squat", "wave"] for i in range(10))
    with pytest.raises(DataError, match="unknown action 'moonwalk'"):
        generate_split(VideoConfig(n_videos=1, actions=["moonwalk"]))


def test_queries_hold_their_highlight_frame(vs):
    cc = CaptionConfig()
    n, t, k = vs.codes.shape
    freqs = category_frequencies(vs.codes.reshape(n * t, k))
    items = make_queries(vs, freqs, cc, heldout=False, seed=0)
    assert {it["kind"] for it in items} == {"apex", "stage", "pose"}
    for it in items:
        lo, hi = it["window"]
        assert lo <= it["apex"] <= hi
        assert vs.visual[it["video"]][2:] in it["text"]  # names the visual content
        np.testing.assert_array_equal(it["codes"], vs.codes[it["video"], it["apex"]])
    held = make_queries(vs, freqs, cc, heldout=True, seed=0)
    starts = tuple(tpl.split("{")[0] for tpl in HELDOUT_TEMPLATES)
    assert all(it["text"].startswith(starts) for it in held)


def test_captions_per_mode(vs):
    cc = CaptionConfig(paraphrases=2)
    base, _ = caption_frames(vs, cc, "base", 0)
    assert base.visual_only.all() and len(set(base.keys[0])) == 1
    shot, freqs = caption_frames(vs, cc, "shotvl", 0)
    clean = [shot.texts[i] for i in shot.caption_ids[0, :, 0]]
    assert all(c.startswith(vs.visual[0][:1].upper() + vs.visual[0][1:]) for c in clean)
    assert len(set(clean)) > 3  # frames of one clip get different pose/stage text
    np.testing.assert_array_equal(shot.caption_keys[shot.caption_ids[..., 0]], shot.keys)


def test_colour_names():
    assert colour_name((250, 20, 20)) == "red" and colour_name((20, 40, 230)) == "blue"
    assert colour_name((10, 10, 10)) == "black" and colour_name((240, 240, 240)) == "white"


def test_furthest_point_mask_keeps_distinct_poses(vs):
    from bestshot.data import fps_mask

    m = fps_mask(vs, 10, seed=0)
    assert m.shape == vs.frames.shape[:2] and m.sum() == 10
    rel = (vs.joints - vs.joints[:, :, :1]).reshape(-1, vs.joints.shape[2] * 3)[m.reshape(-1)]
    d = np.linalg.norm(rel[:, None] - rel[None], axis=2) + np.eye(10) * 1e9
    assert d.min() > 0  # no pose picked twice
