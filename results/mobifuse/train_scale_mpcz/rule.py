"""The MPCZ rule (results/mobifuse/NOTES.md, "The multipath-compensated net with its ToF splatted
without the near pick"): MPCZ's two nets against RAYFOV's three, RAYFOV's four clauses.
Usage: python results/mobifuse/train_scale_mpcz/rule.py OUT.json"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "train_scale_rayfov"))
from rule import figures, nets  # noqa: E402  (RAYFOV's scoring, unchanged)

RAYFOV = [ROOT / "train_scale_rayfov" / "train_scale.json",
          ROOT / "train_scale_rayfov_s2" / "train_scale.json"]
MPCZ = [HERE / "train_scale.json"]


def main(out: str) -> None:
    r, m = figures(nets(RAYFOV)), figures(nets(MPCZ))
    clauses = {"(i) higher fresh share": m["fresh_share"] > r["fresh_share"],
               "(ii) lower mean worst fresh": m["fresh_worst_mean"] < r["fresh_worst_mean"],
               "(iii) in-family worst no higher": m["in_family_worst_mean"]
               <= r["in_family_worst_mean"],
               "(iv) between-family mean at most 0.01 above": m["between_mean"]
               <= r["between_mean"] + 0.01}
    res = {"RAYFOV": r, "MPCZ": m, "clauses": clauses, "adopted": all(clauses.values())}
    Path(out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
