"""`python -m edgeoar.experiments.fusion_auc [--quick] --seeds 0 1 2 3 --out DIR`: does any
reading of the IIE fusion rank exits better than max-softmax of the mean fusion? Validation
split only.

For each training seed (the bench's iterative model, trained or taken from the cache through
`train.get_model`) the validation clips' per-step outputs are read once, and the
accuracy-vs-frames AUC (`exits.auc`, the bench's normalisation, confidence thresholds swept
over the bench's IIE grid) is computed for exits on the max probability of:
* `mean`: the mean of the two modalities' softmaxes (the bench's max-softmax exit);
* `iie`: the inverse-information-entropy mixture (the bench's IIE, `exits.iie_fuse`);
* `iie_geometric`: the same entropy weights on log-probabilities (a weighted product of
  experts, renormalised);
* `product`: the unweighted product of the two softmaxes, renormalised;
* `motion`: the motion stream alone;
and for IIE + MC at each tau_mc of the bench's grid (`iie_mc_<tau>`: exit where the IIE
confidence passes and MC >= tau). The prediction at the exit is read from the same fusion.
Writes fusion_auc.json: per seed the AUCs and each one minus `mean`'s; the mean and the
smallest of these differences over seeds. Nothing is selected here and the test split is
never read.
"""

from __future__ import annotations

import numpy as np

from edgeoar.bench import QUICK
from edgeoar.config import BenchConfig
from edgeoar.data import load_split
from edgeoar.exits import (
    auc,
    first_exit,
    iie_fuse,
    modality_consistency,
    softmax,
    summarise,
    threshold_grid,
)
from edgeoar.train import get_model, predict
from shared.cli import build_parser, parse_args, run
from shared.config import apply_overrides, from_dict, to_dict
from shared.errors import UserError
from shared.io import atomic_write_json, make_run_dir
from shared.log import get_logger

__all__ = ["fusions", "exit_auc", "fusion_aucs", "main"]

log = get_logger("edgeoar.experiments.fusion_auc")

EPS = 1e-12


def fusions(rgb_logits: np.ndarray, mot_logits: np.ndarray) -> dict[str, np.ndarray]:
    """(N, T, K) logits of the two modalities -> {name: (N, T, K) fused probabilities}."""
    pr, pm = softmax(rgb_logits), softmax(mot_logits)
    iie, w = iie_fuse([pr, pm])
    lr, lm = np.log(np.clip(pr, EPS, 1.0)), np.log(np.clip(pm, EPS, 1.0))
    return {"mean": 0.5 * (pr + pm), "iie": iie,
            "iie_geometric": softmax(w[..., :1] * lr + w[..., 1:] * lm),
            "product": softmax(lr + lm), "motion": pm}


def exit_auc(conf: np.ndarray, probs: np.ndarray, labels: np.ndarray, grid: list[float]) -> float:
    """AUC of the exit 'first step with conf >= tau' swept over `grid`, the prediction read
    from `probs` at the exit. conf (N, T), probs (N, T, K)."""
    steps = conf.shape[1]
    pts = []
    for tau in grid:
        ex = first_exit(conf >= tau)
        m = summarise(ex, probs[np.arange(len(ex)), ex].argmax(-1), labels, steps)
        pts.append((m["frac"], m["acc"]))
    return auc(np.array(sorted(pts)), steps)


def fusion_aucs(rgb_logits: np.ndarray, mot_logits: np.ndarray, labels: np.ndarray,
                conf_grid: int, mc_grid: list[float]) -> dict[str, float]:
    """Every fusion's AUC and IIE + MC's at each tau_mc > 0, for one model's outputs."""
    steps = rgb_logits.shape[1]
    grid = threshold_grid("iie", steps, conf_grid, [0.0])
    fused = fusions(rgb_logits, mot_logits)
    out = {k: exit_auc(p.max(-1), p, labels, grid) for k, p in fused.items()}
    mc = modality_consistency(softmax(rgb_logits), softmax(mot_logits))
    conf = fused["iie"].max(-1)
    for tau in (t for t in mc_grid if t > 0):
        out[f"iie_mc_{tau:g}"] = exit_auc(np.where(mc >= tau, conf, -1.0), fused["iie"],
                                          labels, grid)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("edgeoar.experiments.fusion_auc", __doc__.split("\n\n")[0],
                          "configs/edgeoar/bench.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3],
                        help="training seeds (train.seed) of the iterative model")
    args, bc = parse_args(argv, BenchConfig, prog="edgeoar.experiments.fusion_auc",
                          description=__doc__.split("\n\n")[0], parser=parser, quick=QUICK,
                          default_config="configs/edgeoar/bench.yaml")
    if len(set(args.seeds)) != len(args.seeds):
        raise UserError(f"--seeds has duplicates: {args.seeds}")
    run_dir = make_run_dir(args.out, "edgeoar", "fusion_auc")
    per_seed = {}
    for seed in args.seeds:
        cfg = from_dict(BenchConfig, apply_overrides(to_dict(bc), [f"train.seed={seed}"])).train
        model, _ = get_model(cfg)
        val = load_split(cfg, "val")
        p = predict(model, val)
        a = fusion_aucs(p["rgb"], p["motion"], val["label"], bc.exits.conf_grid,
                        bc.exits.mc_grid)
        per_seed[str(seed)] = {"auc": a, "minus_mean": {k: v - a["mean"] for k, v in a.items()}}
        log.info("seed %d: %s", seed, ", ".join(f"{k} {v:.4f}" for k, v in a.items()))
    names = list(next(iter(per_seed.values()))["auc"])
    summary = {k: {"mean_minus_mean": float(np.mean([s["minus_mean"][k]
                                                    for s in per_seed.values()])),
                   "worst_minus_mean": float(min(s["minus_mean"][k]
                                                 for s in per_seed.values()))}
               for k in names}
    for k, v in summary.items():
        log.info("%-16s minus mean-fusion max-softmax: mean %+.4f, worst seed %+.4f", k,
                 v["mean_minus_mean"], v["worst_minus_mean"])
    atomic_write_json(run_dir / "fusion_auc.json",
                      {"split": "val", "seeds": args.seeds, "per_seed": per_seed,
                       "summary": summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
