"""Logging and progress bars: one format for every package, quiet when not a TTY or in CI."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["setup_logging", "get_logger", "progress", "progress_enabled"]

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at emit time, so a redirected or captured stderr
    (pytest's capsys, a notebook) never leaves the handler writing to a closed stream."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(verbose: bool = False) -> None:
    """Configure the root logger once (idempotent): INFO, or DEBUG with `verbose`."""
    root = logging.getLogger()
    level = logging.DEBUG if verbose else logging.INFO
    if not any(getattr(h, "_shared", False) for h in root.handlers):
        h = _StderrHandler()
        h.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        h._shared = True  # type: ignore[attr-defined]
        root.addHandler(h)
    root.setLevel(level)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def progress_enabled() -> bool:
    """Bars only for a human: stderr is a TTY, not CI, and PROGRESS is not '0'."""
    if os.environ.get("PROGRESS") == "1":
        return True
    if os.environ.get("CI") or os.environ.get("PROGRESS") == "0":
        return False
    return sys.stderr.isatty()


def progress(iterable: Iterable[T] | None = None, **kwargs) -> Iterable[T]:
    """`tqdm(iterable, **kwargs)`, disabled unless `progress_enabled()`."""
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", not progress_enabled())
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
