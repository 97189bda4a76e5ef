"""Contrastive frame-text training with intra-video hard negatives (ShotVL fine-tuning; the
paper's loss is not published -- reconstructed as InternVL-style image-text contrastive, ITC).

A batch holds V videos x F frames. Each frame comes with one caption (a random one of its
paraphrases). `positives[c, f]` says caption c describes frame f: the same clean caption, or
a visual-content-only caption of the same video. Two terms:

    L_itc   = soft-target InfoNCE over the whole batch, text->image and image->text;
    L_intra = text->frame InfoNCE restricted to each caption's own video: the other frames of
              the same video (other pose / stage, same person and background) are the hard
              negatives the task is about.

    L = L_itc + intra_weight * L_intra,   logits = exp(logit_scale) * cos(text, image).

Soft targets spread the probability uniformly over all positives (captions repeat: two frames
of one still stance have the same pose text).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bestshot.models import ShotVL
from shared.log import get_logger, progress

__all__ = ["soft_cross_entropy", "contrastive_loss", "TrainData", "sample_batch", "l2sp_penalty",
           "fit"]

log = get_logger("bestshot.contrastive")


def soft_cross_entropy(logits: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Mean over rows with >= 1 positive of -sum_j q_j log softmax(logits)_j, q uniform over
    the row's positives. logits, pos: (R, C)."""
    pos = pos.to(logits.dtype)
    n = pos.sum(1)
    keep = n > 0
    if not bool(keep.any()):
        return logits.sum() * 0.0
    q = pos[keep] / n[keep, None]
    return -(q * F.log_softmax(logits[keep], dim=1)).sum(1).mean()


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, pos: torch.Tensor,
                     video: torch.Tensor, scale: torch.Tensor, intra_weight: float = 1.0
                     ) -> tuple[torch.Tensor, dict]:
    """img (B, D), txt (B, D) unit vectors (caption b belongs to frame b), pos (B, B) bool
    (caption row, frame column), video (B,) ids. -> (loss, {"itc", "intra"})."""
    logits = scale * txt @ img.t()  # (captions, frames)
    itc = 0.5 * (soft_cross_entropy(logits, pos) + soft_cross_entropy(logits.t(), pos.t()))
    same = video[:, None] == video[None, :]
    intra = soft_cross_entropy(logits.masked_fill(~same, -1e4), pos & same)
    loss = itc + intra_weight * intra
    return loss, {"itc": float(itc.detach()), "intra": float(intra.detach())}


@dataclass
class TrainData:
    """Training arrays. pixels (N, T, C, S, S) float16 model inputs; caption_ids (N, T, P) int
    indices into `text_emb` (U, 384) / `texts`; keys (N, T) clean-caption id of each frame;
    visual_only (U,) bool (a caption that names only the visual content)."""

    pixels: np.ndarray
    caption_ids: np.ndarray
    keys: np.ndarray
    text_emb: np.ndarray
    texts: list[str]
    visual_only: np.ndarray
    caption_keys: np.ndarray  # (U,) clean-caption key of each caption
    allowed: np.ndarray | None = None  # (N, T) bool frames to train on (None = all)

    def validate(self) -> None:
        n, t = self.pixels.shape[:2]
        if self.caption_ids.shape[:2] != (n, t) or self.keys.shape != (n, t):
            raise ValueError("caption_ids / keys do not match pixels' (N, T)")
        if len(self.text_emb) != len(self.texts) or self.caption_ids.max() >= len(self.texts):
            raise ValueError("caption ids out of range of the texts")


def sample_batch(data: TrainData, videos: int, frames: int, rng: np.random.Generator
                 ) -> dict[str, np.ndarray]:
    """V videos x F distinct frames, one random paraphrase each -> x (B, C, S, S), text ids
    (B,), positives (B, B), video (B,), frames (B,)."""
    n, t = data.pixels.shape[:2]
    vids = rng.choice(n, size=min(videos, n), replace=False)
    if data.allowed is None:
        fr = np.stack([rng.choice(t, size=min(frames, t), replace=False) for _ in vids])
    else:  # furthest-point-sampled frames only (with repeats when a video has too few)
        fr = np.stack([_pick(np.flatnonzero(data.allowed[v]), frames, t, rng) for v in vids])
    vv = np.repeat(vids, fr.shape[1])
    ff = fr.reshape(-1)
    p = rng.integers(data.caption_ids.shape[2], size=len(ff))
    tid = data.caption_ids[vv, ff, p]
    ckey = data.caption_keys[tid]
    fkey = data.keys[vv, ff]
    vis = data.visual_only[tid]
    pos = (ckey[:, None] == fkey[None, :]) | (vis[:, None] & (vv[:, None] == vv[None, :]))
    return {"x": data.pixels[vv, ff].astype(np.float32), "tid": tid, "pos": pos, "video": vv,
            "frames": ff}


def _pick(ok: np.ndarray, k: int, t: int, rng: np.random.Generator) -> np.ndarray:
    if len(ok) == 0:
        return rng.choice(t, size=min(k, t), replace=False)
    return rng.choice(ok, size=k, replace=len(ok) < k)


def l2sp_penalty(model: nn.Module, anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """L2-SP (Li et al., *Explicit inductive bias for transfer learning*, ICML 2018): the sum of
    squared distances of the trainable parameters named in `anchor` to their starting values,
    which keeps a fine-tuned model near the base model it started from."""
    named = dict(model.named_parameters())
    return sum(((named[k] - a) ** 2).sum() for k, a in anchor.items())


def fit(model: ShotVL, data: TrainData, steps: int, videos: int, frames: int, lr: float,
        weight_decay: float, intra_weight: float, seed: int, start: int = 0,
        opt_state: dict | None = None,
        on_step: Callable[[int, ShotVL, torch.optim.Optimizer, dict], None] | None = None,
        device: str = "cpu", l2sp: float = 0.0,
        anchor: dict[str, torch.Tensor] | None = None) -> dict:
    """Train `model` for steps start..steps-1 (cosine schedule with warm-up); batches are a
    function of (seed, step), so a resumed run sees the same batches. `on_step(step + 1, model,
    opt, hist)` after every step (checkpoints). `l2sp > 0` adds l2sp x `l2sp_penalty(model,
    anchor)` to the loss. Returns the history."""
    data.validate()
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    warm = max(steps // 20, 1)
    emb = torch.from_numpy(np.asarray(data.text_emb, np.float32))
    hist: dict = {"loss": [], "itc": [], "intra": []}
    t0 = time.perf_counter()
    for step in progress(range(start, steps), desc="train", initial=start, total=steps):
        for g in opt.param_groups:  # warm-up then cosine, a function of the step (resume)
            g["lr"] = lr * min(1.0, (step + 1) / warm) * 0.5 * (
                1 + math.cos(math.pi * step / steps))
        b = sample_batch(data, videos, frames, np.random.default_rng([seed, step]))
        x = torch.from_numpy(b["x"]).to(device)
        if model.text_tower is not None:
            raw = model.text_tower([data.texts[i] for i in b["tid"]])
        else:
            raw = emb[b["tid"]].to(device)
        img = model.image_features(x)
        txt = model.text_features(raw)
        scale = model.logit_scale.clamp(max=math.log(100)).exp()
        loss, parts = contrastive_loss(img, txt, torch.from_numpy(b["pos"]).to(device),
                                       torch.from_numpy(b["video"]).to(device), scale,
                                       intra_weight)
        if l2sp > 0 and anchor:
            loss = loss + l2sp * l2sp_penalty(model, anchor)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        hist["loss"].append(float(loss.detach()))
        hist["itc"].append(parts["itc"])
        hist["intra"].append(parts["intra"])
        if (step + 1) % max(steps // 5, 1) == 0:
            log.info("step %d/%d loss %.3f (itc %.3f intra %.3f)", step + 1, steps,
                     np.mean(hist["loss"][-20:]), np.mean(hist["itc"][-20:]),
                     np.mean(hist["intra"][-20:]))
        if on_step is not None:
            on_step(step + 1, model, opt, hist)
    hist["train_s"] = time.perf_counter() - t0
    model.eval()
    return hist
