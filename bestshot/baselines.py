"""Reference arms that score frames without a trained text-image model (BestShot has none
public; reconstructed): random frame, middle frame, minimum-motion frame (an action's apex is
often a velocity zero) and an oracle that matches the query's posecodes against the
ground-truth skeleton of every frame (an upper bound for pose queries)."""

from __future__ import annotations

import numpy as np

from bestshot.posecodes import posecode_match
from bestshot.retrieval import smooth_scores

__all__ = ["random_scores", "middle_scores", "min_motion_scores", "oracle_scores"]


def random_scores(n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(T,) i.i.d. uniform scores: the argmax is a uniformly random frame."""
    return rng.random(n_frames)


def middle_scores(n_frames: int) -> np.ndarray:
    """(T,) peaked at the middle frame."""
    return -np.abs(np.arange(n_frames) - (n_frames - 1) / 2)


def min_motion_scores(frames: np.ndarray, smooth: int = 1) -> np.ndarray:
    """(T, H, W, 3) frames -> (T,) minus the mean absolute pixel change around each frame
    (mean of the differences to the previous and the next frame), smoothed."""
    f = np.asarray(frames, dtype=np.float32)
    d = np.abs(np.diff(f, axis=0)).mean(axis=(1, 2, 3))
    if len(d) == 0:
        return np.zeros(len(f))
    around = np.concatenate([[d[0]], (d[:-1] + d[1:]) / 2, [d[-1]]])
    return -smooth_scores(around, smooth)


def oracle_scores(query_codes: np.ndarray, query_mask: np.ndarray, frame_codes: np.ndarray,
                  smooth: int = 1) -> np.ndarray:
    """(T,) share of the query's posecodes each frame's true skeleton matches, smoothed (ties
    between equal matches go to the middle of a matching run)."""
    return smooth_scores(posecode_match(query_codes, query_mask, frame_codes), smooth)
