"""The held-tail probe: `hold_tail` rebuilds the former padding (the clip's frames up to the
cut, then copies of the last kept frame), and the experiment runs end to end on a tiny setting,
its held-tail test split differing from the rendered one in the tail frames only."""

import json

import numpy as np

from edgeoar.config import StreamConfig, TrainConfig
from edgeoar.data import load_split, render_truth
from edgeoar.experiments import tail_cue


def test_hold_tail_repeats_the_last_kept_frame():
    f = np.arange(6 * 2 * 2 * 3, dtype=np.uint8).reshape(6, 2, 2, 3)
    h = tail_cue.hold_tail(f, 2)
    assert h.shape == f.shape and np.array_equal(h[:4], f[:4])
    assert np.array_equal(h[4], f[3]) and np.array_equal(h[5], f[3])
    assert np.array_equal(tail_cue.hold_tail(f, 0), f)
    t = render_truth(StreamConfig(image_size=32), "stand_up", 3)
    s, fr = t["start"], t["frames"]
    held = tail_cue.hold_tail(fr, s)
    n_copies = sum(np.array_equal(held[i], held[i - 1]) for i in range(1, len(held)))
    assert s > 0 and n_copies == s  # exactly the cut frames are copies


def test_tail_cue_end_to_end_on_a_tiny_setting(tmp_path):
    tiny = ["--set", "train.stream.image_size=32", "--set", "train.stream.clip_frames=8",
            "--set", "train.stream.actions=[squat, stand_up]",
            "--set", "train.stream.train_per_class=2", "--set", "train.stream.val_per_class=1",
            "--set", "train.stream.test_per_class=2", "--set", "train.rounds=1",
            "--set", "train.main_epochs=1", "--set", "train.gate_epochs=1",
            "--set", "train.model.width=8", "--set", "train.model.feat_dim=8"]
    assert tail_cue.main(tiny + ["--out", str(tmp_path)]) == 0
    out = json.loads(next(tmp_path.rglob("tail_cue.json")).read_text())
    for m in ("rendered_model", "held_model"):
        for t in ("rendered", "held"):
            assert len(out[m][t]["acc_per_step"]) == 8
            assert abs(out[m][t]["acc_full"] - out[m][t]["acc_per_step"][-1]) < 1e-3
            assert 1 <= out[m][t]["iie"]["frames"] <= 8
    cfg = TrainConfig()
    cfg.stream.image_size, cfg.stream.clip_frames = 32, 8
    cfg.stream.actions, cfg.stream.test_per_class = ["squat", "stand_up"], 2
    r, h = load_split(cfg, "test"), tail_cue.held_split(cfg, "test")
    assert r["rgb"].shape == h["rgb"].shape and np.array_equal(r["label"], h["label"])
    assert np.array_equal(r["rgb"][:, 0], h["rgb"][:, 0])  # same clips (the I-frame)
    assert not np.array_equal(r["rgb"], h["rgb"])  # the tails differ
