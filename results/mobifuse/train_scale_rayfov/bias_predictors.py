"""Does any scene-level summary of the sensors' own data predict the ToF's multipath bias?
(a probe after the RAYFOV run; nothing chosen on it). Per scene of the three validation sets
and the bench's 12 unseen test scenes: the ToF's median signed error where it alone measured
(no edge; cm), against the scene medians over ToF-valid pixels of an IR-albedo proxy (log
amplitude from the DEI's shot-noise channel, plus 2 log depth: amplitude falls as 1 / Z^2),
of the DEI's multipath channel, of the ToF depth, and the horizontal FOV. Spearman per set.
Usage (repository root, PAPERBENCH_CACHE=.cache):
python results/mobifuse/train_scale_rayfov/bias_predictors.py OUT.json"""
import json
import sys

import numpy as np
from scipy.stats import spearmanr

from mobifuse.bench import QUICK, RIG_TEST_SEED0, rig_frames
from mobifuse.config import BenchConfig
from mobifuse.dei import DEI_CHANNELS
from mobifuse.experiments.train_scale import rule_sets
from shared.cli import parse_args

_, cfg = parse_args([], BenchConfig, prog="bias_predictors", description="", quick=QUICK,
                    default_config="configs/mobifuse/bench.yaml")
sets = {**rule_sets(cfg),
        "test": rig_frames(cfg, cfg.test_rigs, RIG_TEST_SEED0, cfg.rig_test_scenes, "test")}
SHOT = 1 + DEI_CHANNELS.index("log_shot")
MPI = 1 + DEI_CHANNELS.index("mpi")
NAMES = ("albedo_proxy", "mpi", "depth", "fov_deg")
out = {}
for name, frames in sets.items():
    rows = []
    for f in frames:
        g, gt = f["geom"], f["gt"]
        alone = (g[1] > 0.5) & (g[3] < 0.5) & (gt > 0) & (f["mask_edges"] == 0)
        valid = (g[1] > 0.5) & (gt > 0)
        if alone.sum() < 200:
            continue
        mod_hz = f["rig"][6]  # the modulation frequency (Hz)
        # shot sigma = c / (4 pi f) sqrt(a / 2 + ...) / a, so log a ~ -2 (log shot - log c/4pi f)
        log_amp = -2 * (f["err"][SHOT] - np.log(3e8 / (4 * np.pi * mod_hz)))
        rows.append([100 * float(np.median((g[0] - gt)[alone])),
                     float(np.median((log_amp + 2 * np.log(g[0].clip(0.1)))[valid])),
                     float(np.median(f["err"][MPI][valid])), float(np.median(g[0][valid])),
                     float(2 * np.degrees(np.arctan(f["rig"][2] / 2 / f["rig"][1])))])
    a = np.array(rows)
    out[name] = {"scenes": len(a), "tof_bias_cm": a[:, 0].tolist(),
                 "spearman": {k: float(spearmanr(a[:, 0], a[:, i + 1])[0])
                              for i, k in enumerate(NAMES)}}
    print(name, len(a), {k: round(v, 2) for k, v in out[name]["spearman"].items()}, flush=True)
with open(sys.argv[1], "w") as fh:
    json.dump(out, fh, indent=1)
