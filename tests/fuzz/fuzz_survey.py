"""An independent mutation run over every fuzz target, counted by outcome.

    python tests/fuzz/fuzz_survey.py --inputs 600 --seed 7 [--cli] [--json out.json]

It draws its own mutation set from a seeded `random.Random` (not hypothesis, not the suite's
seeds) over the targets of tests/fuzz/test_fuzz_*.py and prints, per target, how many inputs
were accepted, rejected cleanly, or ended as a foreign exception, a hang, a memory blow-up or a
silently wrong result (see fuzz_harness). `--cli` also runs each recipe on mutated config files
in a subprocess and checks: exit code 2, one line on stderr, no --out directory left behind.
Exit status 1 when anything is not clean.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(REPO), str(HERE)]

from fuzz_harness import apply_mutations, outcome, random_ops  # noqa: E402

MODULES = ["test_fuzz_shared", "test_fuzz_shared_il", "test_fuzz_mobifuse",
           "test_fuzz_twscardio", "test_fuzz_robwe", "test_fuzz_ripple", "test_fuzz_lemo",
           "test_fuzz_ollie"]
KINDS = ("accepted", "rejected", "foreign", "hang", "memory", "wrong")

# recipe -> a valid config it reads (the CLI cases mutate it)
RECIPES = {"robwe.train": "configs/robwe/tiny.yaml", "ripple.train": "configs/ripple/tiny.yaml",
           "twscardio.train": "configs/twscardio/default.yaml",
           "mobifuse.train": "configs/mobifuse/tiny.yaml", "lemo.train": "configs/lemo/tiny.yaml",
           "offline_il_select.train": "configs/offline_il_select/tiny.yaml",
           "ollie.train": "configs/ollie/tiny.yaml"}
CLI_OVERRIDES = ["fl.rounds=-4", "steps=-1", "seed=.nan", "lr=.inf", "model=[[[[[[]]]]]]",
                 "nope=1", "data.path=/nonexistent", "data.imperfect_file=/nonexistent.hdf5"]


def survey_files(n_inputs: int, seed: int) -> tuple[dict, list]:
    targets = [t for m in MODULES for t in importlib.import_module(m).TARGETS]
    rng = random.Random(seed)
    counts = {t.name: Counter() for t in targets}
    bad = []
    root = Path(tempfile.mkdtemp(prefix="fuzz-survey-"))
    for i in range(n_inputs):
        t = targets[i % len(targets)]
        d = t.fresh(root)
        rel = t.mutable[rng.randrange(len(t.mutable))]
        p = d / rel
        p.write_bytes(apply_mutations(p.read_bytes(), random_ops(rng)))
        kind, detail = outcome(t, d)
        counts[t.name][kind] += 1
        if kind not in ("accepted", "rejected"):
            bad.append((t.name, rel, kind, detail))
    return counts, bad


def survey_cli(seed: int, configs: int = 2) -> tuple[Counter, list]:
    """Each recipe on a mutated config and on bad overrides: exit 2, one line, no --out."""
    rng = random.Random(seed)
    counts, bad = Counter(), []
    for recipe, cfg in RECIPES.items():
        cases = [["--set", o] for o in rng.sample(CLI_OVERRIDES, 3)]
        for _ in range(configs):
            text = apply_mutations((REPO / cfg).read_bytes(), random_ops(rng))
            f = Path(tempfile.mkdtemp()) / "bad.yaml"
            f.write_bytes(text)
            cases.append(["--config", str(f)])
        for extra in cases:
            out = Path(tempfile.mkdtemp()) / "out"
            argv = [sys.executable, "-m", recipe, "--config", str(REPO / cfg), *extra,
                    "--out", str(out)]
            try:
                r = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
            except subprocess.TimeoutExpired:  # a valid (mutated) config starts training
                counts["accepted (training)"] += 1
                continue
            err = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
            if r.returncode == 0:
                counts["accepted"] += 1
            elif r.returncode == 2 and len(err) == 1 and "Traceback" not in r.stderr \
                    and not out.exists():
                counts["rejected"] += 1
            else:
                counts["foreign"] += 1
                bad.append((recipe, " ".join(extra), f"rc={r.returncode} out={out.exists()}",
                            r.stderr[-400:]))
    return counts, bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=600)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--cli", action="store_true")
    ap.add_argument("--cli-configs", type=int, default=2, help="mutated configs per recipe")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    counts, bad = survey_files(args.inputs, args.seed)
    total = Counter()
    print(f"{'target':<18}" + "".join(f"{k:>10}" for k in ("tried",) + KINDS))
    for name, c in counts.items():
        total.update(c)
        print(f"{name:<18}{sum(c.values()):>10}" + "".join(f"{c[k]:>10}" for k in KINDS))
    print(f"{'total':<18}{sum(total.values()):>10}" + "".join(f"{total[k]:>10}" for k in KINDS))
    report = {"files": {k: dict(v) for k, v in counts.items()}, "bad": bad}
    if args.cli:
        cli, cli_bad = survey_cli(args.seed, args.cli_configs)
        print("cli:", dict(cli))
        bad += cli_bad
        report["cli"] = dict(cli)
    for row in bad[:40]:
        print("NOT CLEAN:", *row)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
