"""The multipath estimate's gain, fitted on scenes of the bench's training rigs.

python results/mobifuse/multipath/gain.py 60 > results/mobifuse/multipath/gain.json

Scenes 780,000+ (no bench, validation or training set reads them), each on a rig drawn from
`train_rigs` (baseline 1-5 cm, f 250-600 px, 256-480 px wide); on the ToF grid, over its valid
pixels: the ToF's MAE against the truth after subtracting gain x `multipath_error` (clipped as
`compensate_multipath` clips it), for gains 0.3-1.5; and per scene, the median error before and
after at the best gain.
"""
import json
import sys

import numpy as np
from scipy import stats

from mobifuse.config import RigFamily, SimConfig
from mobifuse.multipath import MAX_CORRECTION, multipath_error
from mobifuse.simulator import intrinsics, sample_rig, simulate_scene

fam = RigFamily(baseline_m=(0.01, 0.05), focal_px=(250.0, 600.0), width=(256, 480))  # train_rigs
N = int(sys.argv[1])
E, G, Z, rows = [], [], [], []
for i in range(N):
    seed = 780000 + i
    cfg = sample_rig(np.random.default_rng(seed), fam, SimConfig())
    fr = simulate_scene(seed, cfg)
    z, v = fr["tof_depth"].astype(float), fr["tof_valid"]
    gt = fr["tof_true_depth"].astype(float)
    K = intrinsics(cfg.tof_width, cfg.tof_height, cfg.tof_focal_px)
    est = multipath_error(z, v, fr["tof_amplitude"], K, cfg.mod_freq_hz, cfg.tof_power)
    E.append(est[v])
    G.append((z - gt)[v])
    Z.append(z[v])
    rows.append((np.median((z - gt)[v]), np.median(est[v])))
e, g, z = map(np.concatenate, (E, G, Z))
gains = np.linspace(0.3, 1.5, 25)
mae = [np.mean(np.abs(g - np.clip(a * e, -MAX_CORRECTION * z, MAX_CORRECTION * z)))
       for a in gains]
r = np.array(rows)
best = gains[int(np.argmin(mae))]
out = {"scenes": N, "pixels": int(e.size), "mae_raw_cm": 100 * float(np.mean(np.abs(g))),
       "mae_by_gain_cm": {f"{a:.2f}": 100 * float(m) for a, m in zip(gains, mae)},
       "best_gain": float(best),
       "scene_bias_spearman": float(stats.spearmanr(r[:, 0], r[:, 1])[0]),
       "scene_bias_mean_abs_cm_raw": 100 * float(np.abs(r[:, 0]).mean()),
       "scene_bias_mean_abs_cm_comp": 100 * float(np.abs(r[:, 0] - best * r[:, 1]).mean()),
       "clipped_share": float(np.mean(np.abs(best * e) > MAX_CORRECTION * z))}
print(json.dumps(out, indent=1))
