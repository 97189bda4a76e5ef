"""Streams from the human-motion generator through the codec: shapes, labels, the
early-separable flags, disjoint split seeds, the out-of-family settings; and the train recipe
end to end on a tiny setting (run dir, thresholds in the model file, resume, `stream`)."""

import dataclasses
import json

import numpy as np
import pytest

from edgeoar import stream
from edgeoar.config import StreamConfig, TrainConfig
from edgeoar.data import (
    build_split,
    check_stream,
    early_separable,
    is_time_reversal,
    motion_config,
    onset_index,
    render_clip,
    render_truth,
    shared_prefix_phase,
    temporal_only,
)
from edgeoar.eval import main as eval_main
from edgeoar.train import main as train_main
from shared.errors import ConfigError
from shared.motion import ACTIONS

TINY = StreamConfig(image_size=32, clip_frames=8, actions=["squat", "sit_down"],
                    train_per_class=2, val_per_class=1, test_per_class=1, ood_per_class=1)


def test_split_arrays_and_flags():
    cfg = TrainConfig(stream=TINY)
    d = build_split(cfg, "val")
    assert d["rgb"].shape == (2, 8, 32, 32, 3) and d["rgb"].dtype == np.uint8
    assert d["mv"].shape == (2, 8, 2, 8, 8) and d["part"].shape == (2, 8, 1, 8, 8)
    assert d["label"].tolist() == [0, 1] and d["early_gen"].tolist() == [True, False]
    assert d["early"].tolist() == [True, True]  # sit_down is no temporal-only class
    assert np.all(d["mv"][:, 0] == 0)  # the first frame is an I-frame
    assert early_separable(["sit_down", "stand_up", "jump"]).tolist() == [False, False, True]
    t = build_split(cfg, "test")
    assert not np.array_equal(t["rgb"], d["rgb"])  # disjoint seeds


def test_out_of_family_settings_lie_outside_training():
    inf, ood = motion_config(StreamConfig(), False), motion_config(StreamConfig(), True)
    assert ood.camera_yaw_deg[0] > inf.camera_yaw_deg[1]
    assert ood.camera_distance[0] >= inf.camera_distance[1]
    assert not set(ood.background_families) & set(inf.background_families)
    assert ood.n_distractors[0] > inf.n_distractors[1]
    assert inf.fps == 15 and inf.n_frames == 16 and inf.segments == 1
    with pytest.raises(ConfigError, match="stream.ood_motion.*camera_yw"):
        check_stream(dataclasses.replace(StreamConfig(), ood_motion={"camera_yw": [0, 1]}))


def test_train_recipe_end_to_end_and_resume(tmp_path):
    out = tmp_path / "run"
    args = ["--out", str(out), "--set", "stream.image_size=32", "--set", "stream.clip_frames=8",
            "--set", "stream.actions=[squat, sit_down]", "--set", "stream.train_per_class=2",
            "--set", "stream.val_per_class=1", "--set", "rounds=1", "--set", "main_epochs=1",
            "--set", "gate_epochs=1", "--set", "model.width=8", "--set", "model.feat_dim=8"]
    assert train_main(args) == 0
    for f in ("config.yaml", "metrics.json", "model.safetensors", "ckpt.pt"):
        assert (out / f).is_file(), f
    m = json.loads((out / "metrics.json").read_text())
    assert len(m["val_acc_per_step"]) == 8 and set(m["exit"]) == {"tau_conf", "tau_mc"}
    assert train_main(args + ["--set", "rounds=2"]) == 0  # resumes after epoch 2 of 4
    m2 = json.loads((out / "metrics.json").read_text())
    assert m2["phase"] == ["main", "gate", "main", "gate"]
    video = tmp_path / "clip.mp4"
    from edgeoar.codec import encode_h264

    video.write_bytes(encode_h264(build_split(TrainConfig(stream=TINY), "test")["rgb"][0],
                                  15.0))
    frames = list(stream(video, out))
    assert len(frames) == 8 and frames[-1][3] and frames[0][1] in ("squat", "sit_down")
    ev = tmp_path / "eval"
    assert eval_main(["--run", str(out), "--out", str(ev)]) == 0
    m = json.loads((ev / "metrics.json").read_text())
    for split in ("test", "ood"):
        assert len(m[split]["acc_per_step"]) == 8
        assert 1 <= m[split]["iie_mc"]["frames"] <= 8 and m[split]["full_clip"]["frac"] == 1.0


def _first_moved(j3, thr):
    """Slow reference of `onset_index`: the first frame with a joint >= thr from frame 0."""
    for t in range(len(j3)):
        for k in range(j3.shape[1]):
            if np.sqrt(((j3[t, k] - j3[0, k]) ** 2).sum()) >= thr:
                return t
    return len(j3)


@pytest.mark.parametrize("action,seed,ood", [("squat", 0, False), ("stand_up", 3, False),
                                             ("wave", 1, True), ("arm_circle_ccw", 2, False)])
def test_clips_are_trimmed_to_the_action_onset(action, seed, ood):
    """The clip starts at the last frame before some joint has moved stream.onset_m from the
    generator's first frame: the generator's frames shifted by that many, the last one held."""
    sc = StreamConfig(image_size=32)
    raw = render_truth(dataclasses.replace(sc, onset_m=0.0), action, seed, ood)
    cut = render_truth(sc, action, seed, ood)
    first = _first_moved(raw["joints3d"], sc.onset_m)
    assert raw["start"] == 0 and cut["start"] == max(first - 1, 0) == onset_index(
        raw["joints3d"], sc.onset_m) - 1
    s, T = cut["start"], sc.clip_frames
    assert np.array_equal(cut["frames"][: T - s], raw["frames"][s:])
    assert all(np.array_equal(f, raw["frames"][-1]) for f in cut["frames"][T - s:])
    assert np.array_equal(cut["raw_joints3d"], raw["joints3d"])
    # nothing visible moves before the clip's second frame; it does at the clip's second frame
    d = np.linalg.norm(cut["joints3d"] - raw["joints3d"][:1], axis=-1).max(-1)
    assert d[0] < sc.onset_m <= d[1]
    assert np.array_equal(cut["frames"], render_clip(sc, action, seed, ood))


def test_temporal_only_pairs_have_identical_first_frames_by_construction():
    """Of the generator's time-order pairs only the arm circles start identically: rendered
    with one seed and trimmed to the onset, their first frames are the same pixels, then they
    part; sit_down (standing,
    chair) and stand_up (seated) differ from frame 1, so they are no temporal-only pair."""
    names = list(ACTIONS)
    flags = dict(zip(names, temporal_only(names)))
    assert {a for a, f in flags.items() if f} == {"arm_circle_cw", "arm_circle_ccw"}
    assert is_time_reversal("sit_down", "stand_up") and shared_prefix_phase(
        "sit_down", "stand_up") == 0.0
    assert is_time_reversal("arm_circle_cw", "arm_circle_ccw")
    assert 0.05 <= shared_prefix_phase("arm_circle_cw", "arm_circle_ccw") < 0.2
    assert not is_time_reversal("squat", "bow")  # same start, different actions
    sc = StreamConfig()
    for seed in (0, 1, 2):
        cw, ccw = render_clip(sc, "arm_circle_cw", seed), render_clip(sc, "arm_circle_ccw", seed)
        assert np.array_equal(cw[:2], ccw[:2])
        assert not np.array_equal(cw[4:10], ccw[4:10])
        sit, stand = render_clip(sc, "sit_down", seed), render_clip(sc, "stand_up", seed)
        assert np.abs(sit[0].astype(int) - stand[0]).max() > 100
