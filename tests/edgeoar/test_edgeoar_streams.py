"""Streams from the human-motion generator through the codec: shapes, labels, the
early-separable flags, disjoint split seeds, the out-of-family settings; and the train recipe
end to end on a tiny setting (run dir, thresholds in the model file, resume, `stream`)."""

import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeoar import data, stream
from edgeoar.config import StreamConfig, TrainConfig
from edgeoar.data import (
    build_split,
    check_stream,
    class_names,
    clip_seed,
    early_separable,
    is_time_reversal,
    load_split,
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
from shared.motion import ACTIONS, generate_clip

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


def test_a_larger_validation_split_extends_it_and_moves_no_other_split(monkeypatch):
    """Clips are drawn clip index first, class second, from seeds that do not depend on the
    split sizes: 2 validation clips a class start with the 1-a-class split, and the cached
    train / test / OOD splits are the same entries whatever the validation size."""
    one, two = TrainConfig(stream=TINY), TrainConfig(stream=dataclasses.replace(TINY,
                                                                                 val_per_class=2))
    v1, v2 = build_split(one, "val"), build_split(two, "val")
    assert v2["label"].tolist() == [0, 1, 0, 1]
    for k in ("rgb", "mv", "part", "label"):
        assert np.array_equal(v2[k][:2], v1[k])
    assert not np.array_equal(v2["rgb"][2:], v1["rgb"])
    keys = []
    monkeypatch.setattr(data, "cached_arrays", lambda name, key, gen, version: keys.append(key)
                        or {"label": np.zeros(1, np.int64)})
    for split in ("train", "test", "ood", "val"):
        load_split(one, split), load_split(two, split)
        assert (keys[-2] == keys[-1]) == (split != "val"), split


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
    generator's first frame: the generator's frames shifted by that many, then the
    generator's continuation of the scene (rendered, not the last frame held)."""
    sc = StreamConfig(image_size=32)
    raw = render_truth(dataclasses.replace(sc, onset_m=0.0), action, seed, ood)
    cut = render_truth(sc, action, seed, ood)
    first = _first_moved(raw["joints3d"], sc.onset_m)
    assert raw["start"] == 0 and cut["start"] == max(first - 1, 0) == onset_index(
        raw["joints3d"], sc.onset_m) - 1
    s, T = cut["start"], sc.clip_frames
    assert s > 0  # these clips are cut, so they have a tail to check
    assert np.array_equal(cut["frames"][: T - s], raw["frames"][s:])
    # the tail is the scene simulated on (reference: the generator asked for s more frames)
    more = generate_clip(motion_config(sc, ood), seed, [action], tail_frames=s)
    assert np.array_equal(cut["frames"][T - s:], more.frames[T:])
    assert np.array_equal(cut["joints3d"], more.joints3d[s:])
    assert not any(np.array_equal(f, raw["frames"][-1]) for f in cut["frames"][T - s:])
    assert np.array_equal(cut["raw_joints3d"], raw["joints3d"])
    # nothing visible moves before the clip's second frame; it does at the clip's second frame
    d = np.linalg.norm(cut["joints3d"] - raw["joints3d"][:1], axis=-1).max(-1)
    assert d[0] < sc.onset_m <= d[1]
    assert np.array_equal(cut["frames"], render_clip(sc, action, seed, ood))


@pytest.mark.parametrize("ood", [False, True])
def test_generator_continuation_extends_the_clip_bit_for_bit(ood):
    """`generate_clip(..., tail_frames=k)`: the plain clip's frames and ground truth are its
    first frames unchanged (timeline, camera path and random draws are the plain clip's), the
    k more frames continue the scene (the camera keeps moving: projected joints change)."""
    cfg = motion_config(StreamConfig(image_size=32), ood)
    for seed, action in [(0, "throw"), (5, "sit_down"), (9, "jumping_jack")]:
        plain = generate_clip(cfg, seed, [action])
        assert np.array_equal(plain.frames, generate_clip(cfg, seed, [action], 0).frames)
        more = generate_clip(cfg, seed, [action], tail_frames=6)
        T = len(plain)
        assert len(more) == T + 6 and more.segments == plain.segments
        for k in ("frames", "joints3d", "joints2d", "visible", "phase", "action_index"):
            assert np.array_equal(getattr(more, k)[:T], getattr(plain, k)), k
        assert np.all(more.action_index[T:] == -1)  # the end hold goes on
        assert np.all(np.abs(np.diff(more.joints2d[T - 1:], axis=0)).max((1, 2)) > 0)
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="tail_frames"):
            generate_clip(cfg, 0, ["squat"], tail_frames=bad)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(k=st.integers(0, 13), seed=st.integers(0, 10**6), ood=st.booleans())
def test_no_two_consecutive_frames_of_a_clip_are_identical(k, seed, ood):
    """Every frame of a rendered clip, the tail after the action included, is a frame of its
    own (camera motion, idle sway, fresh sensor noise): no exact copies."""
    sc = StreamConfig()
    fr = render_clip(sc, class_names(sc)[k], seed, ood).astype(np.int16)
    assert fr.shape[0] == sc.clip_frames
    assert np.all(np.abs(np.diff(fr, axis=0)).reshape(len(fr) - 1, -1).max(1) > 0)


def _tail_statistics(frames: np.ndarray) -> list[float]:
    """What a model could read off a held tail: exact copies among consecutive frames, the
    run of copies of the last frame at the end, and near copies (mean |change| < 0.5 grey
    levels, under the sensor noise of all but the quietest clips)."""
    d = np.abs(np.diff(frames.astype(np.int16), axis=0)).reshape(len(frames) - 1, -1)
    run = 0
    while run < len(frames) - 1 and np.array_equal(frames[-2 - run], frames[-1]):
        run += 1
    return [float((d.max(1) == 0).sum()), float(run), float((d.mean(1) < 0.5).sum())]


def _nearest_centroid_accuracy(X: np.ndarray, y: np.ndarray, fold: np.ndarray) -> float:
    """Two-fold accuracy of a nearest-class-mean classifier on standardised features."""
    hits = 0
    for f in (0, 1):
        tr, te = fold != f, fold == f
        mu, sd = X[tr].mean(0), X[tr].std(0) + 1e-9
        Z = (X - mu) / sd
        C = np.stack([Z[tr & (y == k)].mean(0) for k in range(y.max() + 1)])
        hits += int((((Z[te][:, None] - C[None]) ** 2).sum(-1).argmin(1) == y[te]).sum())
    return hits / len(y)


def _chance_bound(n: int, p: float, alpha: float = 1e-3) -> float:
    """The accuracy a chance-level classifier exceeds with probability < alpha on n clips
    (one-sided binomial tail)."""
    tail, k = 0.0, n
    while k >= 0:
        tail += math.comb(n, k) * p ** k * (1 - p) ** (n - k)
        if tail >= alpha:
            return (k + 1) / n
        k -= 1
    return 0.0


def test_the_tail_carries_no_class_cue():
    """A classifier on tail-only statistics predicts the class at chance on rendered clips;
    on the same clips with the cut frames made up by holding the last frame (the former
    padding, the control that shows the statistics can see a held tail) it is far above."""
    sc = StreamConfig()
    names = class_names(sc)
    X: dict[str, list] = {"rendered": [], "held": []}
    y, fold = [], []
    for i in range(20):
        for k, a in enumerate(names):
            t = render_truth(sc, a, clip_seed(sc, "val", i, k))
            s, fr = t["start"], t["frames"]
            held = np.concatenate([fr[: len(fr) - s], np.repeat(fr[len(fr) - s - 1:][:1], s, 0)])
            X["rendered"].append(_tail_statistics(fr))
            X["held"].append(_tail_statistics(held))
            y.append(k)
            fold.append(i % 2)
    y, fold = np.array(y), np.array(fold)
    bound = _chance_bound(len(y), 1 / len(names))
    assert _nearest_centroid_accuracy(np.array(X["held"]), y, fold) > bound + 0.05
    assert _nearest_centroid_accuracy(np.array(X["rendered"]), y, fold) <= bound
    assert not np.array(X["rendered"])[:, :2].any()  # no exact copies at all


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
