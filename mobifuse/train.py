"""Train the MobiFuse two-stage fusion network on simulated ToF + stereo scenes.

    python -m mobifuse.train --config configs/mobifuse/tiny.yaml [--set steps=300] [--out DIR]

Simulates (and caches) `train_scenes` + `val_scenes` seeded scenes (each on its own rig drawn
from `rigs` when set), trains TwoStageFusionNet with masked L1 + gradient loss on random
crops, checkpoints every `ckpt_every` steps (a rerun with the same --out resumes, under the
same config but for `RESUME_FREE`: `steps` sets the cosine schedule), and writes
model.safetensors (weights + net config + the DEI config and command it was trained with),
metrics.json and the resolved config.yaml atomically to the run directory.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mobifuse.api import run_net
from mobifuse.config import TrainConfig
from mobifuse.data import build_dataset, build_frames
from mobifuse.dei import DEI_CHANNELS
from mobifuse.models import (
    MODEL_FILE,
    N_ERR,
    TwoStageFusionNet,
    camera_maps,
    fusion_loss,
    low_frequency_loss,
    save_model,
)
from shared.cli import parse_args, run
from shared.config import save_config, to_dict
from shared.io import Checkpointer, atomic_write_json, check_resume, make_run_dir
from shared.log import get_logger, progress
from shared.runtime import pick_device, set_seed

log = get_logger("mobifuse.train")

TRAIN_SEED0 = 10_000  # training scenes use seeds TRAIN_SEED0 + seed * 100_000 + i
VAL_SEED0 = 20_000
# what a resumed run may change: none of these enters a training step (val scenes are scored
# after the last step)
RESUME_FREE = ("ckpt_every", "threads", "val_scenes")


def scene_seeds(cfg: TrainConfig) -> tuple[list[int], list[int]]:
    base = cfg.seed * 100_000
    return ([base + TRAIN_SEED0 + i for i in range(cfg.train_scenes)],
            [base + VAL_SEED0 + i for i in range(cfg.val_scenes)])


def to_tensors(d: dict, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(geom (N, 4, h, w), err (N, C, h, w), gt (N, 1, h, w)) float tensors."""
    return (torch.from_numpy(d["geom"]).to(device), torch.from_numpy(d["err"]).to(device),
            torch.from_numpy(d["gt"][:, None]).to(device))


def frame_camera(f: dict, net_cfg) -> np.ndarray:
    """(C, h, w) `models.camera_maps` of a net of `net_cfg` for a frame that keeps its rig
    (`build_frames`: rig = [baseline, focal px, width px, height px, ...] at full resolution;
    a frame without it, as `predict_frames` builds from stacked arrays, is refused when the
    net takes camera maps)."""
    h, w = f["err"].shape[-2:]
    if not (net_cfg.ray_channels or net_cfg.fov_channels):
        return np.zeros((0, h, w), np.float32)
    if "rig" not in f:
        raise ValueError("a net with ray_channels or fov_channels needs frames that keep their "
                         "rig (`build_frames`), or the err maps with the camera maps appended")
    return camera_maps(net_cfg, h, w, f["rig"][1], f["rig"][2], f["rig"][3])


def with_camera(f: dict, net_cfg) -> np.ndarray:
    """The frame's `err` as a net of `net_cfg` takes it: + `frame_camera`."""
    if not (net_cfg.ray_channels or net_cfg.fov_channels):
        return f["err"]
    return np.concatenate([f["err"], frame_camera(f, net_cfg)]).astype(np.float32)


def frame_tensors(data, net_cfg=None) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per frame (geom (4, h, w), err (C, h, w), gt (1, h, w)) of a `build_dataset` dict
    (stacked) or a `build_frames` list (frames of any size); err as a net of `net_cfg` takes
    it (`with_camera`)."""
    cam = net_cfg is not None and (net_cfg.ray_channels or net_cfg.fov_channels)
    if isinstance(data, dict):
        if cam:
            raise ValueError("a net with ray_channels or fov_channels trains on `build_frames` "
                             "frames")
        g, e, y = to_tensors(data)
        return list(zip(g, e, y))
    return [(torch.from_numpy(f["geom"]),
             torch.from_numpy(with_camera(f, net_cfg) if cam else f["err"]),
             torch.from_numpy(f["gt"][None])) for f in data]


ST_SIGMA_CHANNEL = 1 + DEI_CHANNELS.index("log_sigma_st")  # in err: grey, then the DEI maps
MPI_CHANNEL = 1 + DEI_CHANNELS.index("mpi")


def training_loss(cfg: TrainConfig, out: dict, geom: torch.Tensor, err: torch.Tensor,
                  gt: torch.Tensor) -> torch.Tensor:
    """`fusion_loss`, plus `cfg.lf_weight` x the low-frequency residual term on ToF-valid
    pixels whose multipath channel is below `cfg.lf_mpi_max` (`low_frequency_loss`).
    geom (B, 4, h, w), err (B, C, h, w), gt (B, 1, h, w)."""
    loss = fusion_loss(out, gt, torch.ones_like(gt), cfg.grad_weight)
    if cfg.lf_weight > 0:
        w = ((geom[:, 1:2] > 0.5) & (err[:, MPI_CHANNEL:MPI_CHANNEL + 1] < cfg.lf_mpi_max))
        target = gt if cfg.lf_target == "gt" else geom[:, 0:1]
        loss = loss + cfg.lf_weight * low_frequency_loss(out["depth"], target,
                                                         w.to(gt.dtype), cfg.lf_block)
    return loss


def stereo_scaled(geom: torch.Tensor, err: torch.Tensor, gt: torch.Tensor,
                  alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The stereo input of a crop as a rig with alpha times the f B would give it.

    geom (B, 4, h, w), err (B, C, h, w), gt (B, 1, h, w) (depths > 0), alpha (B,) in (0, 1].
    Depth is f B / (d + doffs), so the same matching (the same disparity errors, holes, LR
    check, uniqueness, cost curvature and texture) on a rig with f B / alpha has the inverse-
    depth error alpha (1 / D_st - 1 / Z): 1 / D_st -> 1 / Z + alpha (1 / D_st - 1 / Z), exactly.
    A gross mismatch stays gross, a sub-pixel one becomes alpha times smaller in depth. The DEI
    sigma (Z_ref^2 sigma_d / (f B)) scales by alpha: log sigma_st -> log sigma_st + log alpha.
    The ToF and every other channel are unchanged."""
    a = alpha.view(-1, 1, 1, 1).to(geom.dtype)
    g, e = geom.clone(), err.clone()
    inv_z = 1.0 / gt.clamp_min(1e-3)
    inv_st = inv_z + a * (1.0 / geom[:, 2:3].clamp_min(1e-3) - inv_z)
    g[:, 2:3] = 1.0 / inv_st.clamp_min(1e-3)
    e[:, ST_SIGMA_CHANNEL:ST_SIGMA_CHANNEL + 1] = err[:, ST_SIGMA_CHANNEL:ST_SIGMA_CHANNEL + 1] \
        + torch.log(a)
    return g, e


def _crops(frames, n: int, size: int, gen: torch.Generator, scale_prob: float = 0.0,
           scale_min: float = 1.0, rays: bool = False):
    """A batch of `n` random crops (with random horizontal flips) of random frames; a share
    `scale_prob` of them with the stereo error scaled by alpha, log-uniform in [scale_min, 1]
    (`stereo_scaled`). `rays`: err's first channels after the N_ERR maps are the two ray maps, and
    a flipped crop gets the mirrored camera's u map (-u, `models.ray_maps`); the field-of-view
    maps after them are the same under a flip."""
    i = torch.randint(0, len(frames), (n,), generator=gen)
    u = torch.rand(n, 2, generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    if scale_prob > 0:  # drawn only when on: an unaugmented run keeps its random stream
        scaled = torch.rand(n, generator=gen) < scale_prob
        alpha = torch.where(scaled, torch.exp(torch.rand(n, generator=gen)
                                              * float(np.log(scale_min))), torch.ones(n))
    out: list[list[torch.Tensor]] = [[], [], []]
    for b in range(n):  # one slice per crop
        g, e, y = frames[int(i[b])]
        h, w = g.shape[-2:]
        y0, x0 = int(u[b, 0] * (h - size + 1)), int(u[b, 1] * (w - size + 1))
        for lst, t in zip(out, (g, e, y)):
            c = t[:, y0:y0 + size, x0:x0 + size]
            lst.append(c.flip(-1) if flip[b] else c)
        if rays and flip[b]:
            out[1][-1] = torch.cat([out[1][-1][:N_ERR], -out[1][-1][N_ERR:N_ERR + 1],
                                    out[1][-1][N_ERR + 1:]])
    g, e, y = (torch.stack(lst) for lst in out)
    if scale_prob > 0:
        g, e = stereo_scaled(g, e, y, alpha)
    return g, e, y


@torch.no_grad()
def predict(model: TwoStageFusionNet, geom: torch.Tensor, err: torch.Tensor,
            batch: int = 8) -> np.ndarray:
    """Fused depth (N, h, w) float32 for whole frames."""
    model.eval()
    outs = [model(geom[i:i + batch], err[i:i + batch])["depth"][:, 0]
            for i in range(0, len(geom), batch)]
    return torch.cat(outs).cpu().numpy()


def predict_frames(model: TwoStageFusionNet, data) -> list[np.ndarray]:
    """Fused depth (h, w) per frame of a `build_frames` list (or a stacked dataset)."""
    frames = data if isinstance(data, list) else [
        {"geom": g, "err": e} for g, e in zip(data["geom"], data["err"])]
    return [run_net(model, f["geom"], with_camera(f, model.cfg)) for f in frames]


def train_fusion_net(cfg: TrainConfig, train, val=None,
                     run_dir: Path | None = None, desc: str = "train") -> tuple[
                         TwoStageFusionNet, dict]:
    """Train on `build_dataset`'s arrays or `build_frames`' list; returns the model and
    {loss, val_mae, ...}."""
    torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)
    device = pick_device(cfg.device)
    model = TwoStageFusionNet(cfg.net).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)))
    gen = torch.Generator().manual_seed(cfg.seed)
    frames = frame_tensors(train, cfg.net)
    h = min(min(f[0].shape[-2:]) for f in frames)
    if cfg.crop > h:
        raise ValueError(f"crop {cfg.crop} larger than the smallest work resolution side {h}")
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
        g, e, y = (t.to(device) for t in _crops(frames, cfg.batch_size, cfg.crop, gen,
                                                         cfg.stereo_scale_prob,
                                                         cfg.stereo_scale_min,
                                                         cfg.net.ray_channels))
        out = model(g, e)
        loss = training_loss(cfg, out, g, e, y)
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
        gts = [f["gt"] for f in val] if isinstance(val, list) else list(val["gt"])
        maes = [np.mean(np.abs(p - g)) for p, g in zip(predict_frames(model.cpu(), val), gts)]
        metrics["val_mae"] = float(np.mean(maes))
    return model, metrics


def training_data(cfg: TrainConfig, seeds: list[int], desc: str):
    """Stacked scenes of the fixed rig `cfg.sim`, or frames on rigs drawn from `cfg.rigs`."""
    if cfg.rigs is None:
        return build_dataset(seeds, cfg.sim, cfg.stereo, cfg.dei, desc=desc)
    return build_frames(seeds, cfg.sim, cfg.stereo, cfg.dei, cfg.rigs, desc=desc)


def model_meta(cfg: TrainConfig, command: str) -> dict:
    """What a saved net was trained with: the DEI config `fuse` must reuse, and how."""
    return {"dei": to_dict(cfg.dei), "stereo": to_dict(cfg.stereo), "command": command,
            "rigs": to_dict(cfg.rigs) if cfg.rigs else None}


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(argv, TrainConfig, prog="mobifuse.train",
                           quick={"train_scenes": 24, "val_scenes": 4, "steps": 100},
                           description=__doc__,
                           default_config="configs/mobifuse/tiny.yaml")
    if args.out is not None:  # an existing run: before its config.yaml and the scenes
        check_resume(args.out, cfg, RESUME_FREE)
    run_dir = make_run_dir(args.out, "mobifuse", "train")
    save_config(cfg, run_dir / "config.yaml")
    train_seeds, val_seeds = scene_seeds(cfg)
    log.info("simulating %d + %d scenes (cached)", len(train_seeds), len(val_seeds))
    train = training_data(cfg, train_seeds, "train scenes")
    val = training_data(cfg, val_seeds, "val scenes")
    model, metrics = train_fusion_net(cfg, train, val, run_dir)
    save_model(model, run_dir / MODEL_FILE,
               model_meta(cfg, "python -m mobifuse.train " + " ".join(argv or sys.argv[1:])))
    atomic_write_json(run_dir / "metrics.json", metrics)
    log.info("val MAE %.4f m after %d steps; wrote %s", metrics["val_mae"], cfg.steps, run_dir)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
