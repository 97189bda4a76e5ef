"""The real codec path: H.264 through PyAV (FFmpeg's libraries), decoded with motion-vector
export (`flags2=+export_mvs`).

From one decode come the three inputs of the model:

* RGB frames, uint8 (T, H, W, 3);
* the motion modality: the decoder's motion vectors rasterised on a grid of `cell`-pixel cells,
  float32 (T, 2, H/cell, W/cell) in pixels per frame (x right, y down; the displacement of the
  content *from the previous frame to this one*);
* the block partition (MSEM guidance, paper sec. on MBs-guided spatial enhancement): the size of
  the inter block covering each cell turned into a detail value in [0, 1] (16x16 -> 0, 8x8 ->
  0.5, 4x4 -> 1), float32 (T, 1, H/cell, W/cell).

I-frames carry no motion vectors (zeros), nor do intra blocks inside P-frames. The paper uses
an H.265 encoder; H.264 (libx264) is what every PyAV wheel ships, with the same kind of side
information (reconstruction choice). `frame_difference` is the codec-free fallback modality.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from shared.errors import DataError
from shared.validate import brief

__all__ = ["encode_h264", "decode", "iter_decoded", "rasterise_mvs", "frame_difference",
           "MAX_PIXELS"]

MAX_PIXELS = 4096 * 2304  # refuse frames larger than 4K (a corrupt header's size)


def encode_h264(frames: np.ndarray, fps: float, gop: int = 8, crf: int = 23,
                preset: str = "veryfast") -> bytes:
    """uint8 (T, H, W, 3) RGB -> an H.264 stream in an MP4 container (bytes). No B-frames, so
    every motion vector points to a past frame and decoding is causal (an online stream)."""
    import av

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise DataError(f"frames: expected uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if t < 1 or h % 2 or w % 2:
        raise DataError(f"frames: need >= 1 frame of even height and width, got {frames.shape}")
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        st = out.add_stream("libx264", rate=int(round(fps)))
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": "0",
                      "preset": preset, "tune": "zerolatency", "crf": str(crf)}
        for f in frames:
            for pkt in st.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    return buf.getvalue()


def rasterise_mvs(mvs: np.ndarray | None, h: int, w: int, cell: int = 4
                  ) -> tuple[np.ndarray, np.ndarray]:
    """FFmpeg's AVMotionVector records -> (flow (2, h/cell, w/cell), detail (1, h/cell, w/cell)).

    Each block (w x h at dst_x, dst_y, its centre) paints the cells it covers. flow is the
    content displacement per frame: motion/scale points from the block to its source, so a past
    reference (source < 0) gives -(motion/scale)/|source| and a future one the opposite sign.
    detail: 16x16 -> 0, 8x8 -> 0.5, 4x4 -> 1 (log2 of the block's side, mixed sizes averaged)."""
    gh, gw = h // cell, w // cell
    flow = np.zeros((2, gh, gw), np.float32)
    detail = np.zeros((1, gh, gw), np.float32)
    if mvs is None or len(mvs) == 0:
        return flow, detail
    src = mvs["source"].astype(np.float32)
    src[src == 0] = -1.0
    scale = np.maximum(mvs["motion_scale"].astype(np.float32), 1.0)
    fx = mvs["motion_x"].astype(np.float32) / scale / src
    fy = mvs["motion_y"].astype(np.float32) / scale / src
    bw, bh = mvs["w"].astype(np.int64), mvs["h"].astype(np.int64)
    x0 = mvs["dst_x"].astype(np.int64) - bw // 2
    y0 = mvs["dst_y"].astype(np.int64) - bh // 2
    side = np.sqrt(np.clip(bw * bh, 16, 256).astype(np.float32))
    val = np.clip(1.0 - (np.log2(side) - 2.0) / 2.0, 0.0, 1.0)
    acc = np.zeros((3, gh, gw), np.float64)
    cnt = np.zeros((gh, gw), np.float64)
    for i in range(len(mvs)):
        a, b = max(y0[i] // cell, 0), min(-(-(y0[i] + bh[i]) // cell), gh)
        c, d = max(x0[i] // cell, 0), min(-(-(x0[i] + bw[i]) // cell), gw)
        if a >= b or c >= d:
            continue
        acc[0, a:b, c:d] += fx[i]
        acc[1, a:b, c:d] += fy[i]
        acc[2, a:b, c:d] += val[i]
        cnt[a:b, c:d] += 1
    hit = cnt > 0
    flow[:, hit] = (acc[:2, hit] / cnt[hit]).astype(np.float32)
    detail[0, hit] = (acc[2, hit] / cnt[hit]).astype(np.float32)
    return flow, detail


def iter_decoded(source: str | Path | bytes, cell: int = 4, size: int | None = None
                 ) -> Iterator[dict]:
    """Decode frame by frame (an online stream): yields {rgb (H, W, 3) uint8, mv (2, G, G),
    part (1, G, G), key, fps}. `size` resizes frames to size x size (the motion vectors'
    positions and lengths scaled to match). A missing, empty or corrupt file is a one-line
    DataError naming it (raised when the bad part is reached)."""
    import av

    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    if not isinstance(source, (bytes, bytearray)) and not Path(source).is_file():
        raise DataError(f"video file not found: {name}")
    handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source)
    shape, n = None, 0
    try:
        with av.open(handle, "r") as cont:
            if not cont.streams.video:
                raise DataError(f"{name}: no video stream")
            st = cont.streams.video[0]
            if st.codec_context is None:
                raise DataError(f"{name}: no decoder for its video stream")
            st.codec_context.options = {"flags2": "+export_mvs"}
            fps = float(st.average_rate or st.guessed_rate or 0.0)
            if not np.isfinite(fps) or not 0.5 <= fps <= 1000:
                fps = 25.0  # a container without a usable rate: UCF-101's nominal rate
            for fr in cont.decode(st):
                if fr.width * fr.height > MAX_PIXELS or fr.width < 2 or fr.height < 2:
                    raise DataError(f"{name}: frame size {fr.width}x{fr.height} out of range")
                img = fr.to_ndarray(format="rgb24")
                sd = fr.side_data.get("MOTION_VECTORS")
                vecs = sd.to_ndarray() if sd is not None else None
                h, w = img.shape[:2]
                if size is not None and (h, w) != (size, size):
                    img, vecs = _resize(img, vecs, size)
                    h = w = size
                if shape is not None and img.shape != shape:
                    raise DataError(f"{name}: frame size changes mid-stream")
                shape = img.shape
                f, p = rasterise_mvs(vecs, h - h % cell, w - w % cell, cell)
                n += 1
                yield {"rgb": img, "mv": f, "part": p, "key": bool(fr.key_frame), "fps": fps}
    except DataError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, IndexError, EOFError, KeyError,
            AttributeError, TypeError, RuntimeError, UnicodeDecodeError, MemoryError) as e:
        # PyAV surfaces a corrupt container as any of these
        raise DataError(f"{name}: unreadable video ({brief(e)})") from None
    if n == 0:
        raise DataError(f"{name}: no decodable frames")


def decode(source: str | Path | bytes, cell: int = 4, max_frames: int | None = None,
           size: int | None = None) -> dict[str, np.ndarray]:
    """Decode a whole video (path or bytes; anything PyAV reads) with motion-vector export.

    Returns rgb uint8 (T, H, W, 3), mv float32 (T, 2, H/cell, W/cell), part float32
    (T, 1, H/cell, W/cell), key bool (T,) (I-frames), fps float. `size` resizes frames to
    size x size first (the motion vectors are scaled to match); `max_frames` stops early.
    A missing, empty or corrupt file is a one-line DataError naming it."""
    frames = []
    gen = iter_decoded(source, cell, size)
    for f in gen:
        frames.append(f)
        if max_frames is not None and len(frames) >= max_frames:
            gen.close()
            break
    return {"rgb": np.stack([f["rgb"] for f in frames]),
            "mv": np.stack([f["mv"] for f in frames]),
            "part": np.stack([f["part"] for f in frames]),
            "key": np.array([f["key"] for f in frames]), "fps": np.float64(frames[0]["fps"])}


def _resize(img: np.ndarray, vecs: np.ndarray | None, size: int):
    """Resize a frame to size x size and scale its motion vectors' positions and sizes."""
    import cv2

    h, w = img.shape[:2]
    out = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    if vecs is None or len(vecs) == 0:
        return out, vecs
    sx, sy = size / w, size / h
    v = vecs.copy()
    for k, s in (("dst_x", sx), ("src_x", sx), ("w", sx), ("dst_y", sy), ("src_y", sy),
                 ("h", sy)):
        v[k] = np.round(v[k] * s).astype(v[k].dtype)
    v["w"] = np.maximum(v["w"], 1)
    v["h"] = np.maximum(v["h"], 1)
    v["motion_x"] = np.round(v["motion_x"] * sx).astype(v["motion_x"].dtype)
    v["motion_y"] = np.round(v["motion_y"] * sy).astype(v["motion_y"].dtype)
    return out, v


def frame_difference(rgb: np.ndarray, cell: int = 4) -> np.ndarray:
    """The codec-free motion modality: grey-level difference to the previous frame (zero for
    the first), averaged over cell x cell cells, in [-1, 1]. uint8 (T, H, W, 3) ->
    float32 (T, 1, H/cell, W/cell)."""
    g = rgb.astype(np.float32).mean(-1) / 255.0
    d = np.diff(g, axis=0, prepend=g[:1])
    t, h, w = d.shape
    h, w = h - h % cell, w - w % cell
    d = d[:, :h, :w].reshape(t, h // cell, cell, w // cell, cell).mean((2, 4))
    return d[:, None].astype(np.float32)
