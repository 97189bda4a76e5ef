"""Frame retrieval by language query: score every frame against the text, optionally smooth the
scores over time, return the argmax frame (BestShot's dual-encoder protocol).

    >>> idx, scores = query("clip.mp4", "the top of the jump, both feet off the ground")

`query` reads any video file OpenCV can decode (or takes (T, H, W, 3) uint8 RGB frames) and
runs a ShotVL (`bestshot.models`), a CLIP-style checkpoint, or the weights shipped with the
package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.errors import DataError

__all__ = ["smooth_scores", "score_frames", "read_video", "query", "default_model",
           "WEIGHTS_FILE", "video_embeddings", "score_items", "retention_r1"]

WEIGHTS_FILE = Path(__file__).resolve().parent / "weights" / "shotvl.safetensors"
MAX_FRAMES = 20_000  # a longer video is read with a stride


def smooth_scores(scores: np.ndarray, half_width: int) -> np.ndarray:
    """Moving average over [t - w, t + w] (the window shrinks at the ends), (T,) -> (T,)."""
    s = np.asarray(scores, dtype=np.float64)
    if half_width <= 0 or len(s) < 2:
        return s.copy()
    c = np.concatenate([[0.0], np.cumsum(s)])
    t = np.arange(len(s))
    lo, hi = np.maximum(t - half_width, 0), np.minimum(t + half_width + 1, len(s))
    return (c[hi] - c[lo]) / (hi - lo)


def score_frames(model, frames: np.ndarray, texts: list[str], smooth: int = 0) -> np.ndarray:
    """Cosine similarity of every frame with every text: (T, H, W, 3) uint8 -> (Q, T)."""
    img = model.encode_frames(frames)
    txt = model.encode_texts(list(texts))
    s = txt @ img.T
    return np.stack([smooth_scores(r, smooth) for r in s]) if smooth else s


def read_video(path: str | Path, max_frames: int = MAX_FRAMES) -> tuple[np.ndarray, float]:
    """(T, H, W, 3) uint8 RGB frames and fps of a video file (OpenCV). An unreadable or empty
    file is a DataError naming it."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise DataError(f"video file not found: {path}")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DataError(f"{path}: not a video OpenCV can read")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        frames = []
        shape = None
        while len(frames) < max_frames:
            ok, f = cap.read()
            if not ok or f is None:
                break
            if f.ndim != 3 or f.shape[2] != 3 or (shape is not None and f.shape != shape):
                raise DataError(f"{path}: frame {len(frames)} has shape {f.shape}")
            shape = f.shape
            frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    if not frames:
        raise DataError(f"{path}: no decodable frames")
    return np.stack(frames), (fps if np.isfinite(fps) and fps > 0 else 25.0)


def default_model():
    """The ShotVL weights shipped with the package (trained by `python -m bestshot.bench`)."""
    from bestshot.models import load_model

    if not WEIGHTS_FILE.is_file():
        raise DataError(f"no shipped weights ({WEIGHTS_FILE}); pass model= (a ShotVL, "
                        f"bestshot.from_pretrained(path)) or train one with bestshot.train")
    return load_model(WEIGHTS_FILE)[0]


def query(video, text: str, model=None, smooth: int = 1) -> tuple[int, np.ndarray]:
    """The highlight frame for `text`: (frame index, (T,) scores). `video`: a path to any file
    OpenCV reads, or (T, H, W, 3) uint8 RGB frames."""
    if not isinstance(text, str) or not text.strip():
        raise DataError("query: the text is empty")
    if isinstance(video, (str, Path)):
        frames, _ = read_video(video)
    else:
        frames = np.asarray(video)
        if frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
            raise DataError(f"query: frames must have shape (T, H, W, 3), got {frames.shape}")
        if frames.dtype != np.uint8:
            raise DataError(f"query: frames must be uint8 RGB, got {frames.dtype}")
    model = model if model is not None else default_model()
    scores = score_frames(model, frames, [text], smooth)[0]
    return int(np.argmax(scores)), scores


def video_embeddings(model, frames: np.ndarray) -> list[np.ndarray]:
    """(N, T, H, W, 3) videos -> N arrays (T, D) of frame embeddings."""
    return [model.encode_frames(f) for f in frames]


def score_items(model, frames: np.ndarray, items: list[dict], smooth: int = 0,
                frame_emb: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """(T,) scores of every benchmark item {video, text} (frames (N, T, H, W, 3))."""
    emb = frame_emb if frame_emb is not None else video_embeddings(model, frames)
    txt = model.encode_texts([it["text"] for it in items])
    return [smooth_scores(emb[it["video"]] @ t, smooth) for it, t in zip(items, txt)]


def retention_r1(model, frames: np.ndarray, visual: list[str], seed: int = 0,
                 frame_emb: list[np.ndarray] | None = None, draws: int = 16,
                 gallery: int | None = None) -> float:
    """Visual-content text -> image R@1 over a gallery of one random frame per video (general
    retrieval that fine-tuning on pose text should keep; videos with the same text count as
    hits), averaged over `draws` random galleries. `gallery`: split the videos into disjoint
    galleries of this many (a random partition per draw; a last, smaller group is dropped),
    so that R@1 on many clips keeps the difficulty of a `gallery`-clip search (None: one
    gallery of every video)."""
    rng = np.random.default_rng(seed)
    emb = frame_emb if frame_emb is not None else video_embeddings(model, frames)
    txt = model.encode_texts(list(visual))
    n = len(emb)
    g = n if gallery is None else min(gallery, n)
    hits = []
    for _ in range(draws):
        frame = [e[int(rng.integers(len(e)))] for e in emb]
        order = rng.permutation(n) if g < n else np.arange(n)
        for start in range(0, n - g + 1, g):
            idx = order[start:start + g]
            best = idx[np.argmax(txt[idx] @ np.stack([frame[i] for i in idx]).T, axis=1)]
            hits += [visual[b] == visual[i] for i, b in zip(idx, best)]
    return float(np.mean(hits))
