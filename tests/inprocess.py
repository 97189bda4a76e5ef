"""Run a recipe's `main` in-process as `python -m module args` would (through shared.cli.run)."""

import contextlib
import importlib
import io

from shared.cli import run


def cli(module: str, *args: str) -> tuple[int, str]:
    """`python -m module args` in-process through shared.cli.run: (exit code, stderr)."""
    main = importlib.import_module(module).main
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            run(main, list(args))
            code = 0
        except SystemExit as e:
            code = e.code or 0
    return code, err.getvalue().strip()
