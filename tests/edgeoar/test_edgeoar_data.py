"""Real-format data: UCF-101's official layout and split files, read with PyAV from small AVI
files the test writes; malformed split files and videos are one-line DataErrors."""

import numpy as np
import pytest

from edgeoar.data import load_video, ucf101_split
from shared.errors import ConfigError, DataError

CLASSES = ["ApplyEyeMakeup", "Basketball", "YoYo"]


def write_avi(path, frames: int = 12, size=(80, 60), seed: int = 0, codec: str = "mpeg4"):
    """A small AVI (MPEG-4 Part 2, as UCF-101's xvid files) of a square moving right."""
    import av

    rng = np.random.default_rng(seed)
    w, h = size
    bg = (rng.random((h, w, 3)) * 80).astype(np.uint8)
    with av.open(str(path), "w", format="avi") as out:
        st = out.add_stream(codec, rate=25)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        for t in range(frames):
            img = bg.copy()
            img[20:36, 5 + 3 * t:21 + 3 * t] = (230, 200, 40)
            for pkt in st.encode(__import__("av").VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)


def make_ucf(root, groups=(1, 2, 8, 9)):
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(CLASSES)))
    train, test = [], []
    for k, c in enumerate(CLASSES):
        (root / "UCF-101" / c).mkdir(parents=True)
        for g in groups:
            rel = f"{c}/v_{c}_g{g:02d}_c01.avi"
            write_avi(root / "UCF-101" / rel, frames=6, seed=k * 10 + g)
            (test if g <= 7 else train).append(rel)
    (lists / "trainlist01.txt").write_text(
        "".join(f"{r} {CLASSES.index(r.split('/')[0]) + 1}\n" for r in train))
    (lists / "testlist01.txt").write_text("".join(f"{r}\n" for r in test))
    return root


def test_ucf101_official_layout(tmp_path):
    root = make_ucf(tmp_path / "ucf")
    items, names = ucf101_split(root, 1, "train")
    assert names == CLASSES and len(items) == 6
    assert {lab for _, lab in items} == {0, 1, 2}
    for path, lab in items:
        assert path.parent.name == CLASSES[lab] and ("_g08_" in path.name or "_g09_" in path.name)
    test_items, _ = ucf101_split(root, 1, "test")
    assert len(test_items) == 6 and all("_g0" in p.name for p, _ in test_items)
    v = load_video(items[0][0], frames=8, size=32)
    assert v["rgb"].shape == (8, 32, 32, 3) and v["mv"].shape == (8, 2, 8, 8)
    assert v["diff"].shape == (8, 1, 8, 8) and float(v["fps"]) == 25.0
    assert np.all(v["rgb"][6] == v["rgb"][5])  # a 6-frame video holds its last frame
    assert v["mv"][1:5, 0].max() > 0  # MPEG-4 Part 2 exports motion vectors: the square moves


@pytest.mark.parametrize("file,content,msg", [
    ("classInd.txt", "1 ApplyEyeMakeup\n3 Basketball\n", "out of order"),
    ("classInd.txt", "ApplyEyeMakeup\n", "expected '<index> <ClassName>'"),
    ("classInd.txt", "", "no classes"),
    ("trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 2\n", "does not match"),
    ("trainlist01.txt", "Nope/v_Nope_g08_c01.avi 1\n", "not in classInd"),
    ("trainlist01.txt", "../../etc/passwd 1\n", "not a '<Class>/v_<name>.avi' path"),
    ("trainlist01.txt", "YoYo/v_YoYo_g10_c01.avi 3\n", "video not found"),
    ("trainlist01.txt", "\n\n", "no videos listed"),
    ("trainlist01.txt", b"\xff\xfe\n", "UTF-8"),
])
def test_malformed_split_files(tmp_path, file, content, msg):
    root = make_ucf(tmp_path / "ucf", groups=(8,))
    f = root / "ucfTrainTestlist" / file
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError, match=msg) as e:
        ucf101_split(root, 1, "train")
    assert "\n" not in str(e.value) and file in str(e.value)


def test_bad_split_arguments_and_corrupt_video(tmp_path):
    root = make_ucf(tmp_path / "ucf", groups=(8,))
    with pytest.raises(ConfigError, match="split"):
        ucf101_split(root, 4, "train")
    with pytest.raises(DataError, match="classInd.txt"):
        ucf101_split(tmp_path, 1, "train")
    items, _ = ucf101_split(root, 1, "train")
    data = items[0][0].read_bytes()
    items[0][0].write_bytes(data[:200])
    with pytest.raises(DataError, match=items[0][0].name):
        load_video(items[0][0], 4, 32)


def test_eval_on_ucf101_layout(tmp_path):
    import json

    import torch

    from edgeoar.config import ModelConfig
    from edgeoar.eval import main as eval_main
    from edgeoar.models import build_model, save_model

    root = make_ucf(tmp_path / "ucf")
    torch.manual_seed(0)
    run = tmp_path / "run"
    run.mkdir()
    m = build_model(ModelConfig(width=8, feat_dim=8), len(CLASSES), 6, 32, 4)
    save_model(m, run / "model.safetensors", CLASSES)
    out = tmp_path / "ev"
    assert eval_main(["--run", str(run), "--ucf101", str(root), "--limit", "4",
                      "--out", str(out)]) == 0
    r = json.loads((out / "metrics.json").read_text())
    assert r["videos"] == 4 and 0 <= r["acc_full_clip"] <= 1 and 1 <= r["frames_mean"] <= 6
    save_model(m, run / "model.safetensors", ["a", "b", "c"])
    with pytest.raises(DataError, match="not UCF-101's"):
        eval_main(["--run", str(run), "--ucf101", str(root), "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()
