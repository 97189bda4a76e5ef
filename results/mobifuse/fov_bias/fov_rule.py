"""The net's bias against the field of view: F1 / F2 fitted on training scenes 300-599 of the
cross-rig net's training set, scored with the shipped pipeline (O1) on the validation sets of the
S16 rule, against F0 (results/mobifuse/NOTES.md, "The net's bias against the field of view").
Usage (repository root, PAPERBENCH_CACHE=.cache): python
results/mobifuse/fov_bias/fov_rule.py OUT.json"""
import json
import sys

import numpy as np
import torch

from mobifuse.bench import QUICK, predict_frames, refined, rig_train_config
from mobifuse.config import BenchConfig
from mobifuse.data import build_frames
from mobifuse.disocclusion import frame_shift
from mobifuse.experiments.train_scale import rule_sets, set_scores
from mobifuse.models import guard_clip, load_model
from mobifuse.train import scene_seeds
from shared.cli import parse_args

torch.set_num_threads(2)
_, cfg = parse_args(["--set", "rig_mpi_gain=0", "--set", "rig_surface_tol=0"],  # as it ran
                    BenchConfig, prog="fov_rule", description="", quick=QUICK,
                    default_config="configs/mobifuse/bench.yaml")
net = load_model("results/mobifuse/train_scale_cpu_s16/nets/S16_s0.safetensors")  # S16 seed 0
PER_SCENE = 2000  # pixels sampled per training scene (each scene weighs the same)


def features(d, f, kind):
    """(N, k) design rows for depths d (N,) of frame f: 1, theta, D, theta D (+ m, m D)."""
    b, fpx, w = f["rig"][:3]
    theta = 2 * np.arctan(w / 2 / fpx)
    cols = [np.ones_like(d), np.full_like(d, theta), d, theta * d]
    if kind == "F2":
        m = f["rig"][6] / 1e8
        cols += [np.full_like(d, m), m * d]
    return np.stack(cols, axis=1)


def lad(X, y, iters=50):
    """Least absolute deviations by iteratively reweighted least squares."""
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    for _ in range(iters):
        w = 1.0 / np.maximum(np.abs(y - X @ beta), 1e-4)
        beta = np.linalg.lstsq(X * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)[0]
    return beta


def corrected(p, f, kind, beta):
    if kind == "F0":
        return p
    d = p + (features(p.ravel().astype(np.float64), f, kind) @ beta).reshape(p.shape)
    g = f["geom"]
    return guard_clip(d, g[0], g[2], 2)


tc = rig_train_config(cfg)
seeds, _ = scene_seeds(tc)
train = build_frames(seeds[300:600], tc.sim, tc.stereo, tc.dei, tc.rigs, desc="fit scenes")
rng = np.random.default_rng(0)
rows = {"F1": ([], []), "F2": ([], [])}
for f, p in zip(train, predict_frames(net, train)):
    p = np.asarray(p, dtype=np.float64)
    ok = np.flatnonzero((np.isfinite(f["gt"]) & (f["gt"] > 0)).ravel())
    pick = rng.choice(ok, size=min(PER_SCENE, ok.size), replace=False)
    for kind, (X, y) in rows.items():
        X.append(features(p.ravel()[pick], f, kind))
        y.append(f["gt"].ravel()[pick] - p.ravel()[pick])
betas = {k: lad(np.concatenate(X), np.concatenate(y)) for k, (X, y) in rows.items()}
out = {"coef": {k: b.tolist() for k, b in betas.items()}}
print(out, flush=True)
for name, frames in rule_sets(cfg).items():
    preds = [np.asarray(p, dtype=np.float32) for p in predict_frames(net, frames)]
    for kind in ("F0", "F1", "F2"):
        res = [refined(corrected(p, f, kind, betas.get(kind)), f, cfg.agree_k,
                       shift=frame_shift(cfg.train.sim, f["rig"][1]), offset_gate=1.0)
               for p, f in zip(preds, frames)]
        out[f"{kind}_{name}"] = set_scores(res, frames, f"{kind} {name:8s}")
with open(sys.argv[1], "w") as fh:
    json.dump(out, fh, indent=1)
