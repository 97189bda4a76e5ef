"""Per pixel class, the S16 nets' final output against ToF-only on the fresh unseen scenes every
S16 net leaves above 0.7 (65006, 65032, 65038); seeds 3-5 (train_scale_cpu_s16_b/nets). A
diagnosis after the S16 rule, nothing chosen on it. Usage (repository root,
PAPERBENCH_CACHE=.cache): python results/mobifuse/train_scale/diag_s16.py SEED ..."""
import sys
from pathlib import Path

import numpy as np
import torch

from mobifuse.bench import QUICK, predict_frames, rig_frames, rig_refined
from mobifuse.config import BenchConfig
from mobifuse.models import load_model
from shared.cli import parse_args

torch.set_num_threads(1)
_, cfg = parse_args([], BenchConfig, prog="diag_s16", description=__doc__,
                    default_config="configs/mobifuse/bench.yaml", quick=QUICK)
NETS = sorted((Path(__file__).resolve().parents[1] / "train_scale_cpu_s16_b" / "nets").glob("*.safetensors"))
nets = [load_model(p) for p in NETS]
for seed0 in map(int, sys.argv[1:]):
    f = rig_frames(cfg, cfg.test_rigs, seed0, 1, "x")[0]
    g, gt = f["geom"], f["gt"]
    valid = np.isfinite(gt) & (gt > 0)
    tof = g[0]
    tv, sv = g[1] > 0.5, g[3] > 0.5
    b, fpx, w, h, doffs, ratio, mod, scale = f["rig"]
    print(f"seed {seed0}: B={b:.3f} m f={fpx:.0f} px w={int(w)} tof_ratio={ratio} mod={mod / 1e6:.0f} MHz "
          f"depth {gt[valid].min():.2f}-{gt[valid].max():.2f} m; SGBM measured {sv[valid].mean():.0%}, "
          f"ToF measured {tv[valid].mean():.0%}")
    e_t = np.abs(tof - gt)
    e_s = np.abs(g[2] - gt)
    print(f"  ToF MAE {e_t[valid].mean():.4f} m; SGBM MAE where measured {e_s[valid & sv].mean():.4f} m "
          f"(ToF there {e_t[valid & sv].mean():.4f})")
    for p, net in zip(NETS, nets):
        fin = rig_refined(predict_frames(net, [f]), [f], cfg.agree_k, cfg.train.sim)[0]
        e_f = np.abs(fin - gt)
        print(f"  {p.stem}: ratio {e_f[valid].mean() / e_t[valid].mean():.3f}")
        for name, m in (("tof&st", tv & sv), ("tof only", tv & ~sv), ("st only", ~tv & sv),
                        ("neither", ~tv & ~sv)):
            m = m & valid
            if m.sum() == 0:
                continue
            print(f"    {name:9s} {m.mean() / valid.mean():5.1%} px | tof {e_t[m].mean():.4f} final "
                  f"{e_f[m].mean():.4f} | excess share {(e_f - e_t)[m].sum() / e_t[valid].sum():+.3f}"
                  f" | signed final-gt {(fin - gt)[m].mean():+.4f} tof-gt {(tof - gt)[m].mean():+.4f}")
