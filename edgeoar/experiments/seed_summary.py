"""`python -m edgeoar.experiments.seed_summary --runs DIR [DIR ...] --out DIR`: the bench's
checks over training seeds, from finished bench runs (one per seed, e.g. `python -m
edgeoar.bench --set train.seed=S --out results/edgeoar/full_seedS`).

Per check: each run's measured value, their mean, standard deviation (n - 1), minimum and
maximum, the worst run in the target's direction (the largest for a `<=` / `<` target, the
smallest for `>=` / `>`), and whether the target holds on the mean and on the worst run.
Plus, per run, the IIE + MC operating point (validation thresholds, test accuracy and
fraction of frames, full clip). Nothing is retrained or re-selected: the figures are read
from the runs' bench.json. Writes seeds.json and seeds.md.
"""

from __future__ import annotations

import numpy as np

from edgeoar.config import BenchConfig
from shared.bench import Check
from shared.cli import build_parser, parse_args, run
from shared.errors import UserError
from shared.io import atomic_write_json, atomic_write_text, make_run_dir, read_json
from shared.log import get_logger

__all__ = ["parse_target", "seed_checks", "main"]

log = get_logger("edgeoar.experiments.seed_summary")

OPS = ("<=", "<", ">=", ">")  # the comparisons `shared.bench.Check` evaluates


def parse_target(target: str) -> tuple[str, float]:
    """'<= 0.35' -> ('<=', 0.35)."""
    op, _, val = target.strip().partition(" ")
    if op not in OPS:
        raise UserError(f"seed_summary: unknown check target {target!r}")
    return op, float(val)


def seed_checks(runs: list[list[dict]]) -> list[dict]:
    """runs: each run's bench `checks` (dicts with name, measured, target), the same names in
    every run -> one row per check: measured per run, mean, std, min, max, worst, and whether
    the target holds on the mean and on the worst run."""
    names = [c["name"] for c in runs[0]]
    for r in runs[1:]:
        if [c["name"] for c in r] != names:
            raise UserError("seed_summary: the runs' bench checks differ (other bench versions?)")
    rows = []
    for i, name in enumerate(names):
        vals = np.array([float(r[i]["measured"]) for r in runs])
        op, bar = parse_target(runs[0][i]["target"])
        worst = vals.max() if op in ("<=", "<") else vals.min()
        rows.append({"name": name, "target": runs[0][i]["target"], "measured": vals.tolist(),
                     "mean": float(vals.mean()),
                     "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
                     "min": float(vals.min()), "max": float(vals.max()), "worst": float(worst),
                     "holds_mean": _holds(vals.mean(), op, bar),
                     "holds_worst": _holds(worst, op, bar),
                     "holds_runs": sum(_holds(v, op, bar) for v in vals)})
    return rows


def _holds(value: float, op: str, bar: float) -> bool:
    """The target `op bar` on one value, as the bench evaluates its checks."""
    return Check.of("", float(value), op, bar).holds


def _operating_point(bench: dict) -> dict:
    rows = {r["arm"]: r for r in bench["rows"] if r.get("setting") == "in_family"}
    iie, full = rows.get("iie_mc", {}), rows.get("full_clip", {})
    return {k: iie.get(k) for k in ("param", "acc", "frac", "val_acc", "val_frac")} | {
        "full_acc": full.get("acc"), "command": bench.get("command")}


def _markdown(rows: list[dict], runs: list[str]) -> str:
    head = ("| check | target | " + " | ".join(runs)
            + " | mean ± std | worst | holds: mean / worst |")
    lines = [head, "|" + "---|" * (len(runs) + 5)]
    for r in rows:
        vals = " | ".join(f"{v:.4g}" for v in r["measured"])
        lines.append(f"| {r['name']} | {r['target']} | {vals} | {r['mean']:.4g} ± "
                     f"{r['std']:.2g} | {r['worst']:.4g} | "
                     f"{'yes' if r['holds_mean'] else 'no'} / "
                     f"{'yes' if r['holds_worst'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("edgeoar.experiments.seed_summary", __doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, metavar="DIR",
                        help="finished bench runs (folders holding bench.json), one per seed")
    args, _ = parse_args(argv, BenchConfig, prog="edgeoar.experiments.seed_summary",
                         description=__doc__.split("\n\n")[0], parser=parser)
    benches = [read_json(f"{d}/bench.json") for d in args.runs]  # missing: one-line error
    rows = seed_checks([b["checks"] for b in benches])
    run_dir = make_run_dir(args.out, "edgeoar", "seed_summary")
    atomic_write_json(run_dir / "seeds.json", {
        "runs": args.runs, "operating_points": [_operating_point(b) for b in benches],
        "checks": rows})
    atomic_write_text(run_dir / "seeds.md", _markdown(rows, args.runs))
    for r in rows:
        log.info("%s: mean %.4g (std %.2g), worst %.4g; holds on the mean %s, worst %s",
                 r["name"], r["mean"], r["std"], r["worst"], r["holds_mean"], r["holds_worst"])
    return 0


if __name__ == "__main__":
    run(main)
