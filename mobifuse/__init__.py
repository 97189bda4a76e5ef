"""mobifuse: ToF + stereo RGB depth fusion guided by a physics-based Depth Error Indication (DEI)
modality (MobiFuse, Zhang et al., arXiv 2412.13848).

Modules (see README.md):
- `simulator`: seeded ray-cast rooms -> rectified RGB pair, AMCW ToF (flying pixels, multipath,
  wiggling, shot noise with ambient light, phase wrap, dropouts), ground truth and region masks;
- `stereo`: OpenCV SGBM depth, left-right check, matching uniqueness;
- `geometry`: ToF reprojection (z-buffer), densification, point clouds, Chamfer distance;
- `dei`: per-sensor expected-error maps from physical factors;
- `pipeline`: raw frames -> fusion inputs (`prepare_frame`); `data`: cached datasets, loaders;
- `models`: `TwoStageFusionNet` (progressive two-stage fusion with backward connections);
- `baselines`, `metrics`; `api.fuse` for your own arrays;
- recipes: `python -m mobifuse.train | eval | bench`.

Example (what a notebook user types; about a second): render a small simulated rig, then fuse
its ToF map and stereo pair with the physics-based DEI (inverse-variance weighting, no network).

>>> import numpy as np
>>> from mobifuse import SimConfig, fuse, sim_calibration, simulate_scene
>>> sim = SimConfig(width=96, height=64, focal_px=84.0, tof_width=48, tof_height=32,
...                 tof_focal_px=42.0)
>>> raw = simulate_scene(11, sim)                          # left/right RGB, ToF, ground truth
>>> c = sim_calibration(sim)                               # what a real capture's calib.json holds
>>> tof = np.where(raw["tof_valid"], raw["tof_depth"], np.nan)
>>> out = fuse(raw["left"], raw["right"], tof,
...            {"left": c.K_left, "tof": c.K_tof, "baseline_m": c.baseline_m}, c.T_left_tof,
...            tof_amplitude=raw["tof_amplitude"], mod_freq_hz=c.mod_freq_hz)
>>> out["depth"].shape, sorted(out)                        # work resolution (downsample 2)
((32, 48), ['K_work', 'depth', 'sigma_st', 'sigma_tof', 'stereo', 'tof'])
>>> bool(np.isfinite(out["depth"]).all())
True

`fuse(..., model="runs/.../model.safetensors")` uses a net trained by `python -m mobifuse.train`.
"""

from mobifuse.api import fuse
from mobifuse.config import SimConfig, TrainConfig
from mobifuse.data import load_capture, sim_calibration
from mobifuse.dei import dei_channels, stereo_dei, tof_dei
from mobifuse.models import TwoStageFusionNet
from mobifuse.simulator import simulate_scene

__all__ = ["fuse", "TwoStageFusionNet", "tof_dei", "stereo_dei", "dei_channels", "SimConfig",
           "TrainConfig", "simulate_scene", "sim_calibration", "load_capture"]
