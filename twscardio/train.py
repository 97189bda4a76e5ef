"""`python -m twscardio.train`: train the BCG->SCG network on simulated subjects.

Reads a typed config (configs/twscardio/*.yaml, `--set key=value` overrides), simulates the
training and validation subjects (disjoint), trains `BCG2SCGNet` with the region-focused loss
(`--set loss.kind=l1` for the plain-L1 ablation), checkpoints atomically every `ckpt_every`
steps (rerun with the same --out to resume, under the same config but for `RESUME_FREE`:
`steps` sets the cosine schedule) and writes config.yaml, metrics.json, model.safetensors.

`get_model(cfg)` is the library entry point: trained weights are cached under a key derived
from the config (`shared.cache.cached_file`), so the bench trains each arm once.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from shared.cache import cached_arrays, cached_file
from shared.cli import parse_args, run
from shared.config import save_config, to_dict
from shared.errors import DataError
from shared.io import Checkpointer, atomic_write_json, check_resume, make_run_dir
from shared.log import get_logger, progress
from shared.runtime import pick_device, set_seed
from twscardio.beatsync import TimingModel, fit_timing, load_timing, save_timing
from twscardio.config import REST_SHARE, SimConfig, TrainConfig
from twscardio.data import build_windows, timing_dataset
from twscardio.models import (
    MODEL_FILE,
    BCG2SCGNet,
    NetEnsemble,
    RegionFocusedLoss,
    build_model,
    load_model,
    save_model,
)
from twscardio.pipeline import N_FEATURES, N_FEATURES_PRIOR, normalise_windows

__all__ = ["train_model", "train_networks", "get_model", "model_file", "model_files",
           "MEMBER_SEED_STRIDE", "training_view", "windows",
           "validation_windows", "VAL_DURATION_S", "timing_block", "timing_data",
           "get_timing_model", "resume_free",
           "timing_file", "main"]

log = get_logger("twscardio.train")
DATA_VERSION = 5
# member k of an ensemble (`NetConfig.members`) seeds its initialisation and crop draws with
# seed + MEMBER_SEED_STRIDE * k; member 0 is the single network
MEMBER_SEED_STRIDE = 1009


def _view_dict(cfg: TrainConfig) -> dict:
    """The training view as a dict; the pica options are left out while fusion.method is
    "global" (unused there), so keys made before those options existed still hold, and so
    is the fusion fallback (`pipeline.fused_with_fallback`): training data and timing data
    are built with `fusion.fuse` alone, so it does not change them. The cross-bud weight
    (`fusion.cross_bud`) is left out while 0 (off: the fusion is the one the keys were made
    with), its high-pass (`fusion.cross_bud_hp_hz`) while either is 0; any other value changes
    the fused signal and so the keys."""
    d = to_dict(training_view(cfg))
    if cfg.prior == "none":  # the 17 channels alone: the keys made before the option existed
        d.pop("prior")
    if not cfg.net.residual_prior:  # the network alone: the keys made before the option existed
        d["net"].pop("residual_prior")
    if cfg.net.members == 1:  # one network: the keys made before the option existed
        d["net"].pop("members")
    for k in ("refit_below_sqi", "refit_max_rotating", "refit_check"):
        d["fusion"].pop(k)
    if cfg.rest_share == REST_SHARE:  # the share the keys were made with
        d.pop("rest_share")
    if cfg.loss.err == "l1" or cfg.loss.kind == "l1":  # as before the option (unused by kind l1)
        d["loss"].pop("err")
    if cfg.loss.correction_l1 == 0:  # off: the keys made before the option
        d["loss"].pop("correction_l1")
    if cfg.loss.local_r_weight == 0 or cfg.loss.kind == "l1":  # unused: the keys made before it
        for k in ("local_r_weight", "local_r_s", "local_r_hop_s"):
            d["loss"].pop(k)
    if cfg.fusion.cross_bud == 0:
        d["fusion"].pop("cross_bud")
    if cfg.fusion.cross_bud == 0 or cfg.fusion.cross_bud_hp_hz == 0:  # unused / as before it
        d["fusion"].pop("cross_bud_hp_hz")
    if cfg.fusion.method == "global":
        for k in ("method", "pica_context_s", "pica_period", "pica_shrink"):
            d["fusion"].pop(k)
    return d


def _data_key(cfg: TrainConfig, split: str, n: int) -> dict:
    d = _view_dict(cfg)
    keep = ("seed", "sim", "enhance", "fusion", "loss", "recordings_per_subject", "fs_choices",
            "max_loss", "max_motion", "window_s", "hop_s")
    key = {"split": split, "n": n, **{k: d[k] for k in keep}}
    if "rest_share" in d:  # another share than the keys were made with
        key["rest_share"] = d["rest_share"]
    key["loss"] = {k: v for k, v in key["loss"].items()  # the loss terms do not change the data
                   if not k.startswith("local_r") and k not in ("err", "correction_l1")}
    if cfg.prior == "sync":  # the prior channel: its timing model and template settings
        key["prior"] = {"timing": _timing_key(cfg), "first": _first_subject(cfg, split)}
    return key


def _first_subject(cfg: TrainConfig, split: str) -> int:
    """The first subject of a split the network trains on: with the prior, training subjects
    follow the timing model's, so the network never trains on a subject the timing model was
    fitted on. (Indices from 10,000 share seeds with the next `seed`'s subjects,
    `data.subject_seed`: with the prior, runs of different `seed` are not disjoint.)"""
    return sum(cfg.sync.blocks) if cfg.prior == "sync" and split == "train" else 0


def windows(cfg: TrainConfig, split: str, n_subjects: int) -> dict[str, np.ndarray]:
    """Cached simulated windows of a split: x (N, 17, L) (18 with `cfg.prior` "sync"),
    y (N, L), w (N, L). The prior depends on code the key does not hold (`pipeline.J_*`, the
    J-peak and template code): a change there needs a DATA_VERSION bump, as any change to the
    simulation or enhancement code does."""
    def build():  # C-contiguous, as read back from the cache (numpy's sums, and so the
        # normalised windows, round by memory layout: a first run would train on other bits)
        timing = get_timing_model(cfg) if cfg.prior == "sync" else None
        data = build_windows(cfg, split, n_subjects, timing, _first_subject(cfg, split))
        return {k: np.ascontiguousarray(v) for k, v in data.items()}

    return cached_arrays("twscardio-windows", _data_key(cfg, split, n_subjects), build,
                         version=DATA_VERSION)


# validation recordings last this long whatever the training recordings' length
# (sim.duration_s), so the validation window r of networks trained on 60-s or 10-s recordings
# is read on the same windows (4 subjects x 60 s: 92 windows)
VAL_DURATION_S = 60.0


def validation_windows(cfg: TrainConfig, n_subjects: int = 4) -> dict[str, np.ndarray]:
    """`windows` of the validation split, its recordings VAL_DURATION_S long."""
    return windows(replace(cfg, sim=replace(cfg.sim, duration_s=VAL_DURATION_S)), "val",
                   n_subjects)


def _evaluate(model: BCG2SCGNet | NetEnsemble, data: dict, loss_fn, batch: int = 64) -> dict:
    """Loss and median window r on `data`, in eval mode; the model's mode is restored."""
    was_training = model.training
    model.eval()
    x = torch.from_numpy(normalise_windows(data["x"])).float()
    y, w = torch.from_numpy(data["y"]), torch.from_numpy(data["w"])
    losses, rs = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = x[i:i + batch]
            p = model(xb)
            losses.append(float(loss_fn(p, y[i:i + batch], w[i:i + batch], xb[:, -1])) * len(p))
            pc, tc = p - p.mean(1, keepdim=True), y[i:i + batch] - y[i:i + batch].mean(1, True)
            rs.append(((pc * tc).sum(1) / (pc.norm(dim=1) * tc.norm(dim=1) + 1e-8)).numpy())
    model.train(was_training)
    return {"loss": sum(losses) / len(x), "window_r_median": float(np.median(np.concatenate(rs)))}


def train_model(cfg: TrainConfig, run_dir=None, n_val_subjects: int = 4, member: int = 0
                ) -> tuple[BCG2SCGNet, dict]:
    """Train one network on cfg.n_subjects simulated subjects: ensemble member `member`
    (seeded seed + MEMBER_SEED_STRIDE * member; 0 = the single network; its checkpoint in
    run_dir is ckpt.pt for member 0, ckpt_member<k>.pt else); -> (model on CPU, history)."""
    seed = cfg.seed + MEMBER_SEED_STRIDE * member
    torch.set_num_threads(max(1, torch.get_num_threads()))
    device = pick_device(cfg.device)
    tr = windows(cfg, "train", cfg.n_subjects)
    va = validation_windows(cfg, n_val_subjects)
    log.info("train windows %d, val windows %d (%s loss)", len(tr["x"]), len(va["x"]),
             cfg.loss.kind)
    # seeded after the data: simulating windows that are not cached yet draws from the global
    # generators, and the network must not depend on whether they were
    set_seed(seed)
    model = build_model(N_FEATURES_PRIOR if cfg.prior == "sync" else N_FEATURES,
                        replace(cfg.net, members=1)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * s / cfg.steps)))
    loss_fn = RegionFocusedLoss(cfg.loss, cfg.enhance.fs_out)
    ck = (Checkpointer(run_dir, "ckpt" if member == 0 else f"ckpt_member{member}")
          if run_dir is not None else None)
    step, hist = 0, {"loss": []}
    state = ck.load() if ck else None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step, hist = state["step"], state["hist"]
        log.info("resumed from step %d", step)
    x_all = torch.from_numpy(normalise_windows(tr["x"])).float()
    y_all, w_all = torch.from_numpy(tr["y"]), torch.from_numpy(tr["w"])
    start = step
    gen = np.random.default_rng(seed + start)
    L = x_all.shape[-1]
    crop = min(int(round(cfg.crop_s * cfg.enhance.fs_out)), L)
    t0 = time.perf_counter()
    model.train()
    desc = (f"train ({cfg.loss.kind})" if cfg.net.members == 1
            else f"train ({cfg.loss.kind}, member {member + 1}/{cfg.net.members})")
    for step in progress(range(start, cfg.steps), desc=desc,
                         initial=start, total=cfg.steps):
        b = gen.integers(0, len(x_all), cfg.batch_size)
        o = int(gen.integers(0, L - crop + 1))
        xb = x_all[b, :, o:o + crop].to(device)
        yb, wb = y_all[b, o:o + crop].to(device), w_all[b, o:o + crop].to(device)
        loss = loss_fn(model(xb), yb, wb, xb[:, -1])  # the last channel: the prior, if any
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        hist["loss"].append(float(loss.detach()))
        if ck and (step + 1) % cfg.ckpt_every == 0:
            ck.save({"model": model.state_dict(), "opt": opt.state_dict(),
                     "sched": sched.state_dict(), "step": step + 1, "hist": hist})
        if (step + 1) % max(cfg.steps // 5, 1) == 0:
            log.info("step %d/%d loss %.4f", step + 1, cfg.steps,
                     float(np.mean(hist["loss"][-50:])))
    if ck and start < cfg.steps:
        ck.save({"model": model.state_dict(), "opt": opt.state_dict(),
                 "sched": sched.state_dict(), "step": cfg.steps, "hist": hist})
    hist["train_s"] = time.perf_counter() - t0
    hist["val"] = _evaluate(model, {k: v for k, v in va.items()}, loss_fn)
    hist["n_params"] = sum(p.numel() for p in model.parameters())
    return model.cpu().eval(), hist


def train_networks(cfg: TrainConfig, run_dir=None, n_val_subjects: int = 4
                   ) -> tuple[BCG2SCGNet | NetEnsemble, dict]:
    """`train_model` for each of cfg.net.members networks (one after the other, each resumable
    from its own checkpoint); -> (the network or their `NetEnsemble`, history: the single
    network's, or `ensemble_history` of the members')."""
    if cfg.net.members == 1:
        return train_model(cfg, run_dir, n_val_subjects)
    nets, hists = zip(*(train_model(cfg, run_dir, n_val_subjects, k)
                        for k in range(cfg.net.members)))
    model = NetEnsemble(list(nets)).eval()
    return model, ensemble_history(model, list(hists), cfg, n_val_subjects)


def ensemble_history(model: NetEnsemble, hists: list[dict], cfg: TrainConfig,
                     n_val_subjects: int = 4) -> dict:
    """An ensemble's history: {"members": each member's history less its loss curve, plus its
    final loss (mean of its last 50 steps), "loss": the members' mean loss per step, "val": the
    ensemble's own validation figures (`_evaluate` on the validation windows)}."""
    members = [{k: v for k, v in h.items() if k != "loss"}
               | {"final_loss": float(np.mean(h.get("loss", [np.nan])[-50:]))} for h in hists]
    n = min(len(h.get("loss", [])) for h in hists)
    curve = np.mean([h["loss"][:n] for h in hists], axis=0).tolist() if n else []
    va = validation_windows(cfg, n_val_subjects)
    val = _evaluate(model, va, RegionFocusedLoss(cfg.loss, cfg.enhance.fs_out))
    return {"members": members, "loss": curve, "val": val}


def training_view(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with the per-recording conditions that training draws at random (rate, loss,
    burst, packet size, motion) reset to their defaults: they do not change the trained model,
    so an evaluation setting (`--set sim.fs_in=25`) reuses the cached weights."""
    d = SimConfig()
    chan = replace(cfg.sim.channel, loss=d.channel.loss, burst=d.channel.burst,
                   samples_per_packet=d.channel.samples_per_packet)
    sim = replace(cfg.sim, fs_in=d.fs_in, motion_level=d.motion_level, channel=chan)
    return replace(cfg, sim=sim)


# trained weights shipped with the package (the bench's --quick arms), named by cache key;
# refresh with `python -m twscardio.experiments.ship_weights` after changing the training
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


# what a resumed run may change: what `_model_key` and `training_view` leave out (checkpoint
# frequency, the quality and beat-sync stages, the per-recording conditions training draws);
# `resume_free` drops "sync" for a network with the prior
RESUME_FREE = ("ckpt_every", "quality", "sync", "sim.fs_in", "sim.motion_level",
               "sim.channel.loss", "sim.channel.burst", "sim.channel.samples_per_packet")


def resume_free(cfg: TrainConfig) -> tuple[str, ...]:
    """The config keys a resumed run of `cfg` may change: RESUME_FREE, less "sync" when the
    network takes the beat-synchronous prior (its timing model and template shape the input)."""
    return RESUME_FREE if cfg.prior == "none" else tuple(k for k in RESUME_FREE if k != "sync")


def _model_key(cfg: TrainConfig, member: int = 0) -> dict:
    """The cache key of one network: member `member` of cfg's ensemble (0: the network of
    cfg with members 1, whose key is the one made before ensembles existed)."""
    d = _view_dict(replace(cfg, net=replace(cfg.net, members=1)))
    for k in ("device", "ckpt_every", "quality"):  # do not change the trained weights
        d.pop(k)
    if cfg.prior == "sync":  # the prior's timing model (and template) shape the input
        d["sync"] = _timing_key(cfg)
    else:
        d.pop("sync")
    if member:
        d["member"] = member
    return d


def model_file(cfg: TrainConfig, build=None, member: int = 0) -> Path:
    """The weights file of member `member` of `cfg`'s network(s): shipped, cached, or (with
    `build`) trained now."""
    def missing(tmp):
        raise DataError(f"no trained weights for this config (train with get_model): {tmp}")

    return cached_file("twscardio-bcg2scg", _model_key(cfg, member), build or missing,
                       suffix=".safetensors", version=5, shipped=WEIGHTS_DIR)


def model_files(cfg: TrainConfig) -> list[Path]:
    """The weights files of all cfg.net.members networks (they must exist)."""
    return [model_file(cfg, member=k) for k in range(cfg.net.members)]


def get_model(cfg: TrainConfig) -> BCG2SCGNet | NetEnsemble:
    """Trained weights for `cfg`, from the cache when present (trained once otherwise); with
    net.members > 1 each member is cached on its own and the members are averaged."""
    one = replace(cfg.net, members=1)

    def load(k):
        def build(tmp):
            model, hist = train_model(training_view(cfg), member=k)
            save_model(model, one, tmp, {"hist": _jsonable(hist)})

        return load_model(model_file(cfg, build, k))

    loaded = [load(k) for k in range(cfg.net.members)]
    if cfg.net.members == 1:
        model, info = loaded[0]
        model.hist = info.get("hist", {})  # type: ignore[attr-defined]
    else:
        model = NetEnsemble([m for m, _ in loaded]).eval()
        model.hist = ensemble_history(  # type: ignore[attr-defined]
            model, [i.get("hist", {}) for _, i in loaded], training_view(cfg))
    if cfg.prior == "sync":  # `pipeline.network_input` renders the prior channel with them
        model.timing = get_timing_model(cfg)  # type: ignore[attr-defined]
        model.prior_sync = cfg.sync  # type: ignore[attr-defined]
    return model


def _timing_key(cfg: TrainConfig) -> dict:
    d = _view_dict(cfg)
    keep = ("seed", "sim", "enhance", "fusion", "sync", "fs_choices", "max_loss")
    d = {k: d[k] for k in keep}
    d["sim"].pop("duration_s")  # the timing data's recordings last sync.duration_s
    return d


def timing_block(cfg: TrainConfig, first: int, n: int) -> dict[str, np.ndarray]:
    """Cached `data.timing_dataset` of training-family subjects first..first+n-1: one block of
    cfg.sync.blocks (the key holds the block and what shapes its rows, not the other blocks or
    the model's own settings: members, width, epochs, blur)."""
    key = _timing_key(cfg)
    key["sync"] = {k: key["sync"][k] for k in ("pre_s", "post_s", "duration_s")}
    return cached_arrays("twscardio-timing-block", {**key, "first": first, "n": n},
                         lambda: timing_dataset(cfg, "train", n, first))


def timing_data(cfg: TrainConfig) -> dict[str, np.ndarray]:
    """The timing model's data: `timing_block` of each block of cfg.sync.blocks, consecutive
    subjects, concatenated (layouts that share leading blocks share their data)."""
    starts = np.cumsum([0, *cfg.sync.blocks[:-1]])
    parts = [timing_block(cfg, int(f), int(n)) for f, n in zip(starts, cfg.sync.blocks)]
    return {k: np.concatenate([p[k] for p in parts]) for k in ("X", "Y")}


def get_timing_model(cfg: TrainConfig) -> TimingModel:
    """The beat-synchronous SCG's timing model (arm e) for `cfg`: shipped, cached, or trained
    now on the cfg.sync.blocks training-family recordings (~2 CPU-min per 3000 subjects)."""

    def build(tmp):
        log.info("timing model: simulating %d training subjects (cached), fitting %d MLPs",
                 sum(cfg.sync.blocks), cfg.sync.members)
        data = timing_data(cfg)
        t0 = time.perf_counter()
        s = cfg.sync
        model = fit_timing(data["X"], data["Y"], s.hidden, s.epochs, s.lr, s.weight_decay,
                           cfg.seed, members=s.members)
        save_timing(model, tmp, {"train_s": time.perf_counter() - t0})

    return load_timing(timing_file(cfg, build))[0]


def timing_file(cfg: TrainConfig, build=None) -> Path:
    """The timing model's weights file for `cfg`: shipped, cached, or (with `build`) made now."""
    def missing(tmp):
        raise DataError(f"no timing model for this config (train with get_timing_model): {tmp}")

    return cached_file("twscardio-timing", _timing_key(cfg), build or missing,
                       suffix=".safetensors", version=1, shipped=WEIGHTS_DIR)


def _jsonable(hist: dict) -> dict:
    """The training history with numpy scalars as floats (it is stored as JSON)."""
    return json.loads(json.dumps(hist, default=float))


# options a run dir's config.yaml lacks when it was made before they existed, and the value that
# reproduces what such a run trained with (`shared.io.check_resume`'s `absent_as`)
BEFORE_OPTION = {"net.members": 1, "loss.correction_l1": 0.0}


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(
        argv, TrainConfig, prog="twscardio.train", quick={"steps": 300, "n_subjects": 16},
        description="Train the BCG->SCG reconstruction network (TWSCardio sec. 2.2.4) on "
                    "simulated earbud-IMU subjects: dual-bud multi-axis stream + validity mask "
                    "+ time encoding -> SCG at 100 Hz, region-focused loss (loss.kind=region) "
                    "or plain L1 (loss.kind=l1). Rerun with the same --out to resume.",
        default_config="configs/twscardio/default.yaml")
    if args.out is not None:  # an existing run: before its config.yaml and the simulation
        check_resume(args.out, cfg, resume_free(cfg), absent_as=BEFORE_OPTION)
    run_dir = make_run_dir(args.out, "twscardio", "train")
    save_config(cfg, run_dir / "config.yaml")
    model, hist = train_networks(cfg, run_dir)
    save_model(model, cfg.net, run_dir / MODEL_FILE)
    atomic_write_json(run_dir / "metrics.json", {k: v for k, v in hist.items() if k != "loss"}
                      | {"final_loss": float(np.mean(hist["loss"][-50:]))})
    log.info("val %s; wrote %s", hist["val"], run_dir)
    return 0


if __name__ == "__main__":
    run(main)
