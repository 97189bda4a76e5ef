"""Checks every loader runs before trusting a file: text decoding, declared sizes, numbers,
nesting depth and HDF5 links. Each raises the project's own error with the file and field named.

    >>> text = read_text("calib.json")                  # DataError on bad UTF-8 (line named)
    >>> obj = parse_json(text, "calib.json")              # DataError when nested too deep
    >>> check_alloc(w * h * 4, path.stat().st_size, "image.pfm", "pixels")
    >>> baseline = finite_number(c["baseline_m"], "calib.json: 'baseline_m'", positive=True)

Sizes read from a header are bounded by the file's real size (and a sane cap) before anything
is allocated, so a flipped byte in a header is an error, never a 20 GiB allocation.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import DataError, UserError

__all__ = ["MAX_DEPTH", "MAX_ALLOC", "read_text", "decode_text", "parse_json", "read_json_file",
           "parse_yaml", "check_depth", "check_alloc", "bounded_dims", "finite_number",
           "finite_array", "h5_get", "h5_dataset", "check_state_dict", "check_finite_params"]

MAX_DEPTH = 64  # nesting of JSON/YAML documents; our configs and metadata use < 10
MAX_ALLOC = 16 << 30  # no loader allocates more than 16 GiB from one file, whatever it declares
MAX_TEXT = 1 << 30  # text files (configs, CSV, calibration, corpora) above 1 GiB are refused


def decode_text(data: bytes, source: str, error: type[UserError] = DataError) -> str:
    """UTF-8 bytes -> str; invalid bytes are an error naming the line and byte offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise error(f"{source}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset "
                    f"{e.start})") from None


def read_text(path: str | Path, error: type[UserError] = DataError) -> str:
    """Read a UTF-8 text file; a missing, huge or non-UTF-8 file is `error` naming it."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_TEXT:
            raise error(f"{path}: {size} bytes is too large for a text file")
        data = path.read_bytes()
    except OSError as e:
        raise error(f"{path}: unreadable ({e.strerror or e})") from None
    return decode_text(data, str(path), error)


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)


def _bracket_depth(text: str) -> int:
    """Deepest [ / { nesting of a JSON text, strings skipped (no recursion, numpy speed)."""
    raw = _JSON_STRING.sub(b"", text.encode("utf-8", "surrogatepass"))
    a = np.frombuffer(raw, dtype=np.uint8)
    step = np.isin(a, (0x5B, 0x7B)).astype(np.int64) - np.isin(a, (0x5D, 0x7D))
    return int(np.cumsum(step).max(initial=0))


def parse_json(text: str, source: str, error: type[UserError] = DataError,
               max_depth: int = MAX_DEPTH) -> Any:
    """json.loads with a nesting limit (checked before parsing) and a one-line error."""
    depth = _bracket_depth(text)
    if depth > max_depth:
        raise error(f"{source}: JSON nested {depth} levels deep (limit {max_depth})")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise error(f"{source}: corrupt JSON ({e})") from None


def read_json_file(path: str | Path, error: type[UserError] = DataError) -> Any:
    """`parse_json(read_text(path))`: a missing, non-UTF-8, corrupt or too deep file -> error."""
    path = Path(path)
    if not path.is_file():
        raise error(f"file not found: {path}")
    return parse_json(read_text(path, error), str(path), error)


def _yaml_depth(text: str) -> int:
    """Deepest block/flow nesting of a YAML text from its token stream (no recursion)."""
    import yaml

    opens = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken,
             yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken)
    closes = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)
    depth = deepest = 0
    for tok in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(tok, opens):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > 4 * MAX_DEPTH:
                break
        elif isinstance(tok, closes):
            depth -= 1
    return deepest


def parse_yaml(text: str, source: str, error: type[UserError] = DataError,
               max_depth: int = MAX_DEPTH) -> Any:
    """yaml.safe_load with a nesting limit (checked on the tokens, before composing) and an
    alias-expansion limit (an alias bomb is refused, not walked). YAML errors name the line."""
    import yaml

    try:
        depth = _yaml_depth(text)
        if depth > max_depth:
            raise error(f"{source}: YAML nested more than {max_depth} levels deep")
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise error(f"{source}: invalid YAML{at}") from None
    except RecursionError:
        raise error(f"{source}: YAML nested too deep") from None
    check_depth(data, source, error, max_depth, max_items=100_000)
    return data


def check_depth(obj: Any, source: str, error: type[UserError] = DataError,
                max_depth: int = MAX_DEPTH, max_items: int = 1_000_000) -> None:
    """Refuse containers nested deeper than `max_depth` or holding more than `max_items`
    values once shared references (YAML aliases) are expanded. Iterative: no recursion."""
    count = 0
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > max_items:
            raise error(f"{source}: more than {max_items} values (an alias bomb?)")
        if depth > max_depth:
            raise error(f"{source}: nested more than {max_depth} levels deep")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
            stack.extend((k, depth + 1) for k in node if isinstance(k, tuple))
        elif isinstance(node, (list, tuple)):
            stack.extend((v, depth + 1) for v in node)


def check_alloc(nbytes: int, file_bytes: int, source: str, what: str, ratio: float = 1.0,
                slack: int = 0) -> int:
    """`nbytes` a header declares for `what`, if at most ratio * file size + slack and MAX_ALLOC.

    ratio 1 suits raw payloads (the bytes must be in the file); compressed formats pass the
    largest expansion they can honestly have.
    """
    nbytes = int(nbytes)
    if nbytes < 0:
        raise DataError(f"{source}: {what} declares a negative size ({nbytes} bytes)")
    limit = min(MAX_ALLOC, int(ratio * file_bytes) + slack)
    if nbytes > limit:
        raise DataError(f"{source}: {what} declares {nbytes} bytes but the file has "
                        f"{file_bytes} (truncated, or a corrupt header)")
    return nbytes


def bounded_dims(dims, source: str, what: str, itemsize: int, file_bytes: int,
                 ratio: float = 1.0, slack: int = 0, allow_zero: bool = False
                 ) -> tuple[int, ...]:
    """Header dimensions as ints, each positive (or >= 0), their product's bytes bounded."""
    out = []
    for i, d in enumerate(dims):
        try:
            v = int(d)
        except (TypeError, ValueError, OverflowError):
            raise DataError(f"{source}: {what} dimension {i} is not an integer ({d!r})") from None
        if isinstance(d, float) and d != v:
            raise DataError(f"{source}: {what} dimension {i} is not an integer ({d!r})")
        if v < 0 or (v == 0 and not allow_zero):
            raise DataError(f"{source}: {what} dimension {i} must be positive, got {v}")
        out.append(v)
    total = math.prod(out) * itemsize
    check_alloc(total, file_bytes, source, what, ratio, slack)
    return tuple(out)


def finite_number(value: Any, name: str, positive: bool = False, nonnegative: bool = False,
                  error: type[UserError] = DataError) -> float:
    """A real number (not bool, not a string) that is finite and, optionally, > 0 or >= 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise error(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise error(f"{name} must be finite, got {v}")
    if positive and not v > 0:
        raise error(f"{name} must be positive, got {v}")
    if nonnegative and not v >= 0:
        raise error(f"{name} must be >= 0, got {v}")
    return v


def finite_array(x: Any, name: str, shape: tuple | None = None, allow_nan: bool = False,
                 error: type[UserError] = DataError) -> np.ndarray:
    """float64 array of `x` (numbers only), of `shape` (None entries: any) and finite."""
    try:
        a = np.asarray(x)
        if a.dtype.kind not in "biuf":
            raise ValueError(a.dtype)
        a = a.astype(np.float64)
    except (TypeError, ValueError, OverflowError):
        raise error(f"{name} must be a numeric array") from None
    if shape is not None and (a.ndim != len(shape) or any(
            s is not None and s != n for s, n in zip(shape, a.shape))):
        want = "x".join("?" if s is None else str(s) for s in shape)
        raise error(f"{name} must have shape {want}, got {a.shape}")
    bad = np.isinf(a) if allow_nan else ~np.isfinite(a)
    if bad.any():
        raise error(f"{name} contains {'inf' if allow_nan else 'NaN or inf'} values")
    return a


# ----------------------------------------------------------------------------- HDF5


def h5_get(group, name: str, source: str, max_hops: int = 8):
    """`group[name]` following only soft links that stay in the file (at most `max_hops`);
    None when absent. External links, dangling links and link loops are a DataError."""
    import h5py

    path = name
    base = group
    for _ in range(max_hops + 1):
        try:
            link = base.get(path, getlink=True)
        except (KeyError, RuntimeError, OSError, ValueError) as e:
            raise DataError(f"{source}: cannot resolve '{name}' ({e})") from None
        if link is None:
            if path != name:
                raise DataError(f"{source}: '{name}' is a dangling soft link to '{path}'")
            return None
        if isinstance(link, h5py.ExternalLink):
            raise DataError(f"{source}: '{name}' is an external link to {link.filename!r} "
                            f"(links leaving the file are refused)")
        if isinstance(link, h5py.SoftLink):
            path, base = link.path, group.file if link.path.startswith("/") else base
            continue
        try:
            return base[path]
        except (KeyError, RuntimeError, OSError, ValueError) as e:
            raise DataError(f"{source}: cannot open '{name}' ({e})") from None
    raise DataError(f"{source}: '{name}' is a soft-link chain longer than {max_hops} (a loop?)")


def h5_dataset(group, name: str, source: str, file_bytes: int, budget: list[int] | None = None,
               ratio: float = 64.0, slack: int = 16 << 20) -> np.ndarray | None:
    """Read dataset `name` of `group` (None if absent) after checking its link and that its
    declared size fits `ratio` times the file (compressed data expands; a header that declares
    1e9 rows does not get them). `budget` = [bytes left] shares the bound across datasets."""
    import h5py

    obj = h5_get(group, name, source)
    if obj is None:
        return None
    if not isinstance(obj, h5py.Dataset):
        raise DataError(f"{source}: '{name}' is a {type(obj).__name__}, expected a dataset")
    if obj.dtype.kind not in "biuf":
        raise DataError(f"{source}: '{name}' has dtype {obj.dtype}, expected numbers")
    where = f"'{obj.name}'"
    nbytes = int(np.prod(obj.shape, dtype=np.float64) * obj.dtype.itemsize) if obj.shape else \
        obj.dtype.itemsize
    check_alloc(nbytes, file_bytes, source, where, ratio, slack)
    if budget is not None:
        if nbytes > budget[0]:
            raise DataError(f"{source}: datasets declare more bytes than the file can hold "
                            f"(at {where}; corrupt header?)")
        budget[0] -= nbytes
    try:
        return obj[()]
    except (OSError, RuntimeError, ValueError, TypeError) as e:
        raise DataError(f"{source}: cannot read {where} ({e})") from None


# ----------------------------------------------------------------------------- weights


def check_state_dict(state: Any, model, source: str, allow_missing: tuple[str, ...] = ()
                     ) -> dict:
    """`state` as a dict of tensors fitting `model` (a module, e.g. built on the meta device, or
    a {name: shape} dict) exactly: no missing key (except those starting with a prefix in
    `allow_missing`), no unexpected key, same shapes, all finite."""
    import torch

    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise DataError(f"{source}: weights must be a mapping of names to tensors")
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()} \
        if isinstance(model, torch.nn.Module) else {k: tuple(v) for k, v in model.items()}
    optional = tuple(allow_missing)
    missing = [k for k in want if k not in state and not (optional and k.startswith(optional))]
    if missing:
        raise DataError(f"{source}: missing tensor '{missing[0]}' ({len(missing)} missing)")
    extra = [k for k in state if k not in want]
    if extra:
        raise DataError(f"{source}: unexpected tensor '{extra[0]}' ({len(extra)} unexpected)")
    for k, v in state.items():
        if tuple(v.shape) != want[k]:
            raise DataError(f"{source}: tensor '{k}' has shape {tuple(v.shape)}, the model "
                            f"needs {want[k]}")
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise DataError(f"{source}: tensor '{k}' has NaN or inf values")
    return state


def check_finite_params(model, source: str) -> None:
    """Every floating parameter and buffer of a loaded `model` is finite."""
    import torch

    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise DataError(f"{source}: tensor '{name}' has NaN or inf values")
