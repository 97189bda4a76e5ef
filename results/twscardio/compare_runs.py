"""Every check of several twscardio bench runs side by side, the checks each holds, and the
per-setting rows (per-beat SCG r median, HR bpm / IBI ms over every detection) of chosen arms.

`python results/twscardio/compare_runs.py NAME=DIR [NAME=DIR ...] [--arms c,d,e]` (DIR holds a
bench.json; relative to results/twscardio/ unless absolute), e.g.
`python results/twscardio/compare_runs.py before=bench-full-prior/rerun-2026-12-06-host
after=bench-full-timing --arms a,b,c,d,e > results/twscardio/bench-full-timing/compare.md`."""
import json
import sys
from pathlib import Path

R = Path(__file__).resolve().parent


def main(argv: list[str]) -> None:
    """Print the tables for NAME=DIR arguments (and --arms LIST) to standard output."""
    arms = ("c", "d", "e")
    if "--arms" in argv:
        i = argv.index("--arms")
        if i + 1 >= len(argv):
            sys.exit("compare_runs: --arms needs a comma-separated list (e.g. c,d,e)")
        arms = tuple(argv[i + 1].split(","))
        argv = argv[:i] + argv[i + 2:]
    d = {}
    for a in argv:
        name, sep, path = a.partition("=")
        if not sep or not name or not path:
            sys.exit(f"compare_runs: {a!r}: expected NAME=DIR")
        d[name] = json.loads((R / path / "bench.json").read_text())
    if not d:
        sys.exit("compare_runs: give at least one NAME=DIR")
    names = list(d)
    print("| check | " + " | ".join(f"{k}: measured | holds" for k in names) + " |")
    print("|---|" + "---|---|" * len(names))
    held = dict.fromkeys(names, 0)
    for i, c in enumerate(d[names[0]]["checks"]):
        cells = []
        for k in names:
            x = d[k]["checks"][i]
            if x["name"] != c["name"]:
                sys.exit(f"compare_runs: check {i} differs between runs: {c['name']!r}")
            held[k] += bool(x["holds"])
            cells += [f"{x['measured']:.4g}", "yes" if x["holds"] else "**no**"]
        print(f"| {c['name'].strip()} | " + " | ".join(cells) + " |")
    print("\nChecks held: " + ", ".join(f"{k} {v} of {len(d[k]['checks'])}"
                                        for k, v in held.items()))
    print(f"\nArms {', '.join(arms)} (per-beat r median; HR bpm / IBI ms over every detection):\n")
    print("| setting | arm | " + " | ".join(f"{k}: r | HR | IBI" for k in names) + " |")
    print("|---|---|" + "---|---|---|" * len(names))
    rows = {k: {(r["setting"], r["arm"]): r for r in d[k]["rows"]} for k in names}
    for (setting, arm) in rows[names[0]]:
        if arm not in arms:
            continue
        cells = []
        for k in names:
            r = rows[k].get((setting, arm), {})
            nan = float("nan")
            cells += [f"{r.get('beat_r_median', nan):.3f}", f"{r.get('hr_mae', nan):.2f}",
                      f"{r.get('ibi_mae_ms', nan):.1f}"]
        print(f"| {setting} | {arm} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
