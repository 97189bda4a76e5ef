"""`edgeoar.stream`: frame-by-frame decisions on a video file equal the batched model's
outputs and the IIE + MC rule; the decision is kept after the exit; corrupt files are
one-line DataErrors."""

import numpy as np
import pytest
import torch
from edgeoar_toy import toy_frames

from edgeoar import stream
from edgeoar.codec import decode, encode_h264
from edgeoar.config import ModelConfig
from edgeoar.exits import apply_policy, step_scores
from edgeoar.models import build_model, save_model
from shared.errors import DataError


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    path.write_bytes(encode_h264(toy_frames(0, 1, steps=8, size=32), 15.0, gop=4))
    return path


@pytest.mark.parametrize("source", ["codec", "diff"])
def test_stream_matches_the_batched_policy(video, source, tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(width=12, feat_dim=16, motion_source=source,
                      partition_guidance=source == "codec")
    m = build_model(cfg, 3, 8, 32, 4).eval()
    save_model(m, tmp_path / "model.safetensors", ["a", "b", "c"],
               {"exit": {"tau_conf": 0.34, "tau_mc": 0.9}})
    out = list(stream(video, tmp_path))
    assert len(out) == 8
    frame, label, conf, _ = out[0]
    assert frame.shape == (32, 32, 3) and frame.dtype == np.uint8 and label in "abc"
    d = decode(video, cell=4)
    mot = d["mv"] if source == "codec" else __import__("edgeoar").codec.frame_difference(d["rgb"])
    with torch.no_grad():
        o = m(torch.from_numpy(d["rgb"])[None], torch.from_numpy(mot)[None],
              torch.from_numpy(d["part"])[None])
    s = step_scores(o["rgb"].numpy(), o["motion"].numpy(), o["gate"].numpy())
    ex, pred = apply_policy("iie_mc", s, (0.34, 0.9))
    exited = [e for *_, e in out]
    assert exited.index(True) == ex[0] and all(exited[ex[0]:])
    assert out[ex[0]][1] == "abc"[pred[0]]
    assert len({(lab, c) for _, lab, c, e in out if e}) == 1  # kept after the exit


def test_stream_forces_exit_at_max_frames_and_refuses_bad_files(video, tmp_path):
    m = build_model(ModelConfig(width=12, feat_dim=16), 3, 8, 32, 4).eval()
    out = list(stream(video, m, ["x", "y", "z"], thresholds=(1.0, 1.0), max_frames=3))
    assert [e for *_, e in out] == [False, False, True] + [True] * 5
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(video.read_bytes()[:100])
    with pytest.raises(DataError, match="bad.mp4"):
        list(stream(bad, m, ["x", "y", "z"]))
    with pytest.raises(DataError, match="class names"):
        list(stream(video, m, ["x"]))
    with pytest.raises(DataError, match="not found"):
        list(stream(tmp_path / "none", m))


def test_stream_defaults_to_the_shipped_model(tmp_path):
    from edgeoar.models import load_model
    from edgeoar.online import DEFAULT_MODEL

    assert DEFAULT_MODEL.is_file()
    net, info = load_model(DEFAULT_MODEL)
    assert len(info["classes"]) >= 12 and set(info["exit"]) == {"tau_conf", "tau_mc"}
    video = tmp_path / "v.mp4"
    video.write_bytes(encode_h264(toy_frames(1, 2, steps=20, size=48), 15.0))  # resized to 64
    out = list(stream(video))
    assert len(out) == 20 and out[-1][3] and out[0][0].shape == (64, 64, 3)
    assert out[0][1] in info["classes"]
