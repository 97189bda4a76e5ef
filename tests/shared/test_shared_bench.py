"""The benchmark harness: timing, ratios vs a named baseline, checks, and the files it writes."""

from __future__ import annotations

import json
import math

import pytest

from shared.bench import BenchReport, Check, markdown_table, measure


def test_measure_counts_warmup_and_repeats():
    calls = []
    out = measure(lambda: calls.append(1) or len(calls), warmup=2, repeats=3)
    assert len(calls) == 5 and len(out["times_s"]) == 3 and out["result"] == 5
    assert out["min_s"] <= out["median_s"]
    with pytest.raises(ValueError):
        measure(lambda: None, repeats=0)


def test_ratios_are_better_when_above_one():
    rep = BenchReport("pkg", baseline="base")
    for s, (b, m) in {"4K": (100.0, 50.0), "8K": (200.0, 80.0)}.items():
        rep.add("base", s, mem=b, acc=0.5)
        rep.add("method", s, mem=m, acc=0.6)
    mem = {(r["setting"], r["arm"]): r["ratio_vs_base"] for r in rep.ratios("mem")}
    assert mem == {("4K", "method"): 2.0, ("8K", "method"): 2.5}
    acc = rep.ratios("acc", lower_is_better=False)
    assert acc[0]["ratio_vs_base"] == pytest.approx(1.2)


def test_checks_evaluate_targets():
    assert Check.of("mem", 0.5, "<=", 0.6).holds
    assert not Check.of("mem", 0.7, "<=", 0.6).holds
    assert not Check.of("nan never holds", math.nan, ">=", 0.0).holds
    assert not Check.of("missing never holds", None, ">=", 0.0).holds
    assert Check.of("x", 2, ">", 1).target == "> 1"
    with pytest.raises(ValueError):
        Check.of("x", 1, "==", 1)


def test_write_produces_json_markdown_and_png(tmp_path):
    rep = BenchReport("pkg", baseline="base", command=["python", "-m", "pkg.bench", "--quick"])
    rep.add("base", "a", t=2.0)
    rep.add("fast", "a", t=1.0)
    rep.add("base", "b", t=4.0)
    rep.add("fast", "b", t=1.0)
    rep.check("speed-up >= 2x at b", 4.0, ">=", 2)
    rep.headline("2x faster", "4.0x", "base", 4.0, setting="b")
    rep.notes.append("a note")
    path = rep.write(tmp_path, plot_metrics=["t"])
    d = json.loads(path.read_text())
    assert d["package"] == "pkg" and d["baseline"] == "base" and len(d["rows"]) == 4
    assert d["checks"] == [{"name": "speed-up >= 2x at b", "measured": 4.0, "target": ">= 2",
                            "holds": True}]
    assert d["headline"][0]["ratio"] == 4.0 and "cpu_count" in d["versions"]
    assert d["command"] == "python -m pkg.bench --quick"
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "bench.md").read_text()
    assert "| arm | setting | t |" in md and "a note" in md and "| yes |" in md


def test_markdown_table_formats_numbers():
    t = markdown_table([{"a": 1.23456789, "b": 1e-6, "c": float("nan")}])
    assert "1.235" in t and "1.000e-06" in t and "nan" in t
