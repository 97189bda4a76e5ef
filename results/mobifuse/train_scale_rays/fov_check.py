"""Does a cross-rig net's bias follow the field of view? Per fresh unseen scene (the S16 rule's
48), the median signed error (positive: farther) of the net's raw output where the ToF measured,
the stereo did not and no depth edge lies (the simulator's mask); per net its Spearman
correlation with the scene's horizontal FOV and its mean absolute value. S16 seed 0 (shipped
until RAYFOV), S16 seeds 3-5, RAY's, RAY2's and RAYFOV's nets. Usage (repository root,
PAPERBENCH_CACHE=.cache): python results/mobifuse/train_scale_rays/fov_check.py OUT.json"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from mobifuse.bench import QUICK
from mobifuse.config import BenchConfig
from mobifuse.experiments.train_scale import rule_sets
from mobifuse.models import load_model
from mobifuse.train import predict_frames
from shared.cli import parse_args

torch.set_num_threads(1)
_, cfg = parse_args([], BenchConfig, prog="fov_check", description="", quick=QUICK,
                    default_config="configs/mobifuse/bench.yaml")
R = Path("results/mobifuse")
NETS = {"S16 seed 0 (shipped until RAYFOV)": R / "train_scale_cpu_s16/nets/S16_s0.safetensors",
        **{f"S16 seed {s}": R / f"train_scale_cpu_s16_b/nets/S16_s{s}.safetensors"
           for s in (3, 4, 5)},
        **{f"{arm} seed {s}": R / f"train_scale_{d}/nets/S16_s{s}.safetensors"
           for arm, d in (("RAY", "rays"), ("RAY2", "rays2")) for s in (0, 1)},
        **{f"RAYFOV seed {s}": R / f"train_scale_rayfov{'_s2' if s == 2 else ''}/nets/"
                                   f"S16_s{s}.safetensors" for s in (0, 1, 2)}}
frames = rule_sets(cfg)["fresh"]
fov = np.array([2 * np.degrees(np.arctan(f["rig"][2] / 2 / f["rig"][1])) for f in frames])
out = {"fov_deg": fov.tolist()}
for name, path in NETS.items():
    if not path.is_file():
        continue
    bias = []
    for f, p in zip(frames, predict_frames(load_model(path), frames)):
        g, gt = f["geom"], f["gt"]
        m = (g[1] > 0.5) & (g[3] < 0.5) & (gt > 0) & (f["mask_edges"] == 0)
        bias.append(float(100 * np.median((p - gt)[m])) if m.sum() >= 200 else np.nan)
    b = np.array(bias)
    ok = np.isfinite(b)
    out[name] = {"bias_cm": bias, "spearman_fov": float(spearmanr(fov[ok], b[ok])[0]),
                 "mean_abs_bias_cm": float(np.abs(b[ok]).mean())}
    print(f"{name:22s} Spearman(FOV) {out[name]['spearman_fov']:+.2f}  "
          f"mean |bias| {out[name]['mean_abs_bias_cm']:.2f} cm", flush=True)
with open(sys.argv[1], "w") as fh:
    json.dump(out, fh, indent=1)
