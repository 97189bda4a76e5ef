"""D_b of `walker2d-medium-replay+10expert` (seed 0, the bench's config): episode lengths and the
mean action at episode starts, written to walker2d_mr10_data.json beside this file.

    python results/offline_il_select/diagnose/walker2d_mr_data.py
"""

import json
from pathlib import Path

import numpy as np

from offline_il_select.bench import _arm_cfg
from offline_il_select.data import build_data
from shared.il.datasets import episode_ids

cfg = _arm_cfg("walker2d-medium-replay+10expert", "ilid", 0, False, 100_000)
imp = build_data(cfg.data).imperfect
a, ep = imp["actions"], episode_ids(imp)
first = np.r_[True, ep[1:] != ep[:-1]]
lengths = np.diff(np.r_[np.flatnonzero(first), len(a)])
out = {"rows": int(len(a)), "episodes": int(first.sum()),
       "episode_length_quartiles": np.percentile(lengths, [25, 50, 75]).tolist(),
       "mean_action_at_episode_starts": a[first].mean(0).round(4).tolist(),
       "mean_action_all_rows": a.mean(0).round(4).tolist()}
print(out)
Path(__file__).with_name("walker2d_mr10_data.json").write_text(json.dumps(out, indent=1) + "\n")
