"""Per scene, the figures the stereo offset's notes quote (a diagnosis, nothing chosen on it):
on the pixels both sensors measured, their share of the frame, the stereo DEI's median over the
ToF DEI's (the gate's ratio), median(SGBM - net) (the offset the gate would apply) and SGBM's
median error; where the ToF measured, the stereo did not and no depth edge lies (the
simulator's mask), the median signed error of the ToF and of the shipped pipeline without the
offset (positive: farther than the truth). The shipped S16 seed-0 net; the 48 fresh unseen
scenes and the bench's 12 unseen test scenes. Usage (repository root, PAPERBENCH_CACHE=.cache):
python results/mobifuse/stereo_offset/diag.py OUT.json"""
import json
import sys

import numpy as np
import torch

from mobifuse.bench import QUICK, RIG_TEST_SEED0, predict_frames, refined, rig_frames
from mobifuse.config import BenchConfig
from mobifuse.disocclusion import frame_shift
from mobifuse.experiments.train_scale import FRESH_SCENES, FRESH_SEED0
from mobifuse.models import load_model
from shared.cli import parse_args

torch.set_num_threads(1)
_, cfg = parse_args([], BenchConfig, prog="diag", description="", quick=QUICK,
                    default_config="configs/mobifuse/bench.yaml")
net = load_model("results/mobifuse/train_scale_cpu_s16/nets/S16_s0.safetensors")  # S16 seed 0
out = {}
for name, seed0, n in (("fresh", FRESH_SEED0, FRESH_SCENES),
                       ("test_unseen", RIG_TEST_SEED0, cfg.rig_test_scenes)):
    frames = rig_frames(cfg, cfg.test_rigs, seed0, n, name)
    rows = []
    for i, (f, p) in enumerate(zip(frames, predict_frames(net, frames))):
        p = np.asarray(p, dtype=np.float32)
        g, gt = f["geom"], f["gt"]
        both = (g[1] > 0.5) & (g[3] > 0.5)
        tof_only = (g[1] > 0.5) & (g[3] < 0.5) & (gt > 0) & (f["mask_edges"] == 0)
        final = refined(p, f, cfg.agree_k, shift=frame_shift(cfg.train.sim, f["rig"][1]))
        b, fpx, w = f["rig"][:3]
        rows.append({
            "scene": (seed0 if name == "fresh" else 0) + i,
            "fov_deg": float(2 * np.degrees(np.arctan(w / 2 / fpx))),
            "both_share": float(both.mean()),
            "sigma_ratio": float(np.median(f["sigma_st"][both]) / np.median(f["sigma_tof"][both])),
            "offset_cm": float(100 * np.median((g[2] - p)[both])),
            "sgbm_median_err_cm": float(100 * np.median((g[2] - gt)[both & (gt > 0)])),
            "tof_only_px_tof_err_cm": float(100 * np.median((g[0] - gt)[tof_only])),
            "tof_only_px_fused_err_cm": float(100 * np.median((final - gt)[tof_only]))})
        r = rows[-1]
        print(name, r["scene"], " ".join(f"{k} {v:.2f}" for k, v in r.items() if k != "scene"),
              flush=True)
    out[name] = rows
with open(sys.argv[1], "w") as fh:
    json.dump(out, fh, indent=1)
