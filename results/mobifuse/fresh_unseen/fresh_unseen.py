"""Per-scene fused / ToF-only MAE of the bench's cross-rig net on fresh scenes of the unseen rig
family, scored as `mobifuse.bench` scores its 12 unseen scenes (`rig_frames`, `rig_arms`,
`rig_table`). Usage (repository root):
python results/mobifuse/fresh_unseen/fresh_unseen.py SEED0 N OUT.json [--set key=value ...]"""
import json
import sys

import numpy as np
import torch

from mobifuse.bench import (QUICK, require_sensor_inputs, rig_arms, rig_frames, rig_nets,
                            rig_table)
from mobifuse.config import BenchConfig
from shared.cli import parse_args
from shared.bench import BenchReport

seed0, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
_, cfg = parse_args(sys.argv[4:], BenchConfig, prog="fresh_unseen", description=__doc__,
                    default_config="configs/mobifuse/bench.yaml", quick=QUICK)
require_sensor_inputs(cfg, "fresh_unseen.py")
torch.set_num_threads(cfg.train.threads)
nets = rig_nets(cfg)
frames = rig_frames(cfg, cfg.test_rigs, seed0, n, "fresh unseen rigs")
rep = BenchReport("mobifuse", baseline="tof_only", command=sys.argv)
ratios = rig_table(rep, frames, rig_arms(frames, nets, cfg.agree_k, cfg.train.sim), "fresh")
r = np.asarray(ratios["vs_best"])
blocks = [r[i:i + 12] for i in range(0, len(r) - len(r) % 12, 12)]
res = {"seed0": seed0, "n": n, "vs_best": r.tolist(), "vs_tof": ratios["vs_tof"],
       "share_le_0.7": float(np.mean(r <= 0.7)), "share_le_1.0": float(np.mean(r <= 1.0)),
       "mean": float(r.mean()), "worst": float(r.max()),
       "blocks_of_12": [{"worst": float(b.max()), "at_or_below_0.7": int((b <= 0.7).sum())}
                        for b in blocks]}
print(json.dumps({k: v for k, v in res.items() if k not in ("vs_best", "vs_tof")}, indent=1))
json.dump(res, open(out, "w"), indent=1)
