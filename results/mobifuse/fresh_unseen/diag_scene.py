"""Per pixel class, the final output's error against ToF-only on single unseen-rig scenes.
Usage (repository root): python results/mobifuse/fresh_unseen/diag_scene.py SEED ..."""
import sys, numpy as np
from mobifuse.bench import rig_frames, rig_nets
from c1 import c1_config, finals
cfg = c1_config()
net = rig_nets(cfg)["mobifuse"]
for seed0 in map(int, sys.argv[1:]):
    frames = rig_frames(cfg, cfg.test_rigs, seed0, 1, "x")
    f = frames[0]
    raw, fin = finals(net, frames, cfg)[0]
    g = f["geom"]; gt = f["gt"]; valid = np.isfinite(gt) & (gt > 0)
    tof, st = g[0], g[2]; tv, sv = g[1] > 0.5, g[3] > 0.5
    print(f"seed {seed0} rig B={f['rig'][0]:.3f} f={f['rig'][1]:.0f} w={int(f['rig'][2])} tof_ratio={f['rig'][5]} mod={f['rig'][6]/1e6:.0f}MHz  gt range {np.nanmin(gt[valid]):.2f}-{np.nanmax(gt[valid]):.2f}")
    e_t, e_r, e_f = np.abs(tof-gt), np.abs(raw-gt), np.abs(fin-gt)
    n = valid.sum()
    print(f"  MAE tof {e_t[valid].mean():.4f} raw net {e_r[valid].mean():.4f} final {e_f[valid].mean():.4f}  ratio {e_f[valid].mean()/e_t[valid].mean():.3f}")
    for name, m in (("tof&st", tv&sv), ("tof only", tv&~sv), ("st only", ~tv&sv), ("neither", ~tv&~sv)):
        m = m & valid
        if m.sum()==0: continue
        print(f"  {name:9s} {100*m.sum()/n:5.1f}% px | tof {e_t[m].mean():.4f} final {e_f[m].mean():.4f} | excess share {((e_f-e_t)[m].sum())/max(1e-9,(e_t[valid].sum())):+.3f} | mean signed final-gt {(fin-gt)[m].mean():+.4f} tof-gt {(tof-gt)[m].mean():+.4f}")
