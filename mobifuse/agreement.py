"""Stereo-agreement refinement: the DEI inverse-variance mean where the sensors agree (our
addition after the fusion net; not in the paper).

A net trained on phone rigs (baseline 1-5 cm), whose stereo is decimetres off, learns to lean on
the ToF; on a wide-baseline rig it then leaves accurate stereo unused. This step is a closed
form that needs no training signal from such rigs: at a pixel where SGBM measured (left-right
check passed), claims to be well under the ToF's error (sigma_st < `max_ratio` sigma_tof: the
fused depth is itself well below the ToF's error) and agrees with the fused depth D within

    |D - D_st| <= k sqrt(sigma_tof^2 + sigma_st^2),

the output is the inverse-variance mean (D / sigma_tof^2 + D_st / sigma_st^2) /
(1 / sigma_tof^2 + 1 / sigma_st^2), with the ToF's DEI sigma standing in for the fused depth's
(a conservative choice: the fused error is below the ToF's). Elsewhere D is kept. The result is
a convex combination of D and the stereo depth, so it stays inside the convex guard's interval
whenever D does. k = 0 switches it off. k = 1 was picked on validation scenes only: wide
validation rigs (baseline 5-10 cm, f 600-800 px; neither the training nor the test rigs) and the
fixed phone rig's validation seeds, where any k with no ratio test cost accuracy (the
well-trained net beats the noisy phone stereo there); `python -m
mobifuse.experiments.fusion_ceiling` prints both grids. max_ratio = 0.25 was picked for the
local-quantile stereo DEI (its matched-pixel sigmas are smaller than the stereo's-own-depth
DEI's, for which 0.5 was best) on the wide validation rigs and validation scenes of the training
rigs, over three training seeds of the cross-rig net (`python -m
mobifuse.experiments.cross_rig_seeds`): 0.5 let noisy phone stereo into the in-family scenes.

Shapes: every argument (H, W) or (N, H, W) (broadcastable); depths and sigmas in metres.
"""

from __future__ import annotations

import numpy as np

__all__ = ["AGREE_K", "MAX_RATIO", "stereo_agreement"]

AGREE_K = 1.0
MAX_RATIO = 0.25


def stereo_agreement(depth: np.ndarray, sigma_ref: np.ndarray, st: np.ndarray,
                     st_valid: np.ndarray, sigma_st: np.ndarray, k: float = AGREE_K,
                     max_ratio: float = MAX_RATIO) -> np.ndarray:
    """`depth` refined by the agreeing stereo (see the module docstring); float32."""
    if k < 0:
        raise ValueError(f"agreement threshold k must be >= 0, got {k}")
    d = np.asarray(depth, dtype=np.float64)
    if k == 0:
        return d.astype(np.float32)
    s_ref = np.asarray(sigma_ref, dtype=np.float64)
    s_st = np.asarray(sigma_st, dtype=np.float64)
    z_st = np.asarray(st, dtype=np.float64)
    agree = ((np.asarray(st_valid) > 0.5) & (s_st < max_ratio * s_ref)
             & (np.abs(d - z_st) <= k * np.hypot(s_ref, s_st)))
    w_ref, w_st = 1.0 / np.square(s_ref), 1.0 / np.square(s_st)
    mean = (d * w_ref + z_st * w_st) / (w_ref + w_st)
    return np.where(agree, mean, d).astype(np.float32)
