"""Train the MobiFuse two-stage fusion network on simulated ToF + stereo scenes.

    python -m mobifuse.train --config configs/mobifuse/tiny.yaml [--set steps=300] [--out DIR]

Simulates (and caches) `train_scenes` + `val_scenes` seeded scenes, trains TwoStageFusionNet
with masked L1 + gradient loss on random crops, checkpoints every `ckpt_every` steps (a rerun
with the same --out resumes), and writes model.pt (weights + net config), metrics.json and the
resolved config.yaml atomically to the run directory.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mobifuse.config import TrainConfig
from mobifuse.data import build_dataset
from mobifuse.models import TwoStageFusionNet, fusion_loss
from shared.cli import parse_args, run
from shared.config import save_config, to_dict
from shared.io import Checkpointer, atomic_torch_save, atomic_write_json, make_run_dir
from shared.log import get_logger, progress
from shared.runtime import pick_device, set_seed

log = get_logger("mobifuse.train")

TRAIN_SEED0 = 10_000  # training scenes use seeds TRAIN_SEED0 + seed * 100_000 + i
VAL_SEED0 = 20_000


def scene_seeds(cfg: TrainConfig) -> tuple[list[int], list[int]]:
    base = cfg.seed * 100_000
    return ([base + TRAIN_SEED0 + i for i in range(cfg.train_scenes)],
            [base + VAL_SEED0 + i for i in range(cfg.val_scenes)])


def to_tensors(d: dict, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(geom (N, 4, h, w), err (N, C, h, w), gt (N, 1, h, w)) float tensors."""
    return (torch.from_numpy(d["geom"]).to(device), torch.from_numpy(d["err"]).to(device),
            torch.from_numpy(d["gt"][:, None]).to(device))


def _crops(geom, err, gt, n: int, size: int, gen: torch.Generator):
    """A batch of `n` random crops (with random horizontal flips) by advanced indexing."""
    N, _, h, w = geom.shape
    i = torch.randint(0, N, (n,), generator=gen)
    y0 = torch.randint(0, h - size + 1, (n,), generator=gen)
    x0 = torch.randint(0, w - size + 1, (n,), generator=gen)
    ar = torch.arange(size)
    flip = torch.rand(n, generator=gen) < 0.5
    cols = torch.where(flip[:, None], x0[:, None] + size - 1 - ar, x0[:, None] + ar)
    rows = y0[:, None] + ar

    def take(t):  # channels-last view, advanced indexing -> (n, size, size, C) -> NCHW
        return (t.permute(0, 2, 3, 1)[i[:, None, None], rows[:, :, None], cols[:, None, :]]
                .permute(0, 3, 1, 2).contiguous())

    return take(geom), take(err), take(gt)


@torch.no_grad()
def predict(model: TwoStageFusionNet, geom: torch.Tensor, err: torch.Tensor,
            batch: int = 8) -> np.ndarray:
    """Fused depth (N, h, w) float32 for whole frames."""
    model.eval()
    outs = [model(geom[i:i + batch], err[i:i + batch])["depth"][:, 0]
            for i in range(0, len(geom), batch)]
    return torch.cat(outs).cpu().numpy()


def train_fusion_net(cfg: TrainConfig, train: dict, val: dict | None = None,
                     run_dir: Path | None = None, desc: str = "train") -> tuple[
                         TwoStageFusionNet, dict]:
    """Train on the arrays of `build_dataset`; returns the model and {loss, val_mae, ...}."""
    torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)
    device = pick_device(cfg.device)
    model = TwoStageFusionNet(cfg.net).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)))
    gen = torch.Generator().manual_seed(cfg.seed)
    geom, err, gt = to_tensors(train)
    h, w = geom.shape[-2:]
    if cfg.crop > min(h, w):
        raise ValueError(f"crop {cfg.crop} larger than the work resolution {w}x{h}")
    ckpt = Checkpointer(run_dir) if run_dir is not None else None
    start, losses = 0, []
    state = ckpt.load() if ckpt else None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        gen.set_state(state["gen"])
        start, losses = state["step"], state["losses"]
        log.info("resumed from step %d", start)
    t0 = time.perf_counter()
    model.train()
    bar = progress(range(start, cfg.steps), desc=desc, initial=start, total=cfg.steps)
    for step in bar:
        g, e, y = (t.to(device) for t in _crops(geom, err, gt, cfg.batch_size, cfg.crop, gen))
        out = model(g, e)
        loss = fusion_loss(out, y, torch.ones_like(y), cfg.grad_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if ckpt and ((step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps):
            ckpt.save({"model": model.state_dict(), "opt": opt.state_dict(),
                       "sched": sched.state_dict(), "gen": gen.get_state(),
                       "step": step + 1, "losses": losses})
        if (step + 1) % 100 == 0:
            log.debug("step %d loss %.4f", step + 1, np.mean(losses[-100:]))
    metrics = {"final_loss": float(np.mean(losses[-50:])) if losses else float("nan"),
               "train_s": time.perf_counter() - t0, "steps": cfg.steps,
               "params": sum(p.numel() for p in model.parameters())}
    if val is not None:
        vg, ve, vy = to_tensors(val, device)
        pred = predict(model, vg, ve)
        metrics["val_mae"] = float(np.mean(np.abs(pred - vy[:, 0].cpu().numpy())))
    return model, metrics


def save_model(model: TwoStageFusionNet, path: str | Path) -> None:
    atomic_torch_save({"state_dict": model.state_dict(), "net": to_dict(model.cfg)}, path)


def load_model(path: str | Path) -> TwoStageFusionNet:
    """A model saved by `save_model`; a missing or corrupt file is a DataError."""
    from mobifuse.config import NetConfig
    from shared.config import from_dict
    from shared.errors import ConfigError, DataError
    from shared.validate import brief, check_state_dict, check_torch_file

    path = Path(path)
    if not path.is_file():
        raise DataError(f"model file not found: {path}")
    try:
        check_torch_file(path)
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, not a torch file, a pickle of foreign objects
        raise DataError(f"{path}: not a mobifuse model ({brief(e)})") from None
    if not isinstance(blob, dict) or not isinstance(blob.get("net"), dict) \
            or "state_dict" not in blob:
        raise DataError(f"{path}: not a mobifuse model (needs 'net' and 'state_dict')")
    net = dict(blob["net"])
    net.setdefault("snap_radius", 0)  # weights saved before the EdgeSnap stage existed
    try:
        net_cfg = from_dict(NetConfig, net)
    except ConfigError as e:
        raise DataError(f"{path}: model config {e}") from None
    with torch.device("meta"):  # shapes only: a corrupt config never allocates
        shape = TwoStageFusionNet(net_cfg)
    state = check_state_dict(blob["state_dict"], shape, str(path))
    model = TwoStageFusionNet(net_cfg)
    model.load_state_dict(state)
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(argv, TrainConfig, prog="mobifuse.train",
                           description=__doc__,
                           default_config="configs/mobifuse/tiny.yaml")
    if args.quick:
        cfg.train_scenes, cfg.val_scenes, cfg.steps = min(cfg.train_scenes, 24), 4, 100
    run_dir = make_run_dir(args.out, "mobifuse", "train")
    save_config(cfg, run_dir / "config.yaml")
    train_seeds, val_seeds = scene_seeds(cfg)
    log.info("simulating %d + %d scenes (cached)", len(train_seeds), len(val_seeds))
    train = build_dataset(train_seeds, cfg.sim, cfg.stereo, cfg.dei, desc="train scenes")
    val = build_dataset(val_seeds, cfg.sim, cfg.stereo, cfg.dei, desc="val scenes")
    model, metrics = train_fusion_net(cfg, train, val, run_dir)
    save_model(model, run_dir / "model.pt")
    atomic_write_json(run_dir / "metrics.json", metrics)
    log.info("val MAE %.4f m after %d steps; wrote %s", metrics["val_mae"], cfg.steps, run_dir)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
