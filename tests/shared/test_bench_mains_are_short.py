"""Thin recipes: every bench `main` reads like a table of contents (parse the config, build data
and models, run the arms, checks, headlines, notes, plots, write), each step a named function,
so no `main` spans more than 60 lines."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 60
BENCHES = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("*/bench.py")
                 if p.parent.name != "shared") + ["lemo/gpu_bench.py", "lemo/dist_bench.py"]
# (shared/bench.py is the harness, BenchReport, not a recipe)


def _mains(path: Path) -> list[ast.FunctionDef]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]


def test_every_package_has_a_bench():
    assert {"ripple/bench.py", "robwe/bench.py", "twscardio/bench.py", "mobifuse/bench.py",
            "lemo/bench.py", "offline_il_select/bench.py"} <= set(BENCHES)


@pytest.mark.parametrize("rel", BENCHES)
def test_bench_main_is_at_most_60_lines(rel):
    mains = _mains(ROOT / rel)
    assert len(mains) == 1, f"{rel}: expected one top-level main, found {len(mains)}"
    span = mains[0].end_lineno - mains[0].lineno + 1
    assert span <= MAX_LINES, f"{rel}: main spans {span} lines (at most {MAX_LINES})"
