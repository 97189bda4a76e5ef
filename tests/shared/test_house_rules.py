"""The repository's structural rules, checked on the source (STYLE.md): library modules never
import recipes or experiments, `python -m` entry points are recipes, experiments or documented
extras, no import cycles, no issue numbers in code or docs, and user-supplied files are never
unpickled."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["lemo", "ripple", "twscardio", "mobifuse", "offline_il_select", "robwe", "ollie",
            "crosslm", "bestshot", "edgeoar"]
RECIPES = {"train", "eval", "bench"}
# documented extra recipes (each package README says what they do)
EXTRAS = {"lemo": {"gpu_bench", "dist_bench"}}
# library modules that also have a documented `python -m` entry point
TOOLS = {"lemo": {"pretrain"}, "twscardio": {"export"}}


def modules(pkg: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of a package."""
    out = {}
    for f in sorted((ROOT / pkg).rglob("*.py")):
        parts = f.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def is_recipe_or_experiment(pkg: str, name: str) -> bool:
    rest = name.split(".")[1:]
    return bool(rest) and (rest[0] == "experiments"
                           or (len(rest) == 1 and rest[0] in RECIPES | EXTRAS.get(pkg, set())))


def imports(tree: ast.AST, top_level_only: bool, known: set[str] = frozenset()) -> set[str]:
    """Absolute module names imported (module level only, or anywhere). `from pkg import mod`
    of a known submodule counts as importing `pkg.mod` only."""
    body = tree.body if top_level_only else list(ast.walk(tree))
    out = set()
    for node in body:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names}
            out |= subs
            if not subs <= known:
                out.add(node.module)
    return out


def present() -> list[str]:
    return [p for p in PACKAGES if (ROOT / p / "__init__.py").is_file()]


@pytest.mark.parametrize("pkg", present())
def test_library_modules_never_import_recipes_or_experiments(pkg):
    mods = modules(pkg)
    recipes = {m for m in mods if is_recipe_or_experiment(pkg, m)}
    for name, f in mods.items():
        if name in recipes:
            continue
        used = imports(ast.parse(f.read_text()), top_level_only=False)
        bad = sorted(used & recipes)
        assert not bad, f"library module {name} imports {bad}"


@pytest.mark.parametrize("pkg", present())
def test_entry_points_are_recipes_experiments_or_documented_extras(pkg):
    tools = {f"{pkg}.{t}" for t in TOOLS.get(pkg, set())}
    for name, f in modules(pkg).items():
        if "__main__" in f.read_text() and not is_recipe_or_experiment(pkg, name) \
                and name not in tools:
            pytest.fail(f"{name} has a `python -m` entry point outside train/eval/bench, "
                        f"experiments/ and the documented extras")


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    mods = {n: f for p in present() + ["shared"] for n, f in modules(p).items()}
    for name, f in mods.items():
        deps = imports(ast.parse(f.read_text()), top_level_only=True, known=set(mods))
        graph[name] = {d for d in deps if d in mods and d != name}
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        state[n] = 1
        for d in graph[n]:
            if state.get(d) == 1:
                cycle = path[path.index(d):] + [d] if d in path else [n, d]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if d not in state:
                visit(d, path + [d])
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n, [n])


def test_no_issue_numbers_or_work_log_in_code_and_docs():
    pat = re.compile(r"issue ?#?[0-9]|\b(last|previous|this|a later) session\b", re.I)
    roots = [ROOT / p for p in present() + ["shared"]] + [ROOT / "README.md"]
    hits = []
    for r in roots:
        files = [r] if r.is_file() else [*r.rglob("*.py"), *r.rglob("*.md")]
        for f in files:
            for i, line in enumerate(f.read_text().splitlines(), 1):
                if pat.search(line):
                    hits.append(f"{f.relative_to(ROOT)}:{i}: {line.strip()[:80]}")
    assert not hits, "\n".join(hits)


def test_no_unsafe_unpickling_of_user_files():
    """`torch.load(..., weights_only=False)` executes code from the file; only our own
    checkpoints in a run dir we wrote may be read that way, never a path a user hands us."""
    # checkpoints a recipe wrote into its own run dir (resume): shared.io.Checkpointer and
    # lemo's sharded checkpoints (torch.distributed.checkpoint) beside it
    allowed = {"shared/io.py", "lemo/distributed.py"}
    hits = []
    for p in present() + ["shared"]:
        for f in (ROOT / p).rglob("*.py"):
            rel = str(f.relative_to(ROOT))
            if "weights_only=False" in f.read_text() and rel not in allowed:
                hits.append(rel)
    assert not hits, f"weights_only=False in {hits}"
