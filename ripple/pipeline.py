"""The steps `train`, `eval` and `bench` share: model -> masks -> placements -> arm replays.

Kept as plain functions over arrays so each recipe stays a short top-to-bottom script.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from ripple.baselines import hot_first_placement, identity_placement
from ripple.config import RippleConfig
from ripple.data import corpus_masks
from ripple.engine import ARMS, ArmSpec, replay
from ripple.placement import GreedyEdgePlacement
from ripple.storage import UFSModel

__all__ = ["QUICK", "get_model", "mask_sets", "activated_fraction", "placements",
           "ufs_of", "bundle_settings", "replay_arms"]

log = logging.getLogger(__name__)


QUICK = ["masks.calib_tokens=4096", "masks.test_tokens=1024", "real_read_tokens=24",
         "placement_sizes=[4096, 16384]", "scaled_d_models=[4096]", "real_read_repeats=1"]


def get_model(cfg: RippleConfig):
    """The checkpoint at `cfg.checkpoint`, else the cached trained ReLU OPT."""
    from ripple.models import load_model, trained_model

    if cfg.checkpoint:
        return load_model(cfg.checkpoint)
    return trained_model(cfg.model, cfg.train, cfg.seed, cfg.device)


def mask_sets(model, cfg: RippleConfig) -> dict[str, np.ndarray]:
    """Oracle masks (L, T, n): calibration on each source's train split, tests on test splits.

    Keys: "calib:<source>" and "test:<source>" for the calibration source and every test source.
    """
    mc = cfg.masks
    out = {}
    for src in dict.fromkeys([mc.calib_source, *mc.test_sources]):
        out[f"calib:{src}"] = corpus_masks(model, src, "train", mc.calib_tokens, mc.seq_len,
                                           cfg.device)
        out[f"test:{src}"] = corpus_masks(model, src, "test", mc.test_tokens, mc.seq_len,
                                          cfg.device)
        log.info("masks %s: calib %s, test %s", src, out[f"calib:{src}"].shape,
                 out[f"test:{src}"].shape)
    return out


def activated_fraction(masks: np.ndarray) -> list[float]:
    """Mean fraction of neurons active per token, per layer. masks (L, T, n)."""
    return [float(x) for x in masks.mean(axis=(1, 2))]


def placements(calib: np.ndarray, top_k: int) -> tuple[dict[str, list[np.ndarray]], float]:
    """Per-layer orders of every placement ("identity", "hot", "ripple") and Ripple's seconds."""
    n = calib.shape[2]
    t0 = time.perf_counter()
    rip = [GreedyEdgePlacement(top_k).fit(m) for m in calib]
    secs = time.perf_counter() - t0
    return {"identity": [identity_placement(n) for _ in calib],
            "hot": [hot_first_placement(m) for m in calib],
            "ripple": rip}, secs


def ufs_of(cfg: RippleConfig) -> UFSModel:
    s = cfg.storage
    return UFSModel(s.bandwidth, s.knee_bytes, s.queue_depth)


def bundle_settings(d_model: int, cfg: RippleConfig, itemsize: int = 4,
                    parts: int = 2) -> dict[str, int]:
    """Bundle bytes: the model's true size, then the paper's shapes at fp16 (scaled)."""
    out = {f"true d{d_model} fp32": parts * d_model * itemsize}
    for d in cfg.scaled_d_models:
        out[f"scaled d{d} fp16"] = parts * d * 2
    return out


def replay_arms(test: np.ndarray, orders: dict[str, list[np.ndarray]], cfg: RippleConfig,
                bundle_bytes: int, arms: list[ArmSpec] = ARMS, record: int = 0) -> dict[str, dict]:
    """Replay every arm on the same masks; {arm name: metrics}."""
    ufs = ufs_of(cfg)
    res = {}
    for spec in arms:
        res[spec.name] = replay(test, orders[spec.placement], spec, cfg.online, ufs, bundle_bytes,
                                seed=cfg.seed, record=record)
    return res
