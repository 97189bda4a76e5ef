"""Call G's partial table: per (setting, arm) the mean over seeds of each member's score at its
last two finished evaluations (70k and 80k steps), as the bench scores the last two (90k, 100k)."""
import json
import statistics as st
import sys
from collections import defaultdict

rows = json.load(open(sys.argv[1]))
tab = defaultdict(list)
for r in rows:
    c = r["curve"]
    tab[(r["setting"], r["arm"])].append((st.mean(x["score"] for x in c[-2:]), c[-1]["step"]))
arms = ["ilid", "bc_expert", "dwbc", "iswbc", "ilid_no_beta"]
for s in dict.fromkeys(k[0] for k in tab):
    cells = []
    for a in arms:
        v = [x for x, _ in tab[(s, a)]]
        cells.append(f"{st.mean(v):.1f} ± {st.stdev(v):.1f}")
    print(f"| `{s}` | " + " | ".join(cells) + f" | last step {tab[(s, arms[0])][0][1]} |")
