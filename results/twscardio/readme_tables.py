"""The twscardio README's benchmark tables, printed from one bench run's bench.json: the main
settings with in-family and out-of-family side by side, the other rows, streaming, heartbeat-free
rejection and real time, and every check.

`python results/twscardio/readme_tables.py DIR` (DIR holds a bench.json; relative to
results/twscardio/ unless absolute), e.g. `python results/twscardio/readme_tables.py
bench-full-dur60`."""
import json
import sys
from pathlib import Path

R = Path(__file__).resolve().parent
ARMS = ("a", "b", "c", "d", "e")
SCG_ARMS = ("c", "d", "e")


def fmt(v, nd: int) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit("readme_tables: usage: readme_tables.py DIR (holding a bench.json)")
    b = json.loads((R / argv[0] / "bench.json").read_text())
    rows = {(r["setting"], r["arm"]): r for r in b["rows"]}

    def cell(setting, arm, key, nd):
        return fmt(rows.get((setting, arm), {}).get(key), nd)

    cols = [("HR MAE (bpm)", "hr_mae", 2), ("IBI MAE (ms)", "ibi_mae_ms", 1),
            ("IBI MAE, SQI-accepted (ms)", "ibi_mae_ms_accepted", 1),
            ("octave %", "octave_pct", 2), ("coverage", "coverage", 3),
            ("SCG r (median per beat)", "beat_r_median", 3), ("AO MAE (ms)", "ao_mae_ms", 1)]
    for setting in ("50Hz loss10% rest", "25Hz loss20% rest"):
        print(f"\n{setting}, in-family / out-of-family:\n")
        print("| arm | " + " | ".join(c[0] for c in cols) + " |")
        print("|---" * (len(cols) + 1) + "|")
        for a in ARMS:
            cells = []
            for _, key, nd in cols:
                if key in ("beat_r_median", "ao_mae_ms") and a not in SCG_ARMS:
                    cells.append("-")
                    continue
                cells.append(f"{cell(setting, a, key, nd)} / {cell('OOF ' + setting, a, key, nd)}")
            print(f"| ({a}) | " + " | ".join(cells) + " |")
    print("\nOther settings:\n")
    print("| setting | arm | " + " | ".join(c[0] for c in cols[:5]) + " | SCG r |")
    print("|---" * 8 + "|")
    for setting in ("25Hz loss20% motion3", "OOF 50Hz loss10% +1s outages", "OOF 25Hz loss0% rest"):
        for a in ARMS:
            cells = [cell(setting, a, key, nd) for _, key, nd in cols[:5]]
            cells.append(cell(setting, a, "beat_r_median", 3) if a in SCG_ARMS else "-")
            print(f"| {setting} | ({a}) | " + " | ".join(cells) + " |")
    print("\nStreaming (50 Hz / 10 % loss; |HR error| per update, bpm):\n")
    print("| family | arm | mean | median | p95 | % > 10 bpm | coverage | updates |")
    print("|---|---|---|---|---|---|---|---|")
    for fam, per in b["stream_hr_error"].items():
        for a, s in per.items():
            print(f"| {fam} | ({a}) | {s['mean']:.2f} | {s['median']:.2f} | {s['p95']:.2f} | "
                  f"{100 * s['share_gt10']:.2f} | {s['coverage']:.3f} | {s['updates']} |")
    nb = b["sqi_rejection_no_beat"]
    worst = min(v for fam in nb.values() for kind in fam.values() for v in kind.values())
    rt = b["realtime"]
    print(f"\nHeartbeat-free windows rejected (noise, no contact; arms (a), (b); both families): "
          f"worst {100 * worst:.1f} %. Real time: {rt['rtf_window']:.0f}x per 5-s window, "
          f"{rt['rtf_stream']:.0f}x streaming, worst update "
          f"{1000 * rt['update_proc_s_max']:.0f} ms.")
    held = sum(c["holds"] for c in b["checks"])
    iv = b.get("check_intervals")
    print(f"\nChecks ({held} of {len(b['checks'])} hold"
          + ("; 95 % interval: subject-level bootstrap, verdicts on the point estimate" if iv
             else "") + "):\n")
    print("| check | measured | " + ("95 % interval | " if iv else "") + "target | holds |")
    print("|---|---|" + ("---|" if iv else "") + "---|---|")
    for k, c in enumerate(b["checks"]):
        name = c["name"].replace("|", "&#124;")
        ci = f"{iv[k]['lo']:.4g} - {iv[k]['hi']:.4g} | " if iv else ""
        print(f"| {name} | {c['measured']:.4g} | {ci}{c['target']} | "
              f"{'yes' if c['holds'] else '**no**'} |")


if __name__ == "__main__":
    main(sys.argv[1:])
