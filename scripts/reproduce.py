"""Run every package's benchmark and collect the headline rows into results/SUMMARY.md.

Called by `scripts/reproduce` (which sets up the environment first). Each package that has a
`bench.py` runs as `python -m <package>.bench --quick --out runs/reproduce/<package>` in its own
process; a failing or timed-out package is reported in the summary and makes the exit code 1, the
others still run. Output goes to the git-ignored `runs/reproduce/` so a checkout stays clean;
`--update-results` writes into the committed `results/` instead (to refresh them on purpose).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.bench import fmt_number, markdown_table  # noqa: E402
from shared.errors import DataError  # noqa: E402
from shared.io import atomic_write_text, read_json  # noqa: E402
from shared.log import setup_logging  # noqa: E402

PACKAGES = ["lemo", "ripple", "twscardio", "mobifuse", "bestshot", "edgeoar", "ollie",
            "offline_il_select", "robwe", "crosslm"]
log = logging.getLogger("reproduce")


def run_bench(pkg: str, out: Path, full: bool, timeout: int) -> tuple[str, float]:
    try:  # a relative --out keeps the command in bench.json copy-pasteable
        out = out.resolve().relative_to(ROOT)
    except ValueError:
        pass
    cmd = [sys.executable, "-m", f"{pkg}.bench", "--out", str(out)]
    if not full:
        cmd.append("--quick")
    log.info("running %s", " ".join(cmd[1:]))
    t0 = time.time()
    try:
        r = subprocess.run(cmd, cwd=ROOT, timeout=timeout)
        status = "ok" if r.returncode == 0 else f"failed (exit {r.returncode})"
    except subprocess.TimeoutExpired:
        status = f"timed out after {timeout} s"
    return status, time.time() - t0


def summarise(results: dict[str, dict], out_dir: Path) -> str:
    rows, checks = [], []
    for pkg, info in results.items():
        bench = info.get("bench")
        if bench is None:
            rows.append({"package": pkg, "paper claim": "-", "our measurement": info["status"],
                         "baseline": "-", "ratio": "-", "command": info.get("command", "-")})
            continue
        for h in bench.get("headline", []) or [{"claim": "-", "measured": "(no headline)",
                                                 "baseline": "-", "ratio": None}]:
            ratio = h.get("ratio")
            rows.append({
                "package": pkg,
                "paper claim": h.get("claim", "-"),
                "our measurement": f"{h.get('measured', '-')}"
                + (f" ({h['setting']})" if h.get("setting") else ""),
                "baseline": h.get("baseline", "-"),
                "ratio": f"{ratio:.2f}x" if isinstance(ratio, (int, float)) else "-",
                "command": "`" + str(bench.get("command", "-")).replace(f"{ROOT}/", "") + "`",
            })
        c = bench.get("checks", [])
        held = sum(1 for x in c if x.get("holds"))
        missed = [f"{x['name']} (measured {fmt_number(x['measured'])}, target {x['target']})"
                  for x in c if not x.get("holds")]
        checks.append({"package": pkg, "targets held": f"{held}/{len(c)}",
                       "not held": "; ".join(missed) or "-",
                       "device": bench.get("versions", {}).get("device", "?"),
                       "wall": f"{info['seconds']:.0f} s" if info["seconds"] == info["seconds"]
                       else "-"})
    text = ["# Results summary", "",
            f"Made by `scripts/reproduce` on {time.strftime('%Y-%m-%d %H:%M %Z')}; each package's "
            "full results (bench.json, bench.md, plots) are in `results/<package>/`.", "",
            "## Paper claims vs our measurements", "",
            "A ratio > 1 means our method beats the named baseline on that metric.", "",
            markdown_table(rows), "## Package targets (evaluated on these runs)", "",
            markdown_table(checks) if checks else "(no package ran)\n"]
    pngs = sorted(out_dir.glob("*/*.png"))
    if pngs:
        text += ["## Plots", ""] + [f"- [{p.relative_to(out_dir)}]({p.relative_to(out_dir)})"
                                    for p in pngs]
    return "\n".join(text) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="scripts/reproduce",
        description="Run each package's benchmark (quick settings by default) and write "
                    "results/SUMMARY.md: paper claim | our measurement | baseline | ratio | "
                    "command.")
    p.add_argument("packages", nargs="*", help="only these packages (default: all with a bench)")
    p.add_argument("--full", action="store_true", help="full benchmark settings (slow)")
    p.add_argument("--out", default=None,
                   help="results folder (default: runs/reproduce, git-ignored)")
    p.add_argument("--update-results", action="store_true",
                   help="write into the committed results/ folder (refresh the published results)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per package")
    p.add_argument("--collect", action="store_true",
                   help="run nothing: rebuild SUMMARY.md from the bench.json files already in "
                        "the results folder (e.g. after running packages one by one)")
    args = p.parse_args(argv)
    setup_logging()
    os.environ.setdefault("PROGRESS", "1" if sys.stderr.isatty() else "0")
    unknown = [x for x in args.packages if x not in PACKAGES]
    if unknown:
        print(f"error: unknown package '{unknown[0]}' (one of {', '.join(PACKAGES)})",
              file=sys.stderr)
        return 2
    if args.out and args.update_results:
        print("error: --out and --update-results are exclusive", file=sys.stderr)
        return 2
    out_dir = Path(args.out) if args.out else ROOT / ("results" if args.update_results
                                                     else "runs/reproduce")
    selected = args.packages or [x for x in PACKAGES if (ROOT / x / "bench.py").exists()]
    results: dict[str, dict] = {}
    for pkg in selected:
        if args.collect:
            path = out_dir / pkg / "bench.json"
            if path.exists():
                results[pkg] = {"status": "ok", "seconds": float("nan"), "bench": read_json(path)}
            continue
        if not (ROOT / pkg / "bench.py").exists():
            results[pkg] = {"status": "no benchmark yet", "seconds": 0.0}
            continue
        status, secs = run_bench(pkg, out_dir / pkg, args.full, args.timeout)
        info = {"status": status, "seconds": secs}
        if status == "ok":
            try:
                info["bench"] = read_json(out_dir / pkg / "bench.json")
            except DataError as e:
                info["status"] = f"no bench.json ({e})"
        results[pkg] = info
        log.info("%s: %s in %.0f s", pkg, info["status"], secs)
    atomic_write_text(out_dir / "SUMMARY.md", summarise(results, out_dir))
    for pkg, info in results.items():
        log.info("%-18s %-24s %6.0f s", pkg, info["status"], info["seconds"])
    print(f"summary: {out_dir / 'SUMMARY.md'}")
    return 0 if all(r["status"] in ("ok", "no benchmark yet") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
