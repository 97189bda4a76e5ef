"""Why the bench's worst unseen scene stays (a diagnosis after the RAYFOV run; nothing is chosen
on it). For unseen test scenes 6 and 10: per pixel class (both sensors measured, ToF only,
stereo only, neither; off and on depth edges), each class's share of the pixels, its part of
the fused and ToF-only MAE (summed over the class, divided by all pixels with ground truth, cm)
and the median signed error (fused / ToF, cm), for S16's seed-0 net and RAYFOV's three, through
the bench's pipeline (stereo offset at the bench's gate). Then, per set (the three validation
sets and the 12 test scenes), the Spearman correlation of the ToF's median signed error where
it alone measured (no edge) with the FOV, and the test scenes' rows.
Usage (repository root, PAPERBENCH_CACHE=.cache):
python results/mobifuse/train_scale_rayfov/scene_bias.py OUT.json"""
import json
import sys

import numpy as np
import torch
from scipy.stats import spearmanr

from mobifuse.bench import (
    QUICK,
    RIG_TEST_SEED0,
    WEIGHTS_DIR,
    predict_frames,
    rig_frames,
    rig_refined,
)
from mobifuse.config import BenchConfig
from mobifuse.experiments.train_scale import rule_sets
from mobifuse.models import load_model
from shared.cli import parse_args

torch.set_num_threads(1)
_, cfg = parse_args([], BenchConfig, prog="scene_bias", description="", quick=QUICK,
                    default_config="configs/mobifuse/bench.yaml")
R = "results/mobifuse/"
NETS = {"S16 seed 0": R + "train_scale_cpu_s16/nets/S16_s0.safetensors",
        "RAYFOV seed 0 (shipped)": str(WEIGHTS_DIR / "mobifuse-net-eb5423685da3c171.safetensors"),
        "RAYFOV seed 1": R + "train_scale_rayfov/nets/S16_s1.safetensors",
        "RAYFOV seed 2": R + "train_scale_rayfov_s2/nets/S16_s2.safetensors"}
test = rig_frames(cfg, cfg.test_rigs, RIG_TEST_SEED0, cfg.rig_test_scenes, "test")


def fov_deg(f: dict) -> float:
    return float(2 * np.degrees(np.arctan(f["rig"][2] / 2 / f["rig"][1])))


out: dict = {"scenes": {}, "tof_bias_vs_fov": {}}
for sc in (6, 10):
    f = test[sc]
    g, gt = f["geom"], f["gt"]
    m = gt > 0
    classes = {"both": (g[1] > 0.5) & (g[3] > 0.5), "tof_only": (g[1] > 0.5) & (g[3] < 0.5),
               "stereo_only": (g[1] < 0.5) & (g[3] > 0.5), "neither": (g[1] < 0.5) & (g[3] < 0.5)}
    edge = f["mask_edges"] > 0
    row: dict = {"fov_deg": fov_deg(f), "tof_mae_cm": float(100 * np.abs(g[0] - gt)[m].mean())}
    for name, path in NETS.items():
        fused = rig_refined(predict_frames(load_model(path), [f]), [f], cfg.agree_k,
                            cfg.train.sim, cfg.offset_gate)[0]
        r = {"ratio": float(np.abs(fused - gt)[m].mean() / np.abs(g[0] - gt)[m].mean())}
        for c, cm in classes.items():
            for tag, em in (("", ~edge), ("_edge", edge)):
                mm = cm & m & em
                if mm.any():
                    r[c + tag] = {"share": float(mm.mean()),
                                  "fused_cm": float(100 * np.abs(fused - gt)[mm].sum() / m.sum()),
                                  "tof_cm": float(100 * np.abs(g[0] - gt)[mm].sum() / m.sum()),
                                  "fused_bias_cm": float(100 * np.median((fused - gt)[mm])),
                                  "tof_bias_cm": float(100 * np.median((g[0] - gt)[mm]))}
        row[name] = r
        print(sc, name, round(r["ratio"], 3), "ToF-only bias fused / ToF",
              round(r["tof_only"]["fused_bias_cm"], 2), round(r["tof_only"]["tof_bias_cm"], 2),
              flush=True)
    out["scenes"][str(sc)] = row
for name, frames in {**rule_sets(cfg), "test": test}.items():
    rows = []
    for f in frames:
        g, gt = f["geom"], f["gt"]
        mm = (g[1] > 0.5) & (g[3] < 0.5) & (gt > 0) & (f["mask_edges"] == 0)
        if mm.sum() >= 200:
            rows.append((fov_deg(f), float(100 * np.median((g[0] - gt)[mm]))))
    a = np.array(rows)
    out["tof_bias_vs_fov"][name] = {
        "scenes": len(a), "spearman": float(spearmanr(a[:, 0], a[:, 1])[0]),
        "bias_cm_range": [float(a[:, 1].min()), float(a[:, 1].max())]}
    if name == "test":
        out["tof_bias_vs_fov"][name]["rows"] = [{"fov_deg": x, "tof_bias_cm": y} for x, y in rows]
    print(name, out["tof_bias_vs_fov"][name]["spearman"], flush=True)
with open(sys.argv[1], "w") as fh:
    json.dump(out, fh, indent=1)
