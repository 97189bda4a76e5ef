"""The RAYFOV rule (results/mobifuse/NOTES.md, "A cross-rig net told its field of view"):
RAYFOV's nets against S16's six, the four clauses of RAY2's rule, from the train_scale outputs.
Usage: python results/mobifuse/train_scale_rayfov/rule.py OUT.json"""

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
S16 = [ROOT / "train_scale_cpu_s16" / "train_scale.json",
       ROOT / "train_scale_cpu_s16_b" / "train_scale.json"]
RAYFOV = [HERE / "train_scale.json", ROOT / "train_scale_rayfov_s2" / "train_scale.json"]


def nets(paths: list[Path]) -> list[dict]:
    return sorted((n for p in paths for n in json.loads(p.read_text())["nets"]),
                  key=lambda n: n["seed"])


def figures(rows: list[dict]) -> dict:
    fresh = [n["fresh_unseen"]["at_or_below_0.7"] for n in rows]
    total = sum(len(n["fresh_unseen"]["ratios"]) for n in rows)
    return {"seeds": [n["seed"] for n in rows], "fresh_at_or_below_0.7": fresh,
            "fresh_share": sum(fresh) / total, "fresh_scenes": total,
            "fresh_worst_mean": float(np.mean([n["fresh_unseen"]["worst"] for n in rows])),
            "in_family_worst_mean": float(np.mean([n["val_in_family"]["worst"] for n in rows])),
            "between_mean": float(np.mean([n["val"]["mean"] for n in rows])),
            "reported_test_unseen": [(n["unseen"]["at_or_below_0.7"], n["unseen"]["worst"])
                                     for n in rows],
            "reported_test_in_family_worst": [n["in_family"]["worst"] for n in rows]}


def judge(out: str, base: tuple[str, list[Path]], cand: tuple[str, list[Path]]) -> None:
    """The four clauses, candidate `cand` = (name, train_scale.json paths) against `base`;
    writes OUT.json and prints it. Also the rules after RAYFOV's (train_scale_mpc/,
    train_scale_mpcz/) call it, with RAYFOV as the base."""
    s, r = figures(nets(base[1])), figures(nets(cand[1]))
    clauses = {"(i) higher fresh share": r["fresh_share"] > s["fresh_share"],
               "(ii) lower mean worst fresh": r["fresh_worst_mean"] < s["fresh_worst_mean"],
               "(iii) in-family worst no higher": r["in_family_worst_mean"]
               <= s["in_family_worst_mean"],
               "(iv) between-family mean at most 0.01 above": r["between_mean"]
               <= s["between_mean"] + 0.01}
    res = {base[0]: s, cand[0]: r, "clauses": clauses, "adopted": all(clauses.values())}
    Path(out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


def main(out: str) -> None:
    judge(out, ("S16", S16), ("RAYFOV", RAYFOV))


if __name__ == "__main__":
    main(sys.argv[1])
