"""Streams from the human-motion generator through the codec: shapes, labels, the
early-separable flags, disjoint split seeds, the out-of-family settings; and the train recipe
end to end on a tiny setting (run dir, thresholds in the model file, resume, `stream`)."""

import dataclasses
import json

import numpy as np
import pytest

from edgeoar import stream
from edgeoar.config import StreamConfig, TrainConfig
from edgeoar.data import build_split, check_stream, early_separable, motion_config
from edgeoar.eval import main as eval_main
from edgeoar.train import main as train_main
from shared.errors import ConfigError

TINY = StreamConfig(image_size=32, clip_frames=8, actions=["squat", "sit_down"],
                    train_per_class=2, val_per_class=1, test_per_class=1, ood_per_class=1)


def test_split_arrays_and_flags():
    cfg = TrainConfig(stream=TINY)
    d = build_split(cfg, "val")
    assert d["rgb"].shape == (2, 8, 32, 32, 3) and d["rgb"].dtype == np.uint8
    assert d["mv"].shape == (2, 8, 2, 8, 8) and d["part"].shape == (2, 8, 1, 8, 8)
    assert d["label"].tolist() == [0, 1] and d["early"].tolist() == [True, False]
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
