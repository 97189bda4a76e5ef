"""The ToF splatting's z-buffer and noise: a near bias where footprints overlap (measurement).

python results/mobifuse/zbuffer/zbuffer.py results/mobifuse/zbuffer/zbuffer.json [TOL]

`geometry.reproject_tof` splats each ToF pixel as a square of ceil(ratio) work pixels a side
(ratio = work focal / ToF focal = tof_ratio / 2) and keeps the nearest sample per work pixel.
Where footprints overlap (a non-integer ratio, an odd tof_ratio: 1.5 x 1.5 work pixels per ToF
pixel under a 2 x 2 footprint), a work pixel keeps the minimum of several noisy samples of one surface, so the
ToF input reads near by a share of its noise. Per ToF ratio, 6 scenes of the bench's training
rigs (seeds 790,000+, ratio forced): the median over the work pixels a sample landed on of the
reprojected noisy ToF minus the reprojected noise-free ToF (same scene, wiggling and multipath
in both), and the noisy ToF's own median on its grid against the noise-free one.
"""
import dataclasses
import json
import sys

import numpy as np

from mobifuse.config import RigFamily, SimConfig
from mobifuse.data import sim_calibration
from mobifuse.geometry import reproject_tof
from mobifuse.pipeline import _work_K
from mobifuse.simulator import render_rgb_pair, render_tof, sample_rig, sample_scene, work_shape

TOL = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0  # reproject_tof's surface_tol
fam = RigFamily(baseline_m=(0.01, 0.05), focal_px=(250.0, 600.0), width=(256, 480))  # train_rigs
out = {}
for ratio in range(2, 9):
    rows = []
    for i in range(6):
        seed = 790_000 + 100 * ratio + i
        r = dataclasses.replace(fam, tof_ratio=(ratio, ratio))
        cfg = sample_rig(np.random.default_rng(seed), r, SimConfig())
        rng = np.random.default_rng(seed)
        scene = sample_scene(rng, cfg, None)
        render_rgb_pair(scene, cfg, rng)
        state = rng.bit_generator.state
        noisy = render_tof(scene, cfg, rng)
        rng.bit_generator.state = state
        clean = render_tof(scene, cfg, rng, noise=False)
        cal = sim_calibration(cfg)
        Kw = _work_K(cal.K_left, cfg.work_downsample)
        shape = work_shape(cfg.height, cfg.width, cfg.work_downsample)
        v = noisy["valid"] & clean["valid"]
        wn = reproject_tof(noisy["depth"], v, cal.K_tof, Kw, cal.T_left_tof, shape, None, TOL)
        wc = reproject_tof(clean["depth"], v, cal.K_tof, Kw, cal.T_left_tof, shape, None, TOL)
        m = wn["valid"] & wc["valid"]
        d_work = float(np.median((wn["depth"] - wc["depth"])[m]))
        d_grid = float(np.median((noisy["depth"] - clean["depth"])[v]))
        noise = float(np.median(np.abs(noisy["depth"] - clean["depth"])[v]))
        rows.append({"seed": seed, "work_minus_clean_cm": 100 * d_work,
                     "grid_minus_clean_cm": 100 * d_grid, "median_abs_noise_cm": 100 * noise})
    out[str(ratio)] = {"scenes": rows,
                       "mean_work_cm": float(np.mean([x["work_minus_clean_cm"] for x in rows])),
                       "mean_grid_cm": float(np.mean([x["grid_minus_clean_cm"] for x in rows])),
                       "mean_noise_cm": float(np.mean([x["median_abs_noise_cm"] for x in rows]))}
    print(ratio, {k: round(v, 2) for k, v in out[str(ratio)].items() if k != "scenes"},
          flush=True)
with open(sys.argv[1], "w") as f:
    json.dump(out, f, indent=1)
