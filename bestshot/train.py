"""`python -m bestshot.train`: train ShotVL-lite on generated human-motion video.

Generates (or reads from the cache) the training split, captions every frame (`text=base`:
visual content only; `stage`: + action stage; `shotvl`: + pose text), embeds the captions once
with the frozen MiniLM, and trains the vision tower and both projections with the contrastive
loss with intra-video hard negatives. `init=<run dir or weights file>` fine-tunes a trained
model (the ShotVL recipe: base first, then pose and stage text). Checkpoints every
`ckpt_every` steps; rerunning with the same --out resumes, under the same config but for
`RESUME_FREE` (else exit 2). Writes config.yaml, metrics.json,
model.safetensors.

`get_model(cfg)` is the library entry point of the bench: weights cached under a key derived
from the config, so each arm trains once.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bestshot.config import TrainConfig
from bestshot.contrastive import TrainData, fit
from bestshot.data import VideoSet, caption_frames, fps_mask, generate_split
from bestshot.models import (
    ShotVL,
    TextTower,
    load_model,
    prepare_frames,
    save_model,
    text_embeddings,
)
from shared.cache import cached_file
from shared.cli import parse_args, run
from shared.config import save_config, to_dict
from shared.errors import ConfigError, DataError
from shared.io import Checkpointer, atomic_write_json, check_resume, make_run_dir
from shared.log import get_logger
from shared.runtime import pick_device, set_seed

__all__ = ["training_data", "build_model", "train_model", "get_model", "main"]

log = get_logger("bestshot.train")
MODEL_FILE = "model.safetensors"
# what a resumed run may change: checkpoint frequency only (`steps` sets the cosine schedule)
RESUME_FREE = ("ckpt_every",)


def training_data(cfg: TrainConfig) -> tuple[TrainData, VideoSet, list[np.ndarray]]:
    """(TrainData with embedded captions, the split, posecode frequencies)."""
    vs = generate_split(cfg.video)
    pixels = np.stack([prepare_frames(f, cfg.model) for f in vs.frames]).astype(np.float16)
    data, freqs = caption_frames(vs, cfg.caption, cfg.text, cfg.seed, pixels=pixels)
    if cfg.caption.fps_frames:
        data.allowed = fps_mask(vs, cfg.caption.fps_frames, cfg.seed)
    t0 = time.perf_counter()
    data.text_emb = text_embeddings(data.texts, cfg.model.max_text_tokens)
    log.info("%d videos x %d frames, %d captions (embedded in %.1f s)", *vs.frames.shape[:2],
             len(data.texts), time.perf_counter() - t0)
    return data, vs, freqs


def _init_path(init: str) -> Path:
    p = Path(init)
    p = p / MODEL_FILE if p.is_dir() else p
    if not p.is_file():
        raise ConfigError(f"'init': no weights at {init}")
    return p


def build_model(cfg: TrainConfig) -> ShotVL:
    """A fresh ShotVL (seeded), or the model of `cfg.init` (its model config must match)."""
    if cfg.init:
        model, info = load_model(_init_path(cfg.init))
        if to_dict(model.cfg) != to_dict(cfg.model):
            raise ConfigError(f"'init': {cfg.init} was trained with another model config")
        return model
    set_seed(cfg.seed)
    tower = TextTower(cfg.model.lora_r, cfg.model.max_text_tokens) if cfg.model.lora_r else None
    return ShotVL(cfg.model, tower)


def train_model(cfg: TrainConfig, run_dir: Path | None = None,
                data: TrainData | None = None) -> tuple[ShotVL, dict]:
    """Train (resuming from run_dir's checkpoint when there is one); -> (model, history)."""
    device = pick_device(cfg.device)
    if data is None:
        data = training_data(cfg)[0]
    model = build_model(cfg)
    # L2-SP anchors at the init weights, also when resuming from a later checkpoint
    anchor = ({k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad}
              if cfg.l2sp > 0 and cfg.init else None)
    ck = Checkpointer(run_dir) if run_dir is not None else None
    state = ck.load() if ck else None
    start, opt_state = 0, None
    if state is not None:
        check_resume(run_dir, cfg, RESUME_FREE, saved=state["config"], resuming=True)
        model.load_state_dict(state["model"])
        start, opt_state = state["step"], state["opt"]
        log.info("resuming from step %d", start)

    def on_step(step: int, m: ShotVL, opt, hist: dict) -> None:
        if ck is not None and (step % cfg.ckpt_every == 0 or step == cfg.steps):
            ck.save({"model": m.state_dict(), "opt": opt.state_dict(), "step": step,
                     "config": to_dict(cfg)})

    hist = fit(model, data, cfg.steps, cfg.videos_per_batch, cfg.frames_per_video, cfg.lr,
               cfg.weight_decay, cfg.intra_weight, cfg.seed, start, opt_state, on_step, device,
               cfg.l2sp, anchor)
    hist["n_params_trained"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return model.cpu().eval(), hist


def _model_key(cfg: TrainConfig) -> dict:
    d = to_dict(cfg)
    for k in ("device", "ckpt_every"):
        d.pop(k)
    if not d["l2sp"]:  # off: the same key as a config without the option
        d.pop("l2sp")
    return d


def get_model(cfg: TrainConfig, data: TrainData | None = None) -> tuple[ShotVL, dict]:
    """(model, info) for `cfg`, trained once and cached (`shared.cache.cached_file`)."""

    def build(tmp: Path) -> None:
        model, hist = train_model(cfg, data=data)
        save_model(model, tmp, {"hist": _summary(hist)})

    path = model_file(cfg, build)
    model, info = load_model(path)
    return model, {**info, "path": str(path)}


def model_file(cfg: TrainConfig, build=None) -> Path:
    def missing(tmp):
        raise DataError("no cached weights for this config")

    return cached_file("bestshot-shotvl", _model_key(cfg), build or missing,
                       suffix=".safetensors", version=1)


def _summary(hist: dict) -> dict:
    out = {k: v for k, v in hist.items() if not isinstance(v, list)}
    for k in ("loss", "itc", "intra"):
        if hist.get(k):
            out[f"final_{k}"] = float(np.mean(hist[k][-20:]))
    return out


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(
        argv, TrainConfig, prog="bestshot.train", quick={"steps": 150, "video.n_videos": 24},
        description="Train ShotVL-lite (frozen MiniLM text tower, small ResNet vision tower) with "
                    "contrastive loss and intra-video hard negatives on generated human-motion "
                    "video; text=base|stage|shotvl picks the captions, init= fine-tunes. Rerun "
                    "with the same --out to resume.",
        default_config="configs/bestshot/default.yaml")
    if args.out is not None:  # an existing run: before the data and its config.yaml
        check_resume(args.out, cfg, RESUME_FREE)
    if cfg.init:
        _init_path(cfg.init)  # checked before the run dir is made
    pick_device(cfg.device)
    data = training_data(cfg)[0]
    run_dir = make_run_dir(args.out, "bestshot", "train")
    log.info("run dir %s", run_dir)
    save_config(cfg, run_dir / "config.yaml")
    model, hist = train_model(cfg, run_dir, data)
    save_model(model, run_dir / MODEL_FILE, {"hist": _summary(hist)})
    atomic_write_json(run_dir / "metrics.json", _summary(hist))
    log.info("final loss %.3f; wrote %s", _summary(hist).get("final_loss", float("nan")),
             run_dir)
    return 0


if __name__ == "__main__":
    run(main)
