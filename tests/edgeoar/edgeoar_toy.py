"""A toy stream family for the tests (no generator needed): a textured square on a textured
background, moving right, left, down or up from the centre (identical first frames: only the
motion tells the class), or staying put in one of two colours (told apart from frame 1)."""

from __future__ import annotations

import numpy as np

from edgeoar.codec import frame_difference

TOY_CLASSES = ["right", "left", "down", "up", "still_red", "still_blue"]
_V = {0: (2, 0), 1: (-2, 0), 2: (0, 2), 3: (0, -2)}


def toy_frames(label: int, seed: int, steps: int = 8, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    bg = (rng.random((size, size, 3)) * 60 + 40).astype(np.uint8)
    out = np.repeat(bg[None], steps, 0).copy()
    colour = np.array([220, 60, 60]) if label == 4 else np.array([60, 60, 220]) \
        if label == 5 else np.array([220, 200, 60])
    vx, vy = _V.get(label, (0, 0))
    c0 = size // 2 - 4 + rng.integers(-2, 3, 2)
    for t in range(steps):
        x, y = int(np.clip(c0[0] + vx * t, 0, size - 8)), int(np.clip(c0[1] + vy * t, 0, size - 8))
        out[t, y:y + 8, x:x + 8] = colour
    return out


def toy_split(per_class: int, seed: int, steps: int = 8, size: int = 32, codec: bool = False):
    """Arrays shaped like `edgeoar.data.load_split`'s; mv from the true motion unless `codec`
    (then the real encode/decode)."""
    from edgeoar.config import CodecConfig
    from edgeoar.data import codec_modalities

    out = {k: [] for k in ("rgb", "mv", "part", "diff", "label")}
    for i in range(per_class):
        for k in range(len(TOY_CLASSES)):
            fr = toy_frames(k, seed * 1000 + i * 10 + k, steps, size)
            if codec:
                m = codec_modalities(fr, 15.0, CodecConfig())
            else:
                g = size // 4
                mv = np.zeros((steps, 2, g, g), np.float32)
                mv[1:, 0], mv[1:, 1] = _V.get(k, (0, 0))
                m = {"rgb": fr, "mv": mv, "part": np.zeros((steps, 1, g, g), np.float32),
                     "diff": frame_difference(fr)}
            for key in out:
                out[key].append(m[key] if key != "label" else k)
    arr = {k: np.stack(v) for k, v in out.items()}
    arr["early"] = arr["label"] >= 4
    arr["early_gen"] = arr["early"]
    return arr
