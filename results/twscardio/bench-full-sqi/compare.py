"""Every check of the full bench before the SQI refit, with it (threshold 0.28), and at the
threshold a float tie first picked (0.34), side by side; and arm (b)'s coverage where it moved.
`python results/twscardio/bench-full-sqi/compare.py > results/twscardio/bench-full-sqi/compare.md`
(the same with `--quick` for the 12 x 60 runs)."""
import json
import sys
from pathlib import Path

R = Path(__file__).resolve().parents[1]
if "--quick" in sys.argv:
    runs = {"before": R / "bench.json", "refit 0.28": R / "bench-quick-12x60-sqi/bench.json",
            "refit 0.34": R / "sqi_thr034/bench-quick-12x60/bench.json"}
else:
    runs = {"before": R / "bench-full/bench.json", "refit 0.28": R / "bench-full-sqi/bench.json",
            "refit 0.34": R / "sqi_thr034/bench-full/bench.json"}
d = {k: json.loads(v.read_text()) for k, v in runs.items()}
print("| check | " + " | ".join(f"{k}: measured | holds" for k in d) + " |")
print("|---|" + "---|---|" * len(d))
for i, c in enumerate(d["before"]["checks"]):
    cells = []
    for run in d.values():
        x = run["checks"][i]
        assert x["name"] == c["name"]
        cells += [f"{x['measured']:.4g}", "yes" if x["holds"] else "**no**"]
    print(f"| {c['name'].strip()} | " + " | ".join(cells) + " |")
print("\nArm (b)'s coverage (share of windows the SQI accepts), settings where it moved:\n")
print("| setting | " + " | ".join(d) + " |")
print("|---|" + "---|" * len(d))
cov = {}
for k, run in d.items():
    for r in run["rows"]:
        if r["arm"] == "b":
            cov.setdefault(r["setting"], {})[k] = r["coverage"]
for s, v in cov.items():
    if len({round(x, 3) for x in v.values()}) > 1:
        print(f"| {s} | " + " | ".join(f"{v[k]:.3f}" for k in d) + " |")
