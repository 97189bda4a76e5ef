"""Run directories, atomic writes and resumable checkpoints.

Every result file is written to a temporary file in the same directory and `os.replace`d into
place, so a crash or Ctrl-C mid-write leaves the previous file intact, never a half-written one.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import reprlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shared.errors import ConfigError, DataError
from shared.validate import brief, check_torch_file, parse_json, read_json_file

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_write_csv",
    "atomic_torch_save",
    "save_weights",
    "load_weights",
    "read_json",
    "make_run_dir",
    "Checkpointer",
    "config_diff",
    "check_resume",
]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results should read like any file
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _jsonable(o: Any) -> Any:
    if hasattr(o, "tolist"):  # numpy / torch scalars and arrays
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_write_json(path: str | Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2, default=_jsonable, allow_nan=True)
    atomic_write_text(path, text + "\n")


def atomic_write_csv(path: str | Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    if rows:
        fields = list(dict.fromkeys(k for r in rows for k in r))
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


WEIGHTS_KEY = "paperbench"  # safetensors metadata key holding an artefact's JSON description


def save_weights(path: str | Path, tensors: dict, info: dict) -> None:
    """A model artefact as safetensors: the tensors plus `info` (JSON: what the file is and the
    config to rebuild the model) in its header. Loading it runs no code (unlike a pickle)."""
    from safetensors.torch import save_file

    # cloned: safetensors refuses tensors that share storage (views, tied weights)
    flat = {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata={WEIGHTS_KEY: json.dumps(info, sort_keys=True)})


def load_weights(path: str | Path, kind: str) -> tuple[dict, dict]:
    """(tensors, info) of a file written by `save_weights` whose info["kind"] is `kind`; a
    missing, corrupt or foreign file (a pickle, another model's weights) is a one-line
    DataError. Callers still check the tensors against the model they build
    (`shared.validate.check_state_dict`)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise DataError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # a pickle, a truncated file, a corrupt header
        raise DataError(f"{path}: not a {kind} weights file ({brief(e)})") from None
    if WEIGHTS_KEY not in meta:
        raise DataError(f"{path}: not a {kind} weights file (no '{WEIGHTS_KEY}' metadata)")
    info = parse_json(meta[WEIGHTS_KEY], f"{path} metadata")
    if not isinstance(info, dict) or info.get("kind") != kind:
        got = info.get("kind") if isinstance(info, dict) else type(info).__name__
        raise DataError(f"{path}: holds '{got}', not a {kind} model")
    return tensors, info


def read_json(path: str | Path) -> Any:
    """Read JSON; a missing, corrupt (e.g. truncated), non-UTF-8 or too deeply nested file is a
    DataError naming the file."""
    return read_json_file(path)


def make_run_dir(out: str | Path | None, package: str, kind: str) -> Path:
    """`out` if given, else `runs/<package>/<kind>-<timestamp>`; created if missing."""
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / package / f"{kind}-{stamp}"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


class Checkpointer:
    """Atomic `ckpt.pt` (+ the previous one as `ckpt.prev.pt`) in a run dir, for resume.

    `save(state)` writes atomically; `load()` returns the latest readable state or None. A
    corrupt latest checkpoint falls back to the previous one with a warning rather than
    silently restarting from scratch.
    """

    def __init__(self, run_dir: str | Path, name: str = "ckpt"):
        self.path = Path(run_dir) / f"{name}.pt"
        self.prev = Path(run_dir) / f"{name}.prev.pt"

    def save(self, state: dict) -> None:
        if self.path.exists():
            os.replace(self.path, self.prev)
        atomic_torch_save(state, self.path)

    def load(self, map_location: str = "cpu") -> dict | None:
        import logging

        import torch

        # lexists: a dangling or looping link is a broken checkpoint, not "no checkpoint"
        present = [p for p in (self.path, self.prev) if os.path.lexists(p)]
        for p in present:
            try:
                check_torch_file(p)
                return torch.load(p, map_location=map_location, weights_only=False)
            except Exception as e:  # corrupt file: try the older one
                logging.getLogger(__name__).warning("checkpoint %s unreadable (%s)", p, brief(e))
        if present:
            raise DataError(f"no readable checkpoint in {self.path.parent}")
        return None


def config_diff(saved: dict, now: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts, in `now`'s order (then keys
    only `saved` has). Mappings are compared key by key; anything else (lists included) as a
    whole. A key on one side only is a difference."""
    out = []
    for k in list(now) + [k for k in saved if k not in now]:
        key = f"{prefix}{k}"
        a, b = saved.get(k, _MISSING), now.get(k, _MISSING)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_diff(a, b, f"{key}.")
        elif a != b:
            out.append(key)
    return out


_MISSING = object()


def _allowed(key: str, allowed: tuple[str, ...] | list[str]) -> bool:
    return any(key == a or key.startswith(f"{a}.") for a in allowed)


def _lookup(d: dict, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(d, dict) or part not in d:
            return _MISSING
        d = d[part]
    return d


def check_resume(run_dir: str | Path, now: Any, allowed: tuple[str, ...] | list[str] = (),
                 names: tuple[str, ...] = ("ckpt",), saved: dict | None = None,
                 resuming: bool | None = None, absent_as: dict[str, Any] | None = None) -> None:
    """Refuse to resume `run_dir` under a config other than the one it was trained with.

    `now`: the new config (a dataclass or its `shared.config.to_dict`). `saved`: the run's
    config as a dict; by default read from `run_dir/config.yaml`. `allowed`: dotted keys (or
    section prefixes: "eval" covers "eval.every") that change no step a resumed run computes,
    such as the number of steps to train or how often to log. `absent_as`: dotted key -> the
    value a saved config that lacks the key was made with (an option added after the run dir:
    the run trained as that value does), compared as if saved. `resuming`: whether the run dir
    holds a checkpoint; by default, whether a `Checkpointer(run_dir, name)` file exists for a
    name in `names`. Nothing to resume: returns. A checkpoint without config.yaml, or any other
    difference, is a one-line ConfigError naming the run dir and the keys (a few, then
    "and N more"). Call it before writing to the run dir (config.yaml above all)."""
    run_dir = Path(run_dir)
    if resuming is None:
        resuming = any(os.path.lexists(p) for n in names
                       for p in (Checkpointer(run_dir, n).path, Checkpointer(run_dir, n).prev))
    if not resuming:
        return
    if dataclasses.is_dataclass(now):
        from shared.config import to_dict

        now = to_dict(now)
    if saved is None:
        from shared.config import read_yaml

        path = run_dir / "config.yaml"
        if not os.path.lexists(path):
            raise ConfigError(f"--out {run_dir}: holds a checkpoint but no config.yaml, so what "
                              "it was trained with is unknown; use another --out")
        saved = read_yaml(path)
    for key, value in (absent_as or {}).items():
        parent, _, leaf = key.rpartition(".")
        d = _lookup(saved, parent) if parent else saved
        if isinstance(d, dict) and leaf not in d:
            d[leaf] = value
    diff = [k for k in config_diff(saved, now) if not _allowed(k, allowed)]
    if not diff:
        return
    short = reprlib.Repr()
    short.maxstring, short.maxother, short.maxlist = 40, 40, 4

    def val(d: dict, k: str) -> str:
        v = _lookup(d, k)
        return "absent" if v is _MISSING else short.repr(v)

    shown = [f"{k}={val(saved, k)} (now {val(now, k)})" for k in diff[:3]]
    more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
    free = f" (may change: {', '.join(allowed)})" if allowed else ""
    raise ConfigError(f"--out {run_dir}: its checkpoint was trained with {', '.join(shown)}{more};"
                      f" resume with those settings{free} or use another --out")
