"""The side-by-side benchmark harness.

A package's `bench.py` runs its method and the baselines it beats ("arms") in one process, on
the same inputs and seeds, and hands the measured rows to a `BenchReport`:

    >>> rep = BenchReport("lemo", baseline="lora", command=sys.argv)
    >>> rep.add("lora", setting="4K", saved_bytes=1.2e9, step_s=0.8)
    >>> rep.add("lemo", setting="4K", saved_bytes=0.5e9, step_s=0.6)
    >>> rep.ratios("saved_bytes", lower_is_better=True)   # baseline / arm, per setting
    >>> rep.check("LeMo saved bytes <= 0.6x LoRA @4K", measured=0.42, op="<=", target=0.6)
    >>> rep.headline(claim="1.93x less memory", measured="2.4x", baseline="LoRA", ratio=2.4)
    >>> rep.write(run_dir)      # bench.json, bench.md, bench.png

`bench.json` carries the rows, ratios, `checks` (each package's targets evaluated on
the figures just measured: `{name, measured, target, holds}`), the headline rows that
`scripts/reproduce` collects into `results/SUMMARY.md`, versions, device, CPU count and the
exact command.
"""

from __future__ import annotations

import logging
import math
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shared.io import atomic_path, atomic_write_json, atomic_write_text
from shared.runtime import versions

__all__ = ["measure", "Check", "BenchReport", "save_figure", "markdown_table", "fmt_number"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
}


def measure(
    fn: Callable[[], Any], warmup: int = 1, repeats: int = 5, sync: Callable[[], None] | None = None
) -> dict:
    """Run `fn` `warmup` times untimed, then `repeats` times; return median/min/all seconds.

    `sync` (e.g. `torch.cuda.synchronize`) is called before each clock read on async devices.
    The last call's return value is kept under "result".
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        if sync:
            sync()
        t0 = time.perf_counter()
        result = fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": times,
            "result": result}


@dataclass
class Check:
    """One target (a paper claim and its threshold) evaluated on measured figures."""

    name: str
    measured: float | None
    target: str  # e.g. "<= 0.6"
    holds: bool

    @classmethod
    def of(cls, name: str, measured: float | None, op: str, target: float) -> Check:
        if op not in _OPS:
            raise ValueError(f"unknown op {op!r}; use one of {list(_OPS)}")
        ok = measured is not None and not math.isnan(measured) and _OPS[op](measured, target)
        return cls(name=name, measured=measured, target=f"{op} {target:g}", holds=bool(ok))


def fmt_number(v: Any) -> str:
    """4 significant digits (scientific for very large/small), 'nan' for NaN; others as str."""
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return str(v)


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """Rows of dicts -> a GitHub markdown table (missing cells blank)."""
    if not rows:
        return "(no rows)\n"
    cols = columns or list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(fmt_number(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines) + "\n"


@dataclass
class BenchReport:
    """Collects arms' metrics, computes ratios against a named baseline, writes the results."""

    package: str
    baseline: str
    command: list[str] | str | None = None
    rows: list[dict] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    headlines: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def add(self, arm: str, setting: Any = "", **metrics: Any) -> dict:
        row = {"arm": arm, "setting": setting, **metrics}
        self.rows.append(row)
        return row

    def value(self, arm: str, metric: str, setting: Any = "") -> float | None:
        for r in self.rows:
            if r["arm"] == arm and r["setting"] == setting and metric in r:
                return r[metric]
        return None

    def ratios(self, metric: str, lower_is_better: bool = True) -> list[dict]:
        """Per setting and arm: baseline/arm (lower is better) or arm/baseline (higher is better).

        So a ratio > 1 always means the arm is better than the baseline.
        """
        out = []
        for r in self.rows:
            if metric not in r or r["arm"] == self.baseline:
                continue
            base = self.value(self.baseline, metric, r["setting"])
            v = r[metric]
            if base is None or v is None:
                continue
            num, den = (base, v) if lower_is_better else (v, base)
            ratio = num / den if den else math.inf
            out.append({"metric": metric, "setting": r["setting"], "arm": r["arm"],
                        "ratio_vs_" + self.baseline: ratio})
        return out

    def check(self, name: str, measured: float | None, op: str, target: float) -> Check:
        c = Check.of(name, measured, op, target)
        self.checks.append(c)
        return c

    def headline(self, claim: str, measured: str, baseline: str, ratio: float | None,
                 setting: str = "") -> None:
        """One row of results/SUMMARY.md: the paper's claim next to what we measured."""
        self.headlines.append({"claim": claim, "measured": measured, "baseline": baseline,
                               "ratio": ratio, "setting": setting})

    def to_dict(self) -> dict:
        cmd = self.command if self.command is not None else sys.argv
        if isinstance(cmd, (list, tuple)):
            cmd = "python -m " + self.package + ".bench " + shlex.join(list(cmd)[1:]) \
                if cmd and str(cmd[0]).endswith("bench.py") else shlex.join(cmd)
        return {
            "package": self.package,
            "command": cmd,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": versions(),
            "baseline": self.baseline,
            "rows": self.rows,
            "checks": [asdict(c) for c in self.checks],
            "headline": self.headlines,
            "notes": self.notes,
            **self.extra,
        }

    def markdown(self) -> str:
        d = self.to_dict()
        parts = [f"# {self.package} benchmark\n", f"Command: `{d['command']}`\n",
                 f"Device: {d['versions'].get('device')}, CPUs: {d['versions'].get('cpu_count')}\n",
                 "## Results\n", markdown_table(self.rows)]
        if self.checks:
            parts += ["\n## Checks\n", markdown_table(
                [{"check": c.name, "measured": c.measured, "target": c.target,
                  "holds": "yes" if c.holds else "NO"} for c in self.checks])]
        if self.notes:
            parts += ["\n## Notes\n"] + [f"- {n}\n" for n in self.notes]
        return "\n".join(parts)

    def write(self, out_dir: str | Path, plot_metrics: list[str] | None = None,
              config: Any = None) -> Path:
        """Write bench.json, bench.md, (with `plot_metrics`) bench.png and (with `config`, a
        config dataclass) config.yaml, then log every check; return the json path."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if config is not None:
            from shared.config import save_config

            save_config(config, out_dir / "config.yaml")
        if plot_metrics:
            self.plot(out_dir / "bench.png", plot_metrics)
        atomic_write_text(out_dir / "bench.md", self.markdown())
        atomic_write_json(out_dir / "bench.json", self.to_dict())
        self.log_checks()
        logging.getLogger(f"{self.package}.bench").info("wrote %s", out_dir / "bench.json")
        return out_dir / "bench.json"

    def log_checks(self) -> None:
        """One log line per check: name, measured value, target, holds or not."""
        log = logging.getLogger(f"{self.package}.bench")
        for c in self.checks:
            log.info("check %-60s measured %-10s target %-10s %s", c.name,
                     fmt_number(c.measured), c.target, "holds" if c.holds else "DOES NOT HOLD")

    def plot(self, path: str | Path, metrics: list[str]) -> None:
        """One panel per metric: a line per arm over settings (bars when there is one setting)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8), squeeze=False)
        arms = list(dict.fromkeys(r["arm"] for r in self.rows))
        settings = list(dict.fromkeys(r["setting"] for r in self.rows))
        for ax, metric in zip(axes[0], metrics):
            for arm in arms:
                xs, ys = [], []
                for i, s in enumerate(settings):
                    v = self.value(arm, metric, s)
                    if v is not None:
                        xs.append(i)
                        ys.append(v)
                if len(settings) == 1:
                    ax.bar(arm, ys[0] if ys else 0)
                elif ys:
                    ax.plot(xs, ys, marker="o", label=arm)
            if len(settings) > 1:
                ax.set_xticks(range(len(settings)), [str(s) for s in settings])
                ax.legend(fontsize=7)
            else:
                ax.tick_params(axis="x", labelrotation=30, labelsize=7)
            ax.set_title(metric)
            ax.grid(alpha=0.3)
        fig.suptitle(f"{self.package}: arms vs baseline '{self.baseline}'")
        fig.tight_layout()
        save_figure(fig, path)
        plt.close(fig)


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> None:
    """Save a matplotlib figure atomically (PNG)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
