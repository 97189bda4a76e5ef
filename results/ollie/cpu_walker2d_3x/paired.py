"""Paired offline scores of two sets of ollie bench rows (base, new): per seed, each arm's mean
and the paired differences (mean +- SE, seeds above 0). Each argument is a rows.json or a
comma-separated list of them (concatenated). From the repository root:

    python results/ollie/cpu_walker2d_3x/paired.py results/ollie/cpu_walker2d_offline/rows.json \\
        results/ollie/cpu_walker2d_3x/seeds0-3/rows.json,results/ollie/cpu_walker2d_3x/seeds4-7/rows.json
"""
import json
import math
import sys

import numpy as np

ARMS = {"ollie": "OLLIE", "naive_gail": "DWBC", "bc_expert": "BC-E", "bc_all": "BC-all"}


def load(arg):
    rows = [r for f in arg.split(",") for r in json.load(open(f))]
    return {(r["arm"], r["seed"]): r["offline_score"] for r in rows if r["arm"] in ARMS}


def stat(v):
    v = np.array(v)
    se = v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else float("nan")
    return f"{v.mean():+.1f} +- {se:.1f} (above 0 on {(v > 0).sum()} of {len(v)})"


b, n = load(sys.argv[1]), load(sys.argv[2])
seeds = sorted({s for (_, s) in n if all((k, s) in n and (k, s) in b for k in ARMS)})
print("seeds", seeds)
for a, name in ARMS.items():
    print(name, "1x", [round(b[(a, s)], 1) for s in seeds],
          "3x", [round(n[(a, s)], 1) for s in seeds])
for tag, t in (("1x", b), ("3x", n)):
    for a in ARMS:
        print(tag, ARMS[a], f"mean {np.mean([t[(a, s)] for s in seeds]):.1f}")
    for ref in ("naive_gail", "bc_expert"):
        print(tag, "OLLIE -", ARMS[ref], stat([t[("ollie", s)] - t[(ref, s)] for s in seeds]))
for a in ("ollie", "naive_gail", "bc_expert"):
    print("3x - 1x", ARMS[a], stat([n[(a, s)] - b[(a, s)] for s in seeds]))
