"""The codec path: motion vectors of a synthetic translating pattern match its known motion,
I-frames carry none, block sizes become the partition map, the frame-difference fallback
matches a slow reference, and bad videos are one-line DataErrors."""

import numpy as np
import pytest

from edgeoar.codec import decode, encode_h264, frame_difference, iter_decoded, rasterise_mvs
from shared.errors import DataError

MV_DTYPE = np.dtype([("source", "i4"), ("w", "u1"), ("h", "u1"), ("src_x", "i2"),
                     ("src_y", "i2"), ("dst_x", "i2"), ("dst_y", "i2"), ("motion_x", "i4"),
                     ("motion_y", "i4"), ("motion_scale", "u2")])


def translating(vx: int, vy: int, steps: int = 10, size: int = 64) -> np.ndarray:
    """A smooth random texture whose content moves (vx, vy) pixels per frame."""
    import cv2

    rng = np.random.default_rng(3)
    big = cv2.GaussianBlur((rng.random((size * 3, size * 3, 3)) * 255).astype(np.uint8),
                           (7, 7), 2)
    o = size
    return np.stack([big[o - vy * t:o - vy * t + size, o - vx * t:o - vx * t + size]
                     for t in range(steps)])


@pytest.mark.parametrize("vx,vy", [(2, 0), (-3, 1), (0, -2)])
def test_motion_vectors_recover_a_known_translation(vx, vy):
    d = decode(encode_h264(translating(vx, vy), 15.0, gop=5, crf=18))
    assert d["rgb"].shape == (10, 64, 64, 3) and d["mv"].shape == (10, 2, 16, 16)
    assert d["key"].tolist() == [True] + [False] * 4 + [True] + [False] * 4
    for t in range(10):
        if d["key"][t]:
            assert np.all(d["mv"][t] == 0) and np.all(d["part"][t] == 0)  # I-frames: none
            continue
        inner = d["mv"][t][:, 2:-2, 2:-2]  # away from the borders the texture enters at
        assert np.median(inner[0]) == pytest.approx(vx, abs=0.26)
        assert np.median(inner[1]) == pytest.approx(vy, abs=0.26)


def test_rasterise_hand_made_blocks():
    v = np.zeros(3, MV_DTYPE)
    # a 16x16 block at (0..16, 0..16) whose source lies 2 px to the right in the past frame:
    # content moved 2 px left -> flow -2 (motion_x = src - dst in quarter-pel, scale 4)
    v[0] = (-1, 16, 16, 10, 8, 8, 8, 8, 0, 4)
    # an 8x8 block at (16..24, 0..8), flow +1 down (source one row up)
    v[1] = (-1, 8, 8, 20, 3, 20, 4, 0, -4, 4)
    # a 4x4 block from a future frame at (32..36, 0..4): source 1 px right -> content moves +1
    v[2] = (1, 4, 4, 35, 2, 34, 2, 4, 0, 4)
    flow, detail = rasterise_mvs(v, 64, 64, cell=4)
    assert flow[0, :4, :4].tolist() == [[-2.0] * 4] * 4 and np.all(detail[0, :4, :4] == 0)
    assert np.all(flow[1, :2, 4:6] == 1.0) and np.all(detail[0, :2, 4:6] == 0.5)
    assert flow[0, 0, 8] == 1.0 and detail[0, 0, 8] == 1.0
    assert np.all(flow[:, 4:] == 0) and np.all(detail[0, 4:] == 0)  # not covered: zeros
    empty = rasterise_mvs(None, 32, 32, 8)
    assert empty[0].shape == (2, 4, 4) and not empty[0].any()


def test_frame_difference_matches_a_slow_reference():
    rgb = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    d = frame_difference(rgb, cell=4)
    assert d.shape == (4, 1, 4, 4) and np.all(d[0] == 0)
    g = rgb.astype(np.float64).mean(-1) / 255
    for t in range(1, 4):
        for i in range(4):
            for j in range(4):
                ref = (g[t] - g[t - 1])[4 * i:4 * i + 4, 4 * j:4 * j + 4].mean()
                assert d[t, 0, i, j] == pytest.approx(ref, abs=1e-6)


def test_resize_scales_motion_vectors():
    d = decode(encode_h264(translating(4, 0, steps=4), 15.0, gop=8, crf=18), size=32)
    assert d["rgb"].shape == (4, 32, 32, 3) and d["mv"].shape == (4, 2, 8, 8)
    assert np.median(d["mv"][2, 0, 1:-1, 1:-1]) == pytest.approx(2.0, abs=0.3)


def test_bad_videos_are_one_line_data_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        decode(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"RIFF\x00\x00\x00\x00AVI " + b"\x00" * 300)
    with pytest.raises(DataError, match="junk.avi") as e:
        decode(junk)
    assert "\n" not in str(e.value)
    blob = encode_h264(translating(1, 0, steps=6), 15.0)
    with pytest.raises(DataError, match="<bytes>"):
        decode(blob[: len(blob) // 3])
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    with pytest.raises(DataError, match="notes.txt"):
        list(iter_decoded(text))
    with pytest.raises(DataError, match="uint8"):
        encode_h264(np.zeros((2, 8, 8, 3), np.float32), 15.0)
