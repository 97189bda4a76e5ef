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
- `baselines`, `evaluate`; `api.fuse` for your own arrays;
- recipes: `python -m mobifuse.train | eval | bench`.
"""

from mobifuse.api import fuse
from mobifuse.models import TwoStageFusionNet

__all__ = ["fuse", "TwoStageFusionNet"]
