"""Diagnosis (nothing chosen on it): on the 48 fresh unseen scenes (65,000+), the share of the
pixels and of the final output's absolute error on pixels neither sensor measured, for the
shipped S16 net (seed 0), with the ToF-only output's error there for comparison. Usage
(repository root, PAPERBENCH_CACHE=.cache):
python results/mobifuse/train_scale/unmeasured_share.py OUT.json"""
import json
import sys

import numpy as np
import torch

from mobifuse.bench import QUICK, predict_frames, rig_frames, rig_refined
from mobifuse.config import BenchConfig
from mobifuse.experiments.cross_rig_seeds import ratios
from mobifuse.experiments.train_scale import FRESH_SCENES, FRESH_SEED0
from mobifuse.models import load_model
from shared.cli import parse_args

torch.set_num_threads(1)
_, cfg = parse_args([], BenchConfig, prog="unmeasured_share", description=__doc__,
                    default_config="configs/mobifuse/bench.yaml", quick=QUICK)
net = load_model("results/mobifuse/train_scale_cpu_s16/nets/S16_s0.safetensors")  # S16 seed 0
frames = rig_frames(cfg, cfg.test_rigs, FRESH_SEED0, FRESH_SCENES, "fresh_unseen")
fin = rig_refined(predict_frames(net, frames), frames, cfg.agree_k, cfg.train.sim)
rows = []
for i, (f, d, ratio) in enumerate(zip(frames, fin, ratios(fin, frames))):
    g, gt = f["geom"], f["gt"]
    valid = np.isfinite(gt) & (gt > 0)
    none = valid & (g[1] < 0.5) & (g[3] < 0.5)
    e_f, e_t = np.abs(d - gt), np.abs(g[0] - gt)
    rows.append({"seed": FRESH_SEED0 + i, "ratio": ratio,
                 "unmeasured_px": float(none.sum() / valid.sum()),
                 "final_err_share_unmeasured": float(e_f[none].sum() / e_f[valid].sum()),
                 "ratio_measured_only": float(e_f[valid & ~none].sum() / e_t[valid].sum())})
r = np.array([x["ratio"] for x in rows])
m = np.array([x["ratio_measured_only"] for x in rows])
summary = {"scenes_at_or_below_0.7": int((r <= 0.7).sum()),
           "scenes_at_or_below_0.7_if_unmeasured_error_were_zero": int((m <= 0.7).sum()),
           "median_unmeasured_px": float(np.median([x["unmeasured_px"] for x in rows])),
           "median_final_err_share_unmeasured": float(np.median(
               [x["final_err_share_unmeasured"] for x in rows]))}
print(json.dumps(summary))
for x in rows:
    if x["ratio"] > 0.65:
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in x.items()})
with open(sys.argv[1], "w") as fh:
    json.dump({"summary": summary, "scenes": rows}, fh, indent=1)
