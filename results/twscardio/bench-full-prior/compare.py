"""Every check of the full bench before the network's prior (`bench-full-sqi/`, the shipped
state before) and with it (`bench-full-prior/`), side by side, and the SCG rows of the network
arms (c), (d) and the beat-synchronous arm (e).
`python results/twscardio/bench-full-prior/compare.py > results/twscardio/bench-full-prior/compare.md`
(the same with `--quick` for the 12 x 60 runs: `bench-quick-12x60-sqi/` vs `bench-quick-12x60-prior/`)."""
import json
import sys
from pathlib import Path

R = Path(__file__).resolve().parents[1]
if "--quick" in sys.argv:
    runs = {"no prior": R / "bench-quick-12x60-sqi/bench.json",
            "prior": R / "bench-quick-12x60-prior/bench.json"}
else:
    runs = {"no prior": R / "bench-full-sqi/bench.json", "prior": R / "bench-full-prior/bench.json"}
d = {k: json.loads(v.read_text()) for k, v in runs.items()}
names = list(d)
print("| check | " + " | ".join(f"{k}: measured | holds" for k in names) + " |")
print("|---|" + "---|---|" * len(names))
held = dict.fromkeys(names, 0)
for i, c in enumerate(d[names[0]]["checks"]):
    cells = []
    for k in names:
        x = d[k]["checks"][i]
        assert x["name"] == c["name"]
        held[k] += bool(x["holds"])
        cells += [f"{x['measured']:.4g}", "yes" if x["holds"] else "**no**"]
    print(f"| {c['name'].strip()} | " + " | ".join(cells) + " |")
print("\nChecks held: " + ", ".join(f"{k} {v} of {len(d[k]['checks'])}" for k, v in held.items()))
print("\nSCG and beats of arms c, d, e (per-beat r median; HR bpm / IBI ms over every detection):\n")
print("| setting | arm | " + " | ".join(f"{k}: r | HR | IBI" for k in names) + " |")
print("|---|---|" + "---|---|---|" * len(names))
rows = {k: {(r["setting"], r["arm"]): r for r in d[k]["rows"]} for k in names}
for (setting, arm), r0 in rows[names[0]].items():
    if arm not in ("c", "d", "e"):
        continue
    cells = []
    for k in names:
        r = rows[k].get((setting, arm), {})
        cells += [f"{r.get('beat_r_median', float('nan')):.3f}", f"{r.get('hr_mae', float('nan')):.2f}",
                  f"{r.get('ibi_mae_ms', float('nan')):.1f}"]
    print(f"| {setting} | {arm} | " + " | ".join(cells) + " |")
