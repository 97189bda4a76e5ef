"""Seeded generators whose outputs are cached on disk under a key derived from their config.

    >>> arrays = cached_arrays("mobifuse-scenes", cfg_dict, lambda: simulate(cfg))

The key is a hash of (name, config as canonical JSON, version). Change the generator's logic →
bump `version`. The cache lives in $PAPERBENCH_CACHE, else `<repo>/.cache` in a source checkout,
else (an installed wheel) `$XDG_CACHE_HOME/paperbench` (`~/.cache/paperbench`); entries are written
atomically, so an interrupted generation never leaves a corrupt entry behind (a corrupt one found
anyway is regenerated).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from shared.io import atomic_path

__all__ = ["cache_dir", "cache_key", "cached_arrays", "cached_file", "cached_dir"]

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    env = os.environ.get("PAPERBENCH_CACHE")
    root = Path(__file__).resolve().parent.parent
    if env:
        d = Path(env)
    elif (root / "pyproject.toml").is_file():  # a source checkout (or an editable install)
        d = root / ".cache"
    else:  # installed: never write into site-packages
        xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        d = Path(xdg) / "paperbench"
    d.mkdir(parents=True, exist_ok=True)
    return d


def cache_key(name: str, config: Any, version: int | str = 1) -> str:
    blob = json.dumps({"name": name, "config": config, "version": version}, sort_keys=True,
                      default=str)
    return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def cached_arrays(name: str, config: Any, generate: Callable[[], dict[str, np.ndarray]],
                  version: int | str = 1) -> dict[str, np.ndarray]:
    """Return `generate()`'s dict of arrays, from the cache when present (`.npz`)."""
    path = cache_dir() / f"{cache_key(name, config, version)}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except Exception as e:  # corrupt entry: regenerate
            log.warning("cache entry %s unreadable (%s); regenerating", path, e)
    arrays = generate()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return arrays


def cached_file(name: str, config: Any, build: Callable[[Path], None], suffix: str = "",
                version: int | str = 1, shipped: Path | None = None) -> Path:
    """Path of a cached artefact; `build(tmp_path)` writes it once (atomically) if missing.
    `shipped`: a folder of artefacts that come with the package under the same key names
    (small trained weights for the default settings); one found there is used as is."""
    fname = f"{cache_key(name, config, version)}{suffix}"
    if shipped is not None and (Path(shipped) / fname).is_file():
        return Path(shipped) / fname
    path = cache_dir() / fname
    if not path.exists():
        with atomic_path(path) as tmp:
            build(tmp)
    return path


def cached_dir(name: str, config: Any, build: Callable[[Path], None],
               version: int | str = 1) -> Path:
    """Path of a cached directory (e.g. a `save_pretrained` checkpoint); `build(tmp_dir)` fills
    an empty temporary directory once, which is then renamed into place (a failed build leaves
    nothing behind)."""
    path = cache_dir() / cache_key(name, config, version)
    if not path.is_dir():
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            build(tmp)
            if path.is_dir():  # another process won the race: keep theirs
                shutil.rmtree(tmp)
            else:
                os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return path
