"""Fuzz: edgeoar's loaders - UCF-101 split files and AVI videos (`ucf101_split`,
`load_video`), H.264/MP4 streams (`decode`) and model files (`load_model`).

A mutated video is decoded or refused in one line naming the file (FFmpeg's own errors,
a frame size out of range, no decodable frames); a mutated split file names its line."""

import numpy as np
from fuzz_harness import Target, assert_rejects, mutated_files_test

from edgeoar.codec import decode, encode_h264
from edgeoar.config import ModelConfig
from edgeoar.data import load_video, ucf101_split
from edgeoar.models import build_model, load_model, save_model


def _frames(n=6, size=32):
    rng = np.random.default_rng(0)
    bg = (rng.random((size, size, 3)) * 90).astype(np.uint8)
    out = np.repeat(bg[None], n, 0).copy()
    for t in range(n):
        out[t, 8:16, 4 + 2 * t:12 + 2 * t] = (230, 190, 40)
    return out


def _seed_ucf(d):
    import av

    lists, vids = d / "ucfTrainTestlist", d / "UCF-101" / "YoYo"
    lists.mkdir()
    vids.mkdir(parents=True)
    (lists / "classInd.txt").write_text("1 YoYo\n")
    (lists / "trainlist01.txt").write_text("YoYo/v_YoYo_g08_c01.avi 1\n")
    with av.open(str(vids / "v_YoYo_g08_c01.avi"), "w", format="avi") as out:
        st = out.add_stream("mpeg4", rate=25)
        st.width = st.height = 32
        st.pix_fmt = "yuv420p"
        for f in _frames():
            for pkt in st.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)


def _load_ucf(d):
    items, names = ucf101_split(d, 1, "train")
    return [load_video(p, 6, 32) for p, _ in items], names


def _check_video(v):
    assert v["rgb"].shape == (6, 32, 32, 3) and v["rgb"].dtype == np.uint8
    assert v["mv"].shape == (6, 2, 8, 8) and np.isfinite(v["mv"]).all()
    assert v["part"].min() >= 0 and v["part"].max() <= 1
    assert np.isfinite(v["diff"]).all() and np.isfinite(float(v["fps"]))


def _check_ucf(res, d):
    vids, names = res
    assert names and vids
    for v in vids:
        _check_video(v)


def _seed_mp4(d):
    (d / "clip.mp4").write_bytes(encode_h264(_frames(), 15.0, gop=3))


def _check_mp4(v, d):
    t = len(v["rgb"])
    assert 1 <= t <= 8 and v["rgb"].shape[1:] == (32, 32, 3)
    assert v["mv"].shape == (t, 2, 8, 8) and np.isfinite(v["mv"]).all()


def _seed_model(d):
    m = build_model(ModelConfig(width=8, feat_dim=8), 3, 4, 32, 4)
    save_model(m, d / "model.safetensors", ["a", "b", "c"])


def _check_model(res, d):
    model, info = res
    assert model.classes == len(info["classes"]) == 3
    for p in model.parameters():
        assert np.isfinite(p.detach().numpy()).all()


TARGETS = [
    Target("ucf101", _seed_ucf, _load_ucf, _check_ucf,
           ("UCF-101/YoYo/v_YoYo_g08_c01.avi", "ucfTrainTestlist/trainlist01.txt",
            "ucfTrainTestlist/classInd.txt", "UCF-101/YoYo/v_YoYo_g08_c01.avi")),
    Target("mp4", _seed_mp4, lambda d: decode(d / "clip.mp4", max_frames=8, size=32),
           _check_mp4, ("clip.mp4",) * 4),
    Target("model", _seed_model, lambda d: load_model(d / "model.safetensors"), _check_model,
           ("model.safetensors",) * 4),
]
BY_NAME = {t.name: t for t in TARGETS}

test_mutated_files = mutated_files_test(TARGETS, 60, files=4)


def test_video_header_claims_and_truncation(tmp_path):
    t = BY_NAME["mp4"]
    d = t.fresh(tmp_path)
    (d / "clip.mp4").write_bytes((d / "clip.mp4").read_bytes()[:64])
    assert_rejects(t, d, "clip.mp4")
    d = t.fresh(tmp_path)
    (d / "clip.mp4").write_bytes(b"")
    assert_rejects(t, d, "clip.mp4")


def test_split_line_with_bad_label(tmp_path):
    t = BY_NAME["ucf101"]
    d = t.fresh(tmp_path)
    (d / "ucfTrainTestlist" / "trainlist01.txt").write_text("YoYo/v_YoYo_g08_c01.avi 1e999\n")
    assert_rejects(t, d, "trainlist01.txt:1", "label")
