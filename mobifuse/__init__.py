"""mobifuse: ToF + stereo RGB depth fusion guided by a physics-based Depth Error Indication (DEI)
modality (MobiFuse, Zhang et al., arXiv 2412.13848).

Modules (see README.md):
- `simulator`: seeded ray-cast rooms on randomised rigs -> rectified RGB pair, AMCW ToF
  (flying pixels, multipath, wiggling, shot noise with ambient light, phase wrap, dropouts),
  ground truth and region masks;
- `calibration`: `Calibration` of a rectified pair + ToF rig (Z = f B / (d + doffs));
- `stereo`: OpenCV SGBM over the rig's disparity search, left-right check, cost evidence;
- `geometry`: ToF reprojection (z-buffer), densification, point clouds, Chamfer distance;
- `dei`: per-sensor expected-error maps from physical factors;
- `pipeline`: raw frames -> fusion inputs (`prepare_frame`); `data`: cached datasets, loaders;
- `models`: `TwoStageFusionNet` (progressive two-stage fusion with backward connections);
- `offset`, `agreement`, `denoise`: closed-form steps after the net (the scene-wide offset the
  stereo measures, stereo agreement, DEI bilateral denoising), all inside the net's convex
  guard;
- `baselines`, `metrics`; `api.fuse` for your own arrays;
- recipes: `python -m mobifuse.train | eval | bench`.

Example (what a notebook user types; a few seconds): render a small simulated rig, then fuse
its ToF map and stereo pair with the shipped fusion net (the DEI-weighted inverse-variance
fusion is `model="inverse_variance"`). Any image size works, odd widths included.

>>> import numpy as np
>>> from mobifuse import SimConfig, fuse, sim_calibration, simulate_scene
>>> sim = SimConfig(width=97, height=64, focal_px=84.0, tof_width=49, tof_height=32,
...                 tof_focal_px=42.0, doffs_px=3.0)
>>> raw = simulate_scene(11, sim)                          # left/right RGB, ToF, ground truth
>>> calib = sim_calibration(sim)                           # K_left, K_right, baseline, ToF, ...
>>> tof = np.where(raw["tof_valid"], raw["tof_depth"], np.nan)
>>> out = fuse(raw["left"], raw["right"], tof, calib, tof_amplitude=raw["tof_amplitude"])
>>> out["depth"].shape, out["depth_full"].shape           # work grid (downsample 2), caller's
((32, 49), (64, 97))
>>> bool(np.isfinite(out["depth"]).all())
True

`load_middlebury_scene(folder)` / `load_capture(folder)` return the `calib` that `fuse` takes.
"""

from mobifuse.api import fuse
from mobifuse.calibration import Calibration
from mobifuse.config import RigFamily, SimConfig, TrainConfig
from mobifuse.data import load_capture, load_middlebury_scene, sim_calibration
from mobifuse.dei import dei_channels, stereo_dei, tof_dei
from mobifuse.models import TwoStageFusionNet
from mobifuse.simulator import sample_rig, simulate_scene

__all__ = ["fuse", "Calibration", "TwoStageFusionNet", "tof_dei", "stereo_dei", "dei_channels",
           "SimConfig", "RigFamily", "TrainConfig", "simulate_scene", "sample_rig",
           "sim_calibration", "load_capture", "load_middlebury_scene"]
