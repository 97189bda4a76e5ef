"""`python -m edgeoar.train`: train the online recogniser on codec-decoded motion streams.

Schedules (`mode`, EdgeOAR sec. 3 "iterative training"; the schedule is our reconstruction):

* `iterative` - `rounds` x [f_Main for `main_epochs` (cross-entropy of every modality's
  per-step classifier on every prefix, prefix t weighted 1 + early_weight (1 - t/(T-1)), so
  the features are useful from the first frames; plus `distill` x the same-weighted KL from
  each modality's full-clip prediction to its earlier steps, our addition), then f_Gate for
  `gate_epochs` with f_Main frozen (BCE: "the prediction at t is right and stays right")];
* `full_clip` - the ablation: the backbone trained on the full clip only (loss at t = T), then
  frozen while the per-step classifiers and the gate are fitted (exits bolted onto a
  full-clip model);
* `joint` - the ablation: main and gate losses summed and trained together for the same
  number of epochs (the gate's gradient reaches the backbone).

`lr_decay: cosine` decays each optimiser's rates over the epochs of its own phase
(`lr_factor`; our addition, chosen on validation for the full configuration).

Progress is logged; a checkpoint is written after every epoch (rerun with the same --out to
resume, under the same config but for `resume_free`); the run dir gets config.yaml,
metrics.json and model.safetensors (+ JSON info: the classes). `get_model(cfg)` trains once
per config and caches the weights (`shared.cache`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgeoar.config import TrainConfig
from edgeoar.data import check_stream, class_names, data_version, load_split
from edgeoar.exits import OperatingRule, compare_policies, softmax, step_scores
from edgeoar.models import MODEL_FILE, OnlineRecognizer, build_model, load_model, save_model
from shared.cache import cached_file
from shared.cli import parse_args, run
from shared.config import save_config, to_dict
from shared.io import Checkpointer, atomic_write_json, check_resume, make_run_dir
from shared.log import get_logger, progress
from shared.runtime import pick_device, set_seed

__all__ = ["train_model", "resume_free", "get_model", "predict", "phases", "param_groups",
           "lr_factor", "exit_thresholds", "accuracy_per_step", "main_loss", "distill_loss", "main"]

log = get_logger("edgeoar.train")


def phases(cfg: TrainConfig) -> list[str]:
    """The schedule as a list of epochs: 'main', 'gate', 'joint', 'full', 'heads'."""
    if cfg.mode == "iterative":
        return (["main"] * cfg.main_epochs + ["gate"] * cfg.gate_epochs) * cfg.rounds
    if cfg.mode == "joint":
        return ["joint"] * ((cfg.main_epochs + cfg.gate_epochs) * cfg.rounds)
    return ["full"] * (cfg.main_epochs * cfg.rounds) + ["heads"] * (cfg.gate_epochs * cfg.rounds)


def lr_factor(sched: list[str], e: int, decay: str) -> float:
    """Multiplier of the rates in epoch `e` of the schedule: 1 without decay; with 'cosine',
    0.5 (1 + cos(pi (k + 0.5) / n)) for the k-th of the n epochs of the same phase, so every
    optimiser (f_Main, f_Gate, the heads of the full-clip ablation) decays over its own
    epochs and the alternation's rounds share one decay."""
    if decay == "none":
        return 1.0
    k, n = sched[:e].count(sched[e]), sched.count(sched[e])
    return 0.5 * (1 + float(np.cos(np.pi * (k + 0.5) / n)))


def resume_free(cfg: TrainConfig) -> tuple[str, ...]:
    """Config keys a resumed run may change: logging, the test splits (never trained on) and,
    where the finished epochs are a prefix of the longer schedule with the same rates (the
    iterative and joint modes without decay), `rounds`."""
    free = ("log_every", "stream.test_per_class", "stream.ood_per_class", "stream.ood_motion")
    return free + (("rounds",) if cfg.mode != "full_clip" and cfg.lr_decay == "none" else ())


def _inputs(data: dict, idx: np.ndarray, source: str, shift: int = 0, cell: int = 4):
    """Batch tensors; `shift` rolls the frames by shift cells sideways (augmentation)."""
    rgb = torch.from_numpy(data["rgb"][idx])
    mot = torch.from_numpy(data["mv" if source == "codec" else "diff"][idx].astype(np.float32))
    part = torch.from_numpy(data["part"][idx].astype(np.float32))
    if shift:
        rgb = torch.roll(rgb, shift * cell, dims=3)
        mot, part = torch.roll(mot, shift, dims=-1), torch.roll(part, shift, dims=-1)
    return rgb, mot, part


def _prefix_weights(steps: int, early: float) -> torch.Tensor:
    w = 1 + early * (1 - torch.arange(steps, dtype=torch.float32) / max(steps - 1, 1))
    return w / w.sum()


def main_loss(out: dict, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Prefix-weighted cross-entropy of both modalities' per-step classifiers."""
    loss = 0.0
    for m in ("rgb", "motion"):
        lg = out[m]
        ce = F.cross_entropy(lg.flatten(0, 1), y.repeat_interleave(lg.shape[1]),
                             reduction="none").view(lg.shape[:2])
        loss = loss + (ce * w).sum(1).mean()
    return loss


def distill_loss(out: dict, w: torch.Tensor) -> torch.Tensor:
    """Self-distillation of the full clip into the per-step classifiers: prefix-weighted
    KL(q_m || p_m,t), q_m modality m's softmax at the last step (detached, the teacher), p_m,t
    its softmax after t + 1 frames; each modality learns from its own full clip (a teacher
    fused over both made the RGB steps copy motion-only evidence, validation in
    results/edgeoar/NOTES.md). (B, T, K) logits -> scalar."""
    loss = 0.0
    for m in ("rgb", "motion"):
        q = out[m][:, -1:].softmax(-1).detach()
        kl = (q * (q.clamp_min(1e-12).log() - out[m].log_softmax(-1))).sum(-1)  # (B, T)
        loss = loss + (kl * w).sum(1).mean()
    return loss


def gate_target(out: dict, y: torch.Tensor) -> torch.Tensor:
    """(B, T) 1 where the fused (mean) prediction is right at t and at every later step."""
    with torch.no_grad():
        p = 0.5 * (out["rgb"].softmax(-1) + out["motion"].softmax(-1))
        ok = (p.argmax(-1) == y[:, None]).float()
        return torch.flip(torch.cummin(torch.flip(ok, [1]), 1).values, [1])


def gate_loss(out: dict, y: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(out["gate"], gate_target(out, y))


def _freeze(model: OnlineRecognizer, phase: str) -> list[torch.nn.Parameter]:
    """Trainable parameters of a phase (the rest frozen)."""
    for p in model.parameters():
        p.requires_grad_(False)
    mods = {"main": [model.rgb, model.motion, model.heads], "gate": [model.gate],
            "joint": [model], "full": [model.rgb, model.motion, model.heads],
            "heads": [model.heads, model.gate]}[phase]
    params = [p for m in mods for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    return params


def param_groups(model: OnlineRecognizer, params: list[torch.nn.Parameter], cfg: TrainConfig
                 ) -> list[dict]:
    """AdamW groups of a phase's trainable `params`, one per branch with its own rate: 'rgb'
    (the RGB per-frame CNN and its per-step classifiers) at `cfg.lr_rgb`, 'motion' likewise
    at `cfg.lr_motion`, 'other' (the gate) at `cfg.lr`; empty groups are left out."""
    owner = {}
    for branch in ("rgb", "motion"):
        for m in (getattr(model, branch), model.heads[branch]):
            owner.update({id(p): branch for p in m.parameters()})
    groups = []
    for branch in ("rgb", "motion", "other"):
        ps = [p for p in params if owner.get(id(p), "other") == branch]
        if ps:
            groups.append({"params": ps, "lr": cfg.branch_lr(branch), "name": branch})
    return groups


def _epoch(model: OnlineRecognizer, phase: str, data: dict, cfg: TrainConfig, opt,
           gen: np.random.Generator, device: str) -> float:
    _freeze(model, phase)
    model.train(phase in ("main", "joint", "full"))  # BN statistics frozen with the backbone
    n, steps = len(data["label"]), cfg.stream.clip_frames
    w = _prefix_weights(steps, cfg.early_weight).to(device)
    w_full = torch.zeros(steps, device=device)
    w_full[-1] = 1.0
    order, losses = gen.permutation(n), []
    for i in range(0, n, cfg.batch_size):
        idx = np.sort(order[i:i + cfg.batch_size])
        shift = int(gen.integers(-1, 2)) if cfg.augment else 0
        rgb, mot, part = (t.to(device) for t in _inputs(data, idx, cfg.model.motion_source,
                                                        shift, cfg.codec.cell))
        y = torch.from_numpy(data["label"][idx]).to(device)
        out = model(rgb, mot, part)
        if phase == "gate":
            loss = gate_loss(out, y)
        elif phase == "full":
            loss = main_loss(out, y, w_full)
        else:  # f_Main's objective; 'joint' and 'heads' add the gate's
            loss = main_loss(out, y, w)
            if cfg.distill:
                loss = loss + cfg.distill * distill_loss(out, w)
            if phase != "main":
                loss = loss + gate_loss(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses))


@torch.no_grad()
def predict(model: OnlineRecognizer, data: dict, batch: int = 32) -> dict[str, np.ndarray]:
    """Per-step outputs on a split: rgb, motion logits (N, T, K), gate logits (N, T)."""
    model.eval()
    outs: dict[str, list] = {"rgb": [], "motion": [], "gate": []}
    for i in range(0, len(data["label"]), batch):
        idx = np.arange(i, min(i + batch, len(data["label"])))
        o = model(*_inputs(data, idx, model.cfg.motion_source, 0, model.cell))
        for k in outs:
            outs[k].append(o[k].numpy())
    return {k: np.concatenate(v) for k, v in outs.items()}


def accuracy_per_step(pred: dict, labels: np.ndarray) -> np.ndarray:
    """(T,) accuracy of the mean-fused prediction after t + 1 frames."""
    p = 0.5 * (softmax(pred["rgb"]) + softmax(pred["motion"]))
    return (p.argmax(-1) == labels[:, None]).mean(0)


def train_model(cfg: TrainConfig, run_dir: str | Path | None = None,
                splits: tuple[dict, dict, list[str]] | None = None
                ) -> tuple[OnlineRecognizer, dict]:
    """Train per `cfg.mode`; -> (model on CPU in eval mode, history). `splits` (train arrays,
    val arrays, class names) replaces the generated streams (arrays as `edgeoar.data`)."""
    if splits is None:
        splits = (load_split(cfg, "train"), load_split(cfg, "val"), class_names(cfg.stream))
    tr, va, names = splits
    set_seed(cfg.seed)
    device = pick_device(cfg.device)
    model = build_model(cfg.model, len(names), cfg.stream.clip_frames, cfg.stream.image_size,
                        cfg.codec.cell).to(device)
    sched = phases(cfg)
    opts: dict[str, torch.optim.Optimizer] = {}

    def opt_for(phase):
        if phase not in opts:
            opts[phase] = torch.optim.AdamW(param_groups(model, _freeze(model, phase), cfg),
                                            lr=cfg.lr, weight_decay=cfg.weight_decay)
        return opts[phase]

    ck = Checkpointer(run_dir) if run_dir is not None else None
    done, hist = 0, {"loss": [], "phase": []}
    state = ck.load() if ck else None
    if state is not None:
        if "config" in state:
            check_resume(run_dir, cfg, resume_free(cfg), saved=state["config"], resuming=True)
        model.load_state_dict(state["model"])
        for ph, sd in state["opts"].items():
            opt_for(ph).load_state_dict(sd)
        done, hist = state["done"], state["hist"]
        log.info("resumed after epoch %d/%d", done, len(sched))
    t0 = time.perf_counter()
    for e in progress(range(done, len(sched)), desc=f"train ({cfg.mode})", initial=done,
                      total=len(sched)):
        gen = np.random.default_rng([cfg.seed, e])
        opt = opt_for(sched[e])
        for g in opt.param_groups:
            g["lr"] = cfg.branch_lr(g["name"]) * lr_factor(sched, e, cfg.lr_decay)
        loss = _epoch(model, sched[e], tr, cfg, opt, gen, device)
        hist["loss"].append(loss)
        hist["phase"].append(sched[e])
        if ck:
            ck.save({"model": model.state_dict(), "done": e + 1, "hist": hist,
                     "config": to_dict(cfg),
                     "opts": {k: o.state_dict() for k, o in opts.items()}})
        if (e + 1) % cfg.log_every == 0 or e + 1 == len(sched):
            log.info("epoch %d/%d %s loss %.4f", e + 1, len(sched), sched[e], loss)
    hist["train_s"] = time.perf_counter() - t0
    model = model.cpu().eval()
    acc = accuracy_per_step(predict(model, va), va["label"])
    hist["val_acc_per_step"] = [float(a) for a in acc]
    hist["n_params"] = sum(p.numel() for p in model.parameters())
    hist["classes"] = names
    return model, hist


def exit_thresholds(model: OnlineRecognizer, val: dict, rule: float | OperatingRule = 0.02
                    ) -> dict[str, float]:
    """IIE + MC thresholds chosen on the validation split by `rule` (a float: the
    fewest-frames rule at that tolerance; what `edgeoar.stream` uses)."""
    from edgeoar.config import ExitConfig

    ec = ExitConfig()
    p = predict(model, val)
    res = compare_policies(step_scores(p["rgb"], p["motion"], p["gate"]), val["label"], {},
                           rule, ec.conf_grid, ec.mc_grid, policies=("iie_mc",))
    tau_conf, tau_mc = res["iie_mc"]["param"]
    return {"tau_conf": float(tau_conf), "tau_mc": float(tau_mc)}


def _model_key(cfg: TrainConfig) -> dict:
    d = to_dict(cfg)
    for k in ("device", "log_every"):
        d.pop(k)
    if d["lr_decay"] == "none":  # keys of the models trained before the option existed
        d.pop("lr_decay")
    for k in ("test_per_class", "ood_per_class", "ood_motion"):
        d["stream"].pop(k)
    return d


def get_model(cfg: TrainConfig) -> tuple[OnlineRecognizer, dict]:
    """Trained weights for `cfg` (trained once, then cached); -> (model, info with 'hist')."""
    def build(tmp):
        model, hist = train_model(cfg)
        save_model(model, tmp, hist["classes"], {"hist": {k: v for k, v in hist.items()
                                                         if k != "classes"}})

    path = cached_file("edgeoar-model", _model_key(cfg), build, suffix=".safetensors",
                       version=data_version())
    return load_model(path)


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(
        argv, TrainConfig, prog="edgeoar.train",
        quick={"stream.train_per_class": 12, "stream.val_per_class": 4, "rounds": 2,
               "main_epochs": 3, "gate_epochs": 1, "lr_motion": 0.006},
        description="Train the EdgeOAR online recogniser (RGB + codec motion vectors, TFEM, "
                    "per-step classifiers, exit gate) on H.264-decoded human-motion streams. "
                    "mode=iterative (gate/main alternation), full_clip or joint (ablations). "
                    "Rerun with the same --out to resume.",
        default_config="configs/edgeoar/default.yaml")
    check_stream(cfg.stream)  # bad actions or generator settings fail before the run dir
    if args.out is not None:  # an existing run: before its config.yaml is rewritten
        check_resume(args.out, cfg, resume_free(cfg))
    run_dir = make_run_dir(args.out, "edgeoar", "train")
    save_config(cfg, run_dir / "config.yaml")
    model, hist = train_model(cfg, run_dir)
    hist["exit"] = exit_thresholds(model, load_split(cfg, "val"))
    save_model(model, run_dir / MODEL_FILE, hist["classes"], {"exit": hist["exit"]})
    atomic_write_json(run_dir / "metrics.json", {k: v for k, v in hist.items() if k != "loss"}
                      | {"final_loss": hist["loss"][-1] if hist["loss"] else None})
    acc = hist["val_acc_per_step"]
    log.info("val accuracy after 25%% of the clip %.3f, full clip %.3f; wrote %s",
             acc[max(len(acc) // 4 - 1, 0)], acc[-1], run_dir)
    return 0


if __name__ == "__main__":
    run(main)
