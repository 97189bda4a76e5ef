"""The common CLI skeleton of `python -m <package>.train|eval|bench --config ...`.

    def main(argv=None):
        args, cfg = parse_args(argv, TrainConfig, prog="lemo.train",
                               description="Fine-tune with token elimination.",
                               default_config="configs/lemo/tiny.yaml")
        ...

    if __name__ == "__main__":
        run(main)

Standard flags: `--config`, `--set key=value` (repeatable), `--seed`, `--device`, `--out`,
`--quick`, `-v`. `--seed`/`--device` are written into the config when it has such a field, so the
saved config is the whole truth about a run. `run(main)` turns a `UserError` into one line on
stderr and exit code 2 (a traceback only with -v), and Ctrl-C into exit code 130.
`run` also sets torch's thread count from the cores actually available
(`shared.runtime.configure_threads`), once, for every recipe.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from shared.config import load_config
from shared.errors import UserError
from shared.log import setup_logging
from shared.runtime import configure_threads

T = TypeVar("T")

__all__ = ["build_parser", "parse_args", "run"]

_VERBOSE = False


def build_parser(prog: str, description: str, default_config: str | None = None,
                 epilog: str | None = None, run: str | None = None) -> argparse.ArgumentParser:
    """The standard flags; `run` (a help text) adds `--run DIR`, the one way every recipe that
    reads a finished run (an eval) names it; `parse_args` checks that DIR is a directory."""
    p = argparse.ArgumentParser(
        prog=f"python -m {prog}", description=description, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", "-c", default=default_config,
                   help=f"YAML config file (default: {default_config or 'built-in defaults'})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=3e-4 (repeatable)")
    p.add_argument("--seed", type=int, default=None, help="random seed (overrides config.seed)")
    p.add_argument("--device", default=None,
                   help="auto | cpu | cuda | cuda:N (overrides config.device)")
    p.add_argument("--out", default=None,
                   help="run directory for results and checkpoints "
                        "(default: runs/<package>/<kind>-<time>)")
    p.add_argument("--quick", action="store_true",
                   help="a small, fast setting (minutes on 2 CPU cores) for smoke runs "
                        "and summaries")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    if run is not None:
        p.add_argument("--run", default=None, metavar="DIR", help=run)
    return p


def parse_args(argv: list[str] | None, cls: type[T], prog: str, description: str,
               default_config: str | None = None,
               parser: argparse.ArgumentParser | None = None,
               quick: dict[str, Any] | list[str] | None = None
               ) -> tuple[argparse.Namespace, T]:
    """Parse the standard flags (plus any on `parser`), load and override the typed config.
    `quick` ({'a.b': value} or ['a.b=value', ...]) is the recipe's `--quick` overlay: applied
    before the user's `--set`, so an explicit `--set` of the same key always wins."""
    global _VERBOSE
    p = parser or build_parser(prog, description, default_config)
    args = p.parse_args(argv)
    _VERBOSE = args.verbose
    setup_logging(args.verbose)
    if isinstance(quick, dict):
        quick = [f"{k}={v}" for k, v in quick.items()]
    overrides = list(quick or []) if args.quick else []
    overrides += list(args.overrides)
    names = {f.name for f in dataclasses.fields(cls)}
    if getattr(args, "run", None) is not None and not Path(args.run).is_dir():
        raise UserError(f"--run: run directory not found: {args.run}")
    for flag in ("seed", "device"):
        val = getattr(args, flag)
        if val is not None:
            if flag not in names:
                raise UserError(f"--{flag} given but {cls.__name__} has no '{flag}' field")
            overrides.append(f"{flag}={val}")
    cfg = load_config(args.config, cls, overrides)
    return args, cfg


def run(main: Callable[..., Any], argv: list[str] | None = None) -> None:
    """Call `main(argv)`; exit 0, 2 on a UserError (one line), 130 on Ctrl-C."""
    configure_threads()
    try:
        rc = main(argv)
    except UserError as e:
        if _VERBOSE:
            logging.getLogger("cli").exception("error")
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(rc or 0)
