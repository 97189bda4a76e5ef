"""How often each offline arm succeeds, over many seeds, from the bench's `rows.json`.

    python -m ollie.experiments.hop_rate RUN/rows.json [MORE/rows.json ...]
        [--threshold 80] [--reference results/ollie/h100_full/rows.json] [--out FILE]

The offline phase is chaotic (`results/ollie/NOTES.md`: one ulp in one weight decides whether
Hopper's π⁰ hops), so a 3-seed mean orders the offline arms by a handful of coin flips. What is
reproducible is each arm's success rate: the share of seeds whose π⁰ scores at least
`--threshold` (normalised; 80 = hops on Hopper). Per setting and offline method (OLLIE, BC-E,
BC-all, DWBC = naive offline→GAIL's π⁰) this prints the seeds, the success count with its Wilson
95% interval, mean and median, and OLLIE against each baseline on the seeds both ran: seeds where
OLLIE scores at least as much (a sign count) and the mean paired difference.
`--reference` compares the offline scores of the (setting, seed, arm) rows both files hold:
the offline phase does not see the online budget, so a rerun of the same code on the same
machine type should repeat them exactly. Prints JSON (and writes it to `--out`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

from ollie.bench import OFFLINE_ARMS
from shared.cli import run
from shared.errors import DataError
from shared.io import atomic_write_text, read_json

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k / n."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"wilson: need 0 <= k <= n and n > 0, got k={k}, n={n}")
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def load_rows(paths: list[str]) -> list[dict]:
    """Rows of one or more bench `rows.json` files; one clear error for a file that is not one."""
    rows = []
    for path in paths:
        try:
            data = read_json(path)
        except DataError as e:
            raise DataError(f"not a readable rows.json: {e}") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a list of rows")
        for i, r in enumerate(data):
            if not (isinstance(r, dict) and isinstance(r.get("setting"), str)
                    and isinstance(r.get("arm"), str) and type(r.get("seed")) is int):
                raise DataError(f"{path}: row {i} lacks setting / seed / arm")
            s = r.get("offline_score")
            if s is not None and not (isinstance(s, (int, float)) and math.isfinite(s)):
                raise DataError(f"{path}: row {i} offline_score is not a finite number")
        rows += data
    return rows


def offline_scores(rows: list[dict]) -> dict[str, dict[str, dict[int, float]]]:
    """setting -> offline method -> seed -> π⁰ score (a later file's row replaces an earlier)."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    for r in rows:
        for method, arm in OFFLINE_ARMS.items():
            if r["arm"] == arm and r.get("offline_score") is not None:
                out.setdefault(r["setting"], {}).setdefault(method, {})[r["seed"]] = \
                    float(r["offline_score"])
    return out


def summarise(scores: dict[str, dict[str, dict[int, float]]], threshold: float) -> dict:
    out = {}
    for setting, by_method in scores.items():
        arms = {}
        for method, per_seed in by_method.items():
            v = np.array([per_seed[k] for k in sorted(per_seed)])
            k = int((v >= threshold).sum())
            lo, hi = wilson(k, len(v))
            arms[method] = {"seeds": len(v), "successes": k, "rate": k / len(v),
                            "wilson95": [lo, hi], "mean": float(v.mean()),
                            "median": float(np.median(v))}
        pairs = {}
        mine = by_method.get("ollie", {})
        for method, per_seed in by_method.items():
            common = sorted(set(mine) & set(per_seed))
            if method == "ollie" or not common:
                continue
            d = np.array([mine[k] - per_seed[k] for k in common])
            pairs[f"ollie - {method}"] = {"seeds": len(common),
                                          "ollie_at_least": int((d >= 0).sum()),
                                          "mean_difference": float(d.mean())}
        out[setting] = {"arms": arms, "paired": pairs}
    return out


def compare(scores: dict, reference: dict) -> dict:
    """Offline scores of the rows both hold: how many are equal to the last bit, the largest gap."""
    gaps = [abs(per_seed[k] - reference[s][m][k])
            for s, by_method in scores.items() for m, per_seed in by_method.items()
            for k in per_seed if k in reference.get(s, {}).get(m, {})]
    return {"rows": len(gaps), "identical": sum(g == 0.0 for g in gaps),
            "max_abs_difference": max(gaps, default=0.0)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ollie.experiments.hop_rate",
                                description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rows", nargs="+", help="bench rows.json files (later rows replace earlier)")
    p.add_argument("--threshold", type=float, default=80.0,
                   help="normalised π⁰ score counted as a success (default 80)")
    p.add_argument("--reference", help="rows.json whose shared rows should repeat exactly")
    p.add_argument("--out", help="also write the JSON here")
    args = p.parse_args(argv)
    if not math.isfinite(args.threshold):
        raise DataError("--threshold must be a finite number")
    scores = offline_scores(load_rows(args.rows))
    if not scores:
        raise DataError(f"{args.rows[0]}: no offline scores of {sorted(OFFLINE_ARMS)} in the rows")
    result = {"threshold": args.threshold, "settings": summarise(scores, args.threshold)}
    if args.reference:
        result["reference"] = compare(scores, offline_scores(load_rows([args.reference])))
    text = json.dumps(result, indent=1)
    if args.out:
        try:
            atomic_write_text(args.out, text + "\n")
        except OSError as e:
            raise DataError(f"--out {args.out}: cannot write ({e.strerror})") from None
    print(text)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
