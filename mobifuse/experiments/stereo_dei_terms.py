"""`python -m mobifuse.experiments.stereo_dei_terms [--quick]`: which stereo evidence misranks?

Renders the bench's fixed-rig test scenes (the original phone rig, B = 1.5 cm, f = 280 px), as
many fixed-rig scenes of the validation seeds (to choose a fix on), and the unseen-rig test
scenes, and prints (and writes to results/mobifuse/stereo_dei_terms.json,
`--out DIR` elsewhere) the Spearman correlation with the true stereo error |SGBM - GT| of:

- the stereo DEI sigma and each of its factors: sigma_disp (px) and its terms (texture, LR
  inconsistency, uniqueness, cost curvature), the depth factor Z_st^2 of the stereo's own
  depth, the hole flag; over all pixels, the measured (left-right checked) ones and the holes;
- the same sigma_disp scaled by other depths, for reference: the true depth (an oracle) and
  the ToF depth (which the DEI may not use: each sensor's sigma from its own evidence);
- sigma with candidate depth references from the stereo's own evidence only:
  max(Z_st, median of Z_st over a 15 x 15 window), max(Z_st, the frame's median Z_st), and
  max(Z_st, a local quantile q of Z_st over a window of a fraction w of the width)
  (`dei.stereo_depth_reference`, q in {0.75, 0.9}, w in {0.2, 0.3, 0.4}); the package's
  `DEIConfig.st_depth_ref="local_quantile"` (the default) uses the one best on the validation
  seeds;
- that DEI as configured, with its calibration (matched pixels and holes fitted apart,
  `LOCAL_QUANTILE`), and the coverage (|err| <= 2 sigma) of it and of the own-depth sigma
  (`OWN`, `st_depth_ref="own"` with its factor).
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.stats import spearmanr

from mobifuse.bench import QUICK, RIG_TEST_SEED0, TEST_SEED0
from mobifuse.config import BenchConfig
from mobifuse.data import rig_for_seed, sim_calibration
from mobifuse.dei import DEI_CHANNELS, coverage, stereo_depth_reference
from mobifuse.pipeline import prepare_frame
from mobifuse.simulator import simulate_scene
from mobifuse.train import VAL_SEED0
from shared.cli import parse_args, run
from shared.io import atomic_write_json
from shared.log import get_logger, progress

log = get_logger("mobifuse.experiments.stereo_dei_terms")
# the local-quantile stereo DEI and its factors from `python -m mobifuse.experiments.calibrate_dei
# --set train.dei.st_depth_ref=local_quantile`
# (results/mobifuse/dei_calibration_local_quantile.json)
LOCAL_QUANTILE = {"st_depth_ref": "local_quantile", "st_scale": 0.2334, "st_hole_scale": 4.4}
# the stereo DEI with the stereo's own depth, the terms and candidates are measured against
OWN = {"st_depth_ref": "own", "st_scale": 1.0881, "st_hole_scale": 1.0}
COVERAGE_OF = ("sigma (own depth)", "DEI local_quantile (calibrated)")


def frame_terms(seed: int, cfg: BenchConfig, family) -> dict[str, np.ndarray]:
    """Every term (flattened) of one rendered scene, plus 'err' and 'valid'."""
    tc = cfg.train
    dc = dataclasses.replace(tc.dei, **OWN)
    sim = rig_for_seed(seed, tc.sim, family)
    raw = simulate_scene(seed, sim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fr = prepare_frame(raw["left"], raw["right"], raw["tof_depth"], raw["tof_valid"],
                           sim_calibration(sim), raw["tof_amplitude"], raw["tof_ambient"],
                           sim.work_downsample, tc.stereo, dc)
    ch = dict(zip(DEI_CHANNELS, fr["dei"]))
    fb = sim.focal_px * sim.baseline_m
    sd = np.exp(ch["log_sigma_disp"]).astype(np.float64)
    z = np.maximum(fr["st"].astype(np.float64), 0.05)
    v = fr["st_valid"]

    def sigma(zr):  # the stereo DEI's formula with depth reference zr
        return np.hypot(zr**2 / fb * sd, (dc.hole_sigma + dc.hole_rel * zr) * ~v)

    zv = z[v] if v.any() else z
    t = {"sigma (own depth)": fr["sigma_st"], "sigma_disp": sd, "Z_st^2": z**2,
         "texture term": 1 / np.sqrt(dc.texture_eps + fr["texture"]),
         "LR inconsistency": ch["lr_error"], "1 - uniqueness": 1 - ch["uniqueness"],
         "1 / (1 + curvature)": np.exp(-ch["log_curvature"]), "hole": (~v).astype(float),
         "oracle: Z_gt^2 sigma_disp": raw["depth"] ** 2 * sd,
         "reference: Z_tof^2 sigma_disp": fr["tof"].astype(np.float64) ** 2 * sd,
         "sigma, max(Z_st, local median)": sigma(np.maximum(z, ndimage.median_filter(z, 15))),
         "sigma, max(Z_st, frame median)": sigma(np.maximum(z, np.median(zv)))}
    for q in (0.75, 0.9):
        for w in (0.2, 0.3, 0.4):
            t[f"sigma, max(Z_st, local q{q:g} w{w:g})"] = sigma(stereo_depth_reference(z, q, w))
    lq = dataclasses.replace(dc, **LOCAL_QUANTILE)
    zq = stereo_depth_reference(z, lq.st_ref_quantile, lq.st_ref_window)
    t["DEI local_quantile (calibrated)"] = lq.st_scale * (np.hypot(
        zq**2 / fb * sd, lq.st_hole_scale * (lq.hole_sigma + lq.hole_rel * zq) * ~v) + 1e-3)
    out = {k: np.asarray(x, np.float64).ravel() for k, x in t.items()}
    out["err"] = np.abs(fr["st"] - raw["depth"]).ravel().astype(np.float64)
    out["valid"] = v.ravel()
    return out


def spearman_table(frames: list[dict]) -> dict:
    a = {k: np.concatenate([f[k] for f in frames]) for k in frames[0]}
    e, v = a.pop("err"), a.pop("valid")
    out = {"valid_share": float(v.mean()), "mae_valid": float(e[v].mean()),
           "mae_holes": float(e[~v].mean()) if (~v).any() else float("nan")}
    for k in COVERAGE_OF:
        out[f"coverage, {k}"] = coverage(a[k], e)
    for k, x in a.items():
        out[k] = {m: float(spearmanr(x[sel], e[sel]).statistic)
                  if sel.any() and np.ptp(x[sel]) > 0 else float("nan")
                  for m, sel in (("all", np.ones_like(v)), ("measured", v), ("holes", ~v))}
    return out


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(argv, BenchConfig, prog="mobifuse.experiments.stereo_dei_terms",
                           description=__doc__.split("\n\n")[0],
                           default_config="configs/mobifuse/bench.yaml", quick=QUICK)
    base = cfg.train.seed * 100_000
    out = {}
    for name, family, seed0, n in (("fixed_rig_validation", None, VAL_SEED0, cfg.test_scenes),
                                   ("fixed_rig", None, TEST_SEED0, cfg.test_scenes),
                                   ("unseen_rigs", cfg.test_rigs, RIG_TEST_SEED0,
                                    cfg.rig_test_scenes)):
        frames = [frame_terms(base + seed0 + i, cfg, family)
                  for i in progress(range(n), desc=name, leave=False)]
        out[name] = spearman_table(frames)
        print(f"\n{name}: stereo measured on {100 * out[name]['valid_share']:.1f} % of pixels, "
              f"MAE there {out[name]['mae_valid']:.3f} m, in holes {out[name]['mae_holes']:.3f} m")
        for k in COVERAGE_OF:
            print(f"  |err| <= 2 sigma, {k}: {out[name][f'coverage, {k}']:.3f}")
        for k, r in out[name].items():
            if isinstance(r, dict):
                print(f"  {k:34s} all {r['all']:+.3f}  measured {r['measured']:+.3f}  "
                      f"holes {r['holes']:+.3f}")
    atomic_write_json(Path(args.out or "results/mobifuse") / "stereo_dei_terms.json", out)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
