"""`stream(video_path, model)`: online action recognition on any file PyAV reads.

Frames are decoded one at a time with motion-vector export (`edgeoar.codec.iter_decoded`),
pushed through the recogniser's streaming path (`OnlineRecognizer.step`: shift buffers and the
running aggregate carried between frames) and the IIE + MC rule (`edgeoar.exits.ExitRule`).
Each frame yields (frame, label, confidence, exited); after the exit the decision is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from edgeoar.codec import iter_decoded
from edgeoar.exits import ExitRule
from edgeoar.models import MODEL_FILE, OnlineRecognizer, load_model
from shared.errors import DataError

__all__ = ["stream", "DEFAULT_THRESHOLDS", "DEFAULT_MODEL"]

DEFAULT_THRESHOLDS = (0.9, 0.8)  # (tau_conf, tau_mc) when the model file carries none
# the quick bench's iteratively trained model with its validation thresholds, 14 shared.motion
# actions at 64 px (refresh: python -m edgeoar.experiments.ship_weights)
DEFAULT_MODEL = Path(__file__).resolve().parent / "weights" / "stream_default.safetensors"


def _resolve(model) -> tuple[OnlineRecognizer, list[str], tuple[float, float]]:
    if isinstance(model, OnlineRecognizer):
        return model, [str(i) for i in range(model.classes)], DEFAULT_THRESHOLDS
    path = Path(model)
    if path.is_dir():
        path = path / MODEL_FILE
    net, info = load_model(path)
    th = info.get("exit", {})
    try:
        taus = (float(th["tau_conf"]), float(th["tau_mc"])) if th else DEFAULT_THRESHOLDS
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{path}: bad exit thresholds {th!r}") from None
    return net, list(info["classes"]), taus


def stream(video_path: str | Path | bytes, model=None, classes: list[str] | None = None,
           thresholds: tuple[float, float] | None = None, max_frames: int | None = None
           ) -> Iterator[tuple[np.ndarray, str, float, bool]]:
    """Yield (frame uint8 (S, S, 3), label, confidence, exited) per decoded frame.

    `model`: an `OnlineRecognizer`, or a run dir / model.safetensors (its class names and the
    exit thresholds chosen on the validation split come with it); None: `DEFAULT_MODEL`.
    `thresholds` = (tau_conf, tau_mc) overrides; `max_frames` forces the exit at that frame
    (default: the model's clip length). A corrupt video raises a one-line DataError."""
    net, names, taus = _resolve(DEFAULT_MODEL if model is None else model)
    names = list(classes) if classes is not None else names
    if len(names) != net.classes:
        raise DataError(f"{len(names)} class names for a {net.classes}-class model")
    rule = ExitRule(*(thresholds or taus), max_frames=max_frames or net.steps)
    state = net.init_state()
    prev = None
    net.eval()
    with torch.no_grad():
        for f in iter_decoded(video_path, net.cell, net.image_size):
            if rule.decision is not None:
                label, conf, _ = rule.update(None, None)
                yield f["rgb"], names[label], conf, True
                continue
            if net.cfg.motion_source == "codec":
                mot = f["mv"]
            else:
                g = f["rgb"].astype(np.float32).mean(-1) / 255.0
                d = g - (prev if prev is not None else g)
                prev = g
                c = net.cell
                mot = d.reshape(d.shape[0] // c, c, d.shape[1] // c, c).mean((1, 3))[None]
            out, state = net.step(torch.from_numpy(f["rgb"])[None],
                                  torch.from_numpy(np.ascontiguousarray(mot))[None].float(),
                                  torch.from_numpy(f["part"])[None], state)
            label, conf, exited = rule.update(out["rgb"][0, 0].numpy(),
                                              out["motion"][0, 0].numpy())
            yield f["rgb"], names[label], conf, exited
