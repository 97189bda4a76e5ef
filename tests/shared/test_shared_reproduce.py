"""scripts/reproduce.py: the summary table built from packages' bench.json files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from shared.bench import BenchReport

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("reproduce", ROOT / "scripts" / "reproduce.py")
reproduce = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reproduce)


def test_summary_lists_claims_ratios_and_failed_targets(tmp_path):
    rep = BenchReport("lemo", baseline="lora", command="python -m lemo.bench --quick")
    rep.headline("1.93x less memory", "2.10x less saved bytes", "LoRA", 2.1, setting="4K")
    rep.check("saved bytes <= 0.6x LoRA", 0.48, "<=", 0.6)
    rep.check("ppl within 3%", 1.05, "<=", 1.03)
    rep.write(tmp_path / "lemo")
    from shared.io import read_json

    results = {"lemo": {"status": "ok", "seconds": 12.0,
                        "bench": read_json(tmp_path / "lemo" / "bench.json")},
               "ripple": {"status": "failed (exit 2)", "seconds": 1.0}}
    text = reproduce.summarise(results, tmp_path)
    assert "| lemo | 1.93x less memory | 2.10x less saved bytes (4K) | LoRA | 2.10x |" in text
    assert "`python -m lemo.bench --quick`" in text
    assert "| lemo | 1/2 | ppl within 3% (measured 1.05, target <= 1.03)" in text
    assert "| ripple | - | failed (exit 2) |" in text


def test_unknown_package_is_an_error(capsys):
    assert reproduce.main(["nope"]) == 2
    assert "unknown package 'nope'" in capsys.readouterr().err


def test_collect_rebuilds_summary_from_existing_results(tmp_path):
    rep = BenchReport("ripple", baseline="naive", command="python -m ripple.bench --quick")
    rep.headline("5.93x lower I/O latency", "6.2x", "llama.cpp-style", 6.2)
    rep.write(tmp_path / "ripple")
    assert reproduce.main(["--collect", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "SUMMARY.md").read_text()
    assert "| ripple | 5.93x lower I/O latency | 6.2x | llama.cpp-style | 6.20x |" in text
