"""`python -m edgeoar.experiments.operating_point [--quick] --seeds 0 1 2 --out DIR`: which
rule for choosing the IIE + MC operating point on validation (`exits.OperatingRule`) holds the
two-sided target (<= 35 % of the frames AND accuracy within 2 points of the full clip) on
clips it did not choose on, across training seeds.

Phase 1, validation only. For each training seed (the bench's iterative model, trained or
taken from the cache through `train.get_model`) the validation clips are halved at random,
class-stratified, `--halvings` times; each rule of `CANDIDATES` picks its point on one half
(the half's own full-clip accuracy as the reference) and is scored on the other, both ways.
Per rule and seed: the mean held-out drop below the full clip and fraction of frames, the
share of held-out halves over the 2-point bar, over the frame target and meeting both; per
seed the share of held-out halves on which any point of the grid meets both (`corner`: no
rule choosing among those points does better) and the full validation split's corner. A
rule *holds* on a seed when its mean held-out drop is <= 2 points and its mean held-out
fraction <= 35 %; the rule chosen is the one that holds on every seed with the highest
worst-seed share of halves meeting both (ties: the mean share, then the fewer held-out
frames), else `fewest_frames`. A half holds half the validation clips (840 at the bench's
120 a class) where the bench selects on all of them and reads 560 test clips.

Phase 2 (`--test-seeds S ...`): the chosen rule and `fewest_frames`, each chosen on the full
validation split and read on the test split, per seed, and the test split's own corner. Nothing in
phase 1 reads the test split, and the choice is made before phase 2 runs. `--read-rules` names
the rules read on test instead (e.g. the bench's adopted rule when fewer seeds are probed);
`--test-skip M` reads clips M ... M + test_per_class - 1 of each class instead of the first
test_per_class: with M >= the bench's test_per_class, clip seeds the bench's test split never
holds (a fresh test split). Writes operating_point.json.
"""

from __future__ import annotations

import numpy as np

from edgeoar.bench import QUICK
from edgeoar.config import BenchConfig
from edgeoar.data import class_names, load_split
from edgeoar.exits import (
    OperatingRule,
    apply_policy,
    choose_point,
    select,
    step_scores,
    summarise,
    threshold_grid,
)
from edgeoar.train import get_model, predict
from shared.cli import build_parser, parse_args, run
from shared.config import apply_overrides, from_dict, to_dict
from shared.errors import UserError
from shared.io import atomic_write_json, make_run_dir
from shared.log import get_logger

log = get_logger("edgeoar.experiments.operating_point")

FRAME_TARGET = 0.35  # the target: IIE + MC uses <= 35 % of the frames ...
DROP_TARGET = 0.02  # ... at accuracy within 2 points of the full clip
FRAMES_AT = (0.33, 0.34, FRAME_TARGET)  # `corner`: the margins read off each split's curve
DROPS_AT = (0.01, 0.015, DROP_TARGET)

# the rules compared (declared before any run): the current edge rule, the frame budget spent
# on accuracy (at the target and with 1 / 2 points of margin), the centre of the feasible
# region, and the bar held by a one-sided 84 % / 95 % lower bound of the paired difference
CANDIDATES = {
    "fewest_frames": OperatingRule("fewest_frames"),
    "budget_0.35": OperatingRule("budget", budget=0.35),
    "budget_0.34": OperatingRule("budget", budget=0.34),
    "budget_0.33": OperatingRule("budget", budget=0.33),
    "centre_0.35": OperatingRule("centre", budget=0.35),
    "centre_0.34": OperatingRule("centre", budget=0.34),
    "lower_bound_z1.0": OperatingRule("lower_bound", z=1.0),
    "lower_bound_z1.645": OperatingRule("lower_bound", z=1.645),
}


def per_clip(s: dict, labels: np.ndarray, grid: list) -> tuple[np.ndarray, np.ndarray]:
    """IIE + MC at every parameter of `grid`: exit index (P, N) and correctness (P, N)."""
    out = [apply_policy("iie_mc", s, p) for p in grid]
    return np.stack([o[0] for o in out]), np.stack([o[1] == labels for o in out])


def rows_on(ex: np.ndarray, ok: np.ndarray, ok_ref: np.ndarray, idx: np.ndarray, grid: list,
            steps: int) -> list[tuple]:
    """Candidate rows (param, {acc, frac}, se of the paired difference) on the clips `idx`;
    the same figures `exits.select` computes, from the precomputed per-clip arrays."""
    acc = ok[:, idx].mean(1)
    frac = (ex[:, idx] + 1).mean(1) / steps
    d = ok[:, idx].astype(np.float64) - ok_ref[idx]
    se = d.std(1, ddof=1) / np.sqrt(len(idx))
    return [(p, {"acc": float(a), "frac": float(f)}, float(e))
            for p, a, f, e in zip(grid, acc, frac, se)]


def halves(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random class-stratified halving of the clips -> (index A, index B)."""
    a = np.zeros(len(labels), bool)
    for k in np.unique(labels):
        rows = np.flatnonzero(labels == k)
        a[rng.choice(rows, len(rows) // 2, replace=False)] = True
    return np.flatnonzero(a), np.flatnonzero(~a)


def split_half_scores(s: dict, labels: np.ndarray, grid: list, steps: int,
                      rules: dict[str, OperatingRule], halvings: int, seed: int = 0) -> dict:
    """Phase 1 for one model: per rule, the held-out drop, fraction and hit shares."""
    ex, ok = per_clip(s, labels, grid)
    ok_ref = apply_policy("full_clip", s, None)[1] == labels
    rng = np.random.default_rng(seed)
    rec: dict[str, list] = {name: [] for name in rules}
    feasible = []
    for _ in range(halvings):
        a, b = halves(labels, rng)
        for pick, read in ((a, b), (b, a)):
            rows_pick = rows_on(ex, ok, ok_ref, pick, grid, steps)
            rows_read = {str(r[0]): r[1] for r in rows_on(ex, ok, ok_ref, read, grid, steps)}
            ref = {"pick": float(ok_ref[pick].mean()), "read": float(ok_ref[read].mean())}
            feasible.append(corner(list(rows_read.values()), ref["read"])["feasible"])
            for name, rule in rules.items():
                p, m, _ = choose_point(rows_pick, ref["pick"], rule)
                r = rows_read[str(p)]
                rec[name].append([ref["pick"] - m["acc"], m["frac"], ref["read"] - r["acc"],
                                  r["frac"]])
    out = {}
    for name, v in rec.items():
        v = np.array(v)
        acc_ok, frac_ok = v[:, 2] <= DROP_TARGET + 1e-12, v[:, 3] <= FRAME_TARGET + 1e-12
        out[name] = {"drop_pick": float(v[:, 0].mean()), "frac_pick": float(v[:, 1].mean()),
                     "drop_held_out": float(v[:, 2].mean()),
                     "frac_held_out": float(v[:, 3].mean()),
                     "share_acc_ok": float(acc_ok.mean()), "share_frac_ok": float(frac_ok.mean()),
                     "share_both_ok": float((acc_ok & frac_ok).mean()), "n": len(v)}
    out["held_out_feasible"] = float(np.mean(feasible))
    return out


def corner(rows: list[dict], ref: float) -> dict:
    """How the accuracy-vs-frames points ({acc, frac}) of one split sit against the target's
    corner: the smallest drop below the full clip `ref` within each frame fraction of
    `FRAMES_AT` (the target and margins under it), the fewest frames within each drop of
    `DROPS_AT`, and whether any point meets both targets (no rule choosing among these
    points meets both where none does)."""
    def best_drop(f):
        return min((ref - r["acc"] for r in rows if r["frac"] <= f + 1e-12), default=np.nan)

    def fewest(d):
        return min((r["frac"] for r in rows if ref - r["acc"] <= d + 1e-12), default=np.nan)

    return {"best_drop_within_frames": {str(f): float(best_drop(f)) for f in FRAMES_AT},
            "fewest_frames_within_drop": {str(d): float(fewest(d)) for d in DROPS_AT},
            "feasible": bool(best_drop(FRAME_TARGET) <= DROP_TARGET + 1e-12)}


def choose_rule(per_seed: dict[str, dict]) -> tuple[str, dict]:
    """The rule that holds on every seed (mean held-out drop <= 2 points and fraction <= 35 %)
    with the highest worst-seed share of halves meeting both (ties: the mean share, then the
    fewer held-out frames over the seeds); none holds -> fewest_frames. -> (name, the summary
    over seeds of every rule)."""
    names = [n for n in next(iter(per_seed.values())) if n != "held_out_feasible"]
    summ = {}
    for n in names:
        r = [per_seed[s][n] for s in per_seed]
        summ[n] = {"holds_every_seed": all(x["drop_held_out"] <= DROP_TARGET + 1e-12
                                           and x["frac_held_out"] <= FRAME_TARGET + 1e-12
                                           for x in r),
                   "worst_share_both": min(x["share_both_ok"] for x in r),
                   "mean_share_both": float(np.mean([x["share_both_ok"] for x in r])),
                   "mean_frac_held_out": float(np.mean([x["frac_held_out"] for x in r]))}
    ok = [n for n in names if summ[n]["holds_every_seed"]]
    best = max(ok, key=lambda n: (summ[n]["worst_share_both"], summ[n]["mean_share_both"],
                                  -summ[n]["mean_frac_held_out"]), default="fewest_frames")
    return best, summ


def read_on_test(s_val: dict, y_val: np.ndarray, s_test: dict, y_test: np.ndarray, grid: list,
                 steps: int, rule: OperatingRule) -> dict:
    """Phase 2: the point `rule` chooses on the full validation split, read on test."""
    ref = summarise(*apply_policy("full_clip", s_val, None), y_val, steps)["acc"]
    param, v = select("iie_mc", s_val, y_val, grid, ref, rule)
    t = summarise(*apply_policy("iie_mc", s_test, param), y_test, steps)
    full = summarise(*apply_policy("full_clip", s_test, None), y_test, steps)["acc"]
    return {"param": list(param), "val_acc": v["acc"], "val_frac": v["frac"],
            "val_drop": ref - v["acc"], "test_acc": t["acc"], "test_full": full,
            "test_drop": full - t["acc"], "test_frac": t["frac"],
            "test_both_ok": bool(full - t["acc"] <= DROP_TARGET + 1e-12
                                 and t["frac"] <= FRAME_TARGET + 1e-12)}


def skip_clips(arr: dict[str, np.ndarray], skip: int, n_classes: int) -> dict[str, np.ndarray]:
    """Drop the first `skip` clips of every class from a split built as `build_split` orders it
    (row i * n_classes + k is clip i of class k)."""
    return {k: v[skip * n_classes:] for k, v in arr.items()}


def load_test(cfg, skip: int) -> dict[str, np.ndarray]:
    """The test split, or (skip > 0) its clips skip ... skip + test_per_class - 1 per class."""
    if skip == 0:
        return load_split(cfg, "test")
    per = cfg.stream.test_per_class
    wide = from_dict(type(cfg), apply_overrides(to_dict(cfg), [
        f"stream.test_per_class={skip + per}"]))
    return skip_clips(load_split(wide, "test"), skip, len(class_names(cfg.stream)))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("edgeoar.experiments.operating_point", __doc__.split("\n\n")[0],
                          "configs/edgeoar/bench.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="training seeds (train.seed) of the iterative model")
    parser.add_argument("--halvings", type=int, default=50, help="random halvings per seed")
    parser.add_argument("--test-seeds", type=int, nargs="*", default=[],
                        help="phase 2: the seeds (of --seeds) whose test split is read")
    parser.add_argument("--read-rules", nargs="*", default=None,
                        help="phase 2: the rules (of CANDIDATES) read on test (default: "
                             "fewest_frames and the rule chosen in phase 1)")
    parser.add_argument("--test-skip", type=int, default=0,
                        help="phase 2: skip the first M test clips of each class (M >= the "
                             "bench's test_per_class: a test split the bench never read)")
    args, bc = parse_args(argv, BenchConfig, prog="edgeoar.experiments.operating_point",
                          description=__doc__.split("\n\n")[0], parser=parser, quick=QUICK,
                          default_config="configs/edgeoar/bench.yaml")
    if not set(args.test_seeds) <= set(args.seeds):
        raise UserError(f"--test-seeds {args.test_seeds} must be among --seeds {args.seeds}")
    if args.test_skip < 0:
        raise UserError(f"--test-skip must be >= 0, got {args.test_skip}")
    unknown = sorted(set(args.read_rules or []) - set(CANDIDATES))
    if unknown:
        raise UserError(f"--read-rules: unknown rule(s) {unknown} (use {sorted(CANDIDATES)})")
    if args.halvings < 1:
        raise UserError(f"--halvings must be >= 1, got {args.halvings}")
    steps = bc.train.stream.clip_frames
    grid = threshold_grid("iie_mc", steps, bc.exits.conf_grid, bc.exits.mc_grid)
    rules = {k: OperatingRule(r.kind, bc.exits.tolerance, r.budget, r.z)
             for k, r in CANDIDATES.items()}
    run_dir = make_run_dir(args.out, "edgeoar", "operating_point")
    scores, phase1, val_corner = {}, {}, {}
    for seed in args.seeds:
        cfg = from_dict(BenchConfig, apply_overrides(to_dict(bc), [f"train.seed={seed}"])).train
        model, _ = get_model(cfg)
        val = load_split(cfg, "val")
        p = predict(model, val)
        scores[seed] = (step_scores(p["rgb"], p["motion"], p["gate"]), val["label"], cfg)
        phase1[str(seed)] = split_half_scores(scores[seed][0], val["label"], grid, steps, rules,
                                              args.halvings, seed)
        ex, ok = per_clip(scores[seed][0], val["label"], grid)
        ok_ref = apply_policy("full_clip", scores[seed][0], None)[1] == val["label"]
        every = np.arange(len(ok_ref))
        val_corner[str(seed)] = corner([r[1] for r in rows_on(ex, ok, ok_ref, every, grid,
                                                               steps)], float(ok_ref.mean()))
        log.info("seed %d validation corner %s; held-out halves feasible %.2f", seed,
                 val_corner[str(seed)], phase1[str(seed)]["held_out_feasible"])
        for name, r in ((k, v) for k, v in phase1[str(seed)].items() if k in rules):
            log.info("seed %d %-20s held-out drop %.4f frac %.4f both ok %.2f", seed, name,
                     r["drop_held_out"], r["frac_held_out"], r["share_both_ok"])
    chosen, summary = choose_rule(phase1)
    log.info("chosen on validation halves: %s", chosen)
    out = {"rules": {k: vars(r) for k, r in rules.items()}, "halvings": args.halvings,
           "seeds": args.seeds, "validation_corner": val_corner,
           "validation_halves": phase1, "summary": summary,
           "chosen": chosen}
    if args.test_seeds:
        read = args.read_rules if args.read_rules is not None else ["fewest_frames", chosen]
        out["test"] = {}
        out["test_skip"] = args.test_skip
        for seed in args.test_seeds:
            sv, yv, cfg = scores[seed]
            te = load_test(cfg, args.test_skip)
            p = predict(get_model(cfg)[0], te)
            st = step_scores(p["rgb"], p["motion"], p["gate"])
            out["test"][str(seed)] = {name: read_on_test(sv, yv, st, te["label"], grid, steps,
                                                         rules[name])
                                      for name in dict.fromkeys(read)}
            ex, ok = per_clip(st, te["label"], grid)
            ok_ref = apply_policy("full_clip", st, None)[1] == te["label"]
            out["test"][str(seed)]["corner"] = corner(
                [r[1] for r in rows_on(ex, ok, ok_ref, np.arange(len(ok_ref)), grid, steps)],
                float(ok_ref.mean()))
            log.info("seed %d test: %s", seed, out["test"][str(seed)])
    atomic_write_json(run_dir / "operating_point.json", out)
    return 0


if __name__ == "__main__":
    run(main)
