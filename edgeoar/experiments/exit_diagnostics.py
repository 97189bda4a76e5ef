"""`python -m edgeoar.experiments.exit_diagnostics [--quick] [--out DIR]`: why the exits
cannot go earlier, on the bench's iteratively trained model (cached, as `edgeoar.bench`).

Prints and writes `exit_diagnostics.json`:
* per-step accuracy of each modality alone and of the IIE fusion (validation and test), and
  split into early-separable classes and temporal-only pairs;
* the oracle exit (`exits.oracle_exits`: each clip exits at the first step from which its
  prediction stays right), the floor on frames for any exit rule reading these outputs;
* the strict frame floor (`exits.frame_floor`): the fewest mean frames of any exit
  assignment whose accuracy is within `exits.tolerance` of the full clip's (the oracle exit
  above waits until a clip stays right, so rules may go below it);
* the oracle exit frame per class (which classes become right for good early);
* per-step temperature scaling fitted on validation (`exits.fit_temperature`) applied before
  IIE: the chosen IIE operating point with and without it (thresholds chosen on validation);
* MC at equal frames: IIE + MC at a few (tau_conf, tau_mc) against IIE alone with the smallest
  tau_conf whose validation frames reach IIE + MC's, wrong early exits on test;
* the selection bias of the threshold rule, on validation alone (`selection_bias`): halve the
  validation split at random (per class), choose the thresholds on one half by the bench's
  rule, read the accuracy drop vs the full clip and the frames on the other half;
* what MC knows that the IIE confidence does not (`mc_signal`): per step, how well each of
  the two ranks right above wrong IIE predictions (`auroc`), MC among the clips confident
  enough to exit, and the accuracy-vs-frames AUC of IIE + MC at every tau_mc of the grid
  (tau_mc = 0 is IIE alone).
Nothing is selected on the test split.
"""

from __future__ import annotations

import numpy as np

from edgeoar.bench import QUICK
from edgeoar.config import BenchConfig
from edgeoar.data import class_names, load_split
from edgeoar.exits import (
    OperatingRule,
    apply_policy,
    as_rule,
    auc,
    compare_policies,
    curve,
    fit_temperature,
    frame_floor,
    oracle_exits,
    select,
    step_scores,
    summarise,
    threshold_grid,
)
from edgeoar.train import get_model, predict
from shared.cli import parse_args, run
from shared.io import atomic_write_json, make_run_dir
from shared.log import get_logger

log = get_logger("edgeoar.experiments.exit_diagnostics")


def _acc(p: np.ndarray, y: np.ndarray, rows: np.ndarray | None = None) -> list[float]:
    ok = p.argmax(-1) == y[:, None]
    return (ok[rows] if rows is not None else ok).mean(0).round(3).tolist()


def mc_at_equal_frames(val: dict, yv: np.ndarray, test: dict, yt: np.ndarray, steps: int,
                       conf_grid: int) -> list[dict]:
    """IIE + MC vs IIE alone matched on validation frames (see the module docstring)."""
    grid = threshold_grid("iie", steps, conf_grid, [])
    iie_val = [(g, summarise(*apply_policy("iie", val, g), yv, steps)["frames"]) for g in grid]
    rows = []
    for tau in (0.5, 0.6, 0.7, 0.8):
        for m in (0.5, 0.7):
            f_val = summarise(*apply_policy("iie_mc", val, (tau, m)), yv, steps)["frames"]
            g = min((r for r in iie_val if r[1] >= f_val - 1e-9), key=lambda r: r[1],
                    default=(1.0, steps))[0]
            on = summarise(*apply_policy("iie_mc", test, (tau, m)), yt, steps)
            off = summarise(*apply_policy("iie", test, g), yt, steps)
            rows.append({"tau_conf": tau, "tau_mc": m, "mc": on, "iie_tau_conf": float(g),
                         "iie": off})
    return rows


def _rows(s: dict, idx: np.ndarray) -> dict:
    return {k: v[idx] for k, v in s.items()}


def selection_bias(val: dict, yv: np.ndarray, steps: int, rule: float | OperatingRule,
                   conf_grid: int, mc_grid: list[float], reps: int = 50, seed: int = 0) -> dict:
    """Validation only: over `reps` random class-stratified halvings (A, B) of the validation
    split, the IIE and IIE + MC thresholds chosen on A (`exits.select`, full-clip accuracy of
    A as the reference) and applied to B. -> per policy the mean drop below the full clip on A
    (where it is chosen, <= tolerance by construction when any threshold qualifies) and on B,
    the mean fraction of frames on A and B, and the share of halvings whose B drop exceeds
    the tolerance. rule: the bench's `OperatingRule` (a float: fewest_frames at that
    tolerance)."""
    rule = as_rule(rule)
    tolerance = rule.tolerance
    rng = np.random.default_rng(seed)
    out: dict = {}
    for name in ("iie", "iie_mc"):
        grid = threshold_grid(name, steps, conf_grid, mc_grid)
        rec = []
        for _ in range(reps):
            a = np.zeros(len(yv), bool)
            for k in np.unique(yv):
                rows = np.flatnonzero(yv == k)
                a[rng.choice(rows, len(rows) // 2, replace=False)] = True
            half = {"A": np.flatnonzero(a), "B": np.flatnonzero(~a)}
            sc = {h: _rows(val, i) for h, i in half.items()}
            full = {h: summarise(*apply_policy("full_clip", sc[h], None), yv[i], steps)["acc"]
                    for h, i in half.items()}
            param, _ = select(name, sc["A"], yv[half["A"]], grid, full["A"], rule)
            res = {h: summarise(*apply_policy(name, sc[h], param), yv[i], steps)
                   for h, i in half.items()}
            rec.append([full["A"] - res["A"]["acc"], full["B"] - res["B"]["acc"],
                        res["A"]["frac"], res["B"]["frac"]])
        r = np.array(rec)
        out[name] = {"drop_A": float(r[:, 0].mean()), "drop_B": float(r[:, 1].mean()),
                     "frac_A": float(r[:, 2].mean()), "frac_B": float(r[:, 3].mean()),
                     "share_B_over_tolerance": float(np.mean(r[:, 1] > tolerance + 1e-12)),
                     "reps": reps}
    return out


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """P(a random positive scores above a random negative), ties counted half (the
    Mann-Whitney statistic over average ranks); nan when either group is empty."""
    score, positive = np.asarray(score, np.float64), np.asarray(positive, bool)
    n1, n0 = int(positive.sum()), int((~positive).sum())
    if not n1 or not n0:
        return float("nan")
    _, inv, counts = np.unique(score, return_inverse=True, return_counts=True)
    rank = (np.cumsum(counts) - (counts - 1) / 2)[inv]  # 1-based, ties averaged
    return float((rank[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def mc_signal(s: dict, y: np.ndarray, steps: int, conf_grid: int, mc_grid: list[float],
              tau_conf: float) -> dict:
    """Does MC tell right from wrong IIE predictions better than the IIE confidence does?
    Per step: the AUROC of the confidence (max p_iie) and of MC for "the IIE prediction is
    right", and of MC among the clips whose confidence is >= tau_conf (what the gate adds
    where the confidence alone would exit). And the AUC of IIE + MC's accuracy-vs-frames
    curve (tau_conf swept, as the bench does) at each tau_mc of the grid."""
    right = s["p_iie"].argmax(-1) == y[:, None]  # (N, T)
    conf = s["p_iie"].max(-1)
    out = {"auroc_conf": [], "auroc_mc": [], "auroc_mc_if_confident": [], "share_confident": []}
    for t in range(steps):
        sure = conf[:, t] >= tau_conf
        out["auroc_conf"].append(auroc(conf[:, t], right[:, t]))
        out["auroc_mc"].append(auroc(s["mc"][:, t], right[:, t]))
        out["auroc_mc_if_confident"].append(auroc(s["mc"][sure, t], right[sure, t]))
        out["share_confident"].append(float(sure.mean()))
    out = {k: np.round(v, 3).tolist() for k, v in out.items()}
    taus = sorted({g[0] for g in threshold_grid("iie_mc", steps, conf_grid, mc_grid)})
    out["auc_by_tau_mc"] = {str(m): auc(curve("iie_mc", s, y, [(a, m) for a in taus]), steps)
                            for m in sorted({0.0, *mc_grid})}
    return out


def main(argv: list[str] | None = None) -> int:
    args, bc = parse_args(argv, BenchConfig, prog="edgeoar.experiments.exit_diagnostics",
                          description=__doc__.split("\n\n")[0], quick=QUICK,
                          default_config="configs/edgeoar/bench.yaml")
    model, _ = get_model(bc.train)
    sp = {s: load_split(bc.train, s) for s in ("val", "test")}
    pred = {s: predict(model, sp[s]) for s in sp}
    steps, out = bc.train.stream.clip_frames, {}
    names = class_names(bc.train.stream)
    for s, d in sp.items():
        sc, y, e = step_scores(pred[s]["rgb"], pred[s]["motion"], pred[s]["gate"]), d["label"], \
            d["early"]
        ex = oracle_exits(sc["p_iie"], y) + 1
        out[s] = {"acc_rgb": _acc(sc["p_rgb"], y), "acc_motion": _acc(sc["p_mot"], y),
                  "acc_iie": _acc(sc["p_iie"], y), "acc_iie_early_sep": _acc(sc["p_iie"], y, e),
                  "acc_iie_temporal": _acc(sc["p_iie"], y, ~e),
                  "oracle_frac": float(ex.mean() / steps),
                  "floor_frac": frame_floor(sc["p_iie"], y, float(
                      (sc["p_iie"][:, -1].argmax(-1) == y).mean()) - bc.exits.tolerance) / steps,
                  "oracle_frames_early_sep": float(ex[e].mean()),
                  "oracle_frames_temporal": float(ex[~e].mean()),
                  "oracle_frames_per_class": {n: float(ex[y == k].mean()) for k, n in
                                              enumerate(names) if (y == k).any()}}
    temps = {m: fit_temperature(pred["val"][m], sp["val"]["label"]) for m in ("rgb", "motion")}
    out["temperatures"] = {m: t.round(3).tolist() for m, t in temps.items()}
    for cal in (False, True):
        sc = {}
        for s in sp:
            lg = {m: pred[s][m] / (temps[m][None, :, None] if cal else 1.0)
                  for m in ("rgb", "motion")}
            sc[s] = step_scores(lg["rgb"], lg["motion"], pred[s]["gate"])
        res = compare_policies(sc["val"], sp["val"]["label"],
                               {"test": (sc["test"], sp["test"]["label"])},
                               bc.exits.operating_rule(),
                               bc.exits.conf_grid, bc.exits.mc_grid,
                               policies=("iie", "iie_mc", "full_clip"))
        out["calibrated" if cal else "raw"] = {
            p: {k: (r["test"][k] if k != "param" else str(r["param"]))
                for k in ("param", "acc", "frac", "wrong_early", "auc")}
            for p, r in res.items()}
    sc = {s: step_scores(pred[s]["rgb"], pred[s]["motion"], pred[s]["gate"]) for s in sp}
    out["mc_at_equal_frames"] = mc_at_equal_frames(sc["val"], sp["val"]["label"], sc["test"],
                                                   sp["test"]["label"], steps,
                                                   bc.exits.conf_grid)
    out["selection_bias"] = selection_bias(sc["val"], sp["val"]["label"], steps,
                                           bc.exits.operating_rule(), bc.exits.conf_grid,
                                           bc.exits.mc_grid)
    tau_mc_chosen = compare_policies(sc["val"], sp["val"]["label"], {}, bc.exits.operating_rule(),
                                     bc.exits.conf_grid, bc.exits.mc_grid,
                                     policies=("iie_mc",))["iie_mc"]["param"]
    out["mc_signal"] = {"tau": list(tau_mc_chosen), **{
        s: mc_signal(sc[s], sp[s]["label"], steps, bc.exits.conf_grid, bc.exits.mc_grid,
                     tau_mc_chosen[0]) for s in sp}}
    run_dir = make_run_dir(args.out, "edgeoar", "exit_diagnostics")
    atomic_write_json(run_dir / "exit_diagnostics.json", out)
    for k, v in out.items():
        log.info("%s: %s", k, v)
    return 0


if __name__ == "__main__":
    run(main)
