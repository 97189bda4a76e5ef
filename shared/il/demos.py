"""The two datasets an offline imitation method learns from, with the returns that normalise
its scores (D4RL's convention: random -> 0, expert -> 100)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Demos"]


@dataclass
class Demos:
    expert: dict[str, np.ndarray]  # D_e, D4RL layout
    imperfect: dict[str, np.ndarray]  # the imperfect / unlabelled data, D4RL layout
    env_id: str
    ref_random: float  # returns that map to normalised score 0 and 100
    ref_expert: float
    description: str
