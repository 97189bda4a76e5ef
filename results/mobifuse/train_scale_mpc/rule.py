"""The MPC rule (results/mobifuse/NOTES.md, "The cross-rig net given a multipath-compensated
ToF"): MPC's two nets against RAYFOV's three, RAYFOV's four clauses (`train_scale_rayfov/rule.py`).
Usage: python results/mobifuse/train_scale_mpc/rule.py OUT.json"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "train_scale_rayfov"))
from rule import RAYFOV, judge  # noqa: E402  (RAYFOV's runs, scoring and clauses, unchanged)

if __name__ == "__main__":
    judge(sys.argv[1], ("RAYFOV", RAYFOV), ("MPC", [HERE / "train_scale.json"]))
