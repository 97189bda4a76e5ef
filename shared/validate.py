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

__all__ = ["brief", "MAX_DEPTH", "MAX_ALLOC", "read_text", "decode_text", "parse_json",
           "read_json_file", "parse_yaml", "check_depth", "check_alloc", "bounded_dims",
           "finite_number", "finite_array", "read_npz", "h5_get", "h5_dataset",
           "check_torch_file", "check_state_dict", "check_finite_params", "safetensors_shapes",
           "hf_config", "strict_from_pretrained"]

MAX_DEPTH = 64  # nesting of JSON/YAML documents; our configs and metadata use < 10
MAX_ALLOC = 16 << 30  # no loader allocates more than 16 GiB from one file, whatever it declares
MAX_TEXT = 1 << 30  # text files (configs, CSV, calibration, corpora) above 1 GiB are refused


def brief(e: BaseException) -> str:
    """'TypeName: first line of the message' (at most 200 characters), for one-line errors."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    text = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


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
    except (ValueError, RecursionError) as e:  # ValueError: JSONDecodeError, or an integer
        raise error(f"{source}: corrupt JSON ({brief(e)})") from None  # past Python's digit limit


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
    if 0 in out and math.prod(max(v, 1) for v in out) * itemsize > MAX_ALLOC:
        # an empty array, but numpy refuses a shape whose other dims overflow
        raise DataError(f"{source}: {what} dimensions {out} are too large")
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


# ----------------------------------------------------------------------------- npz


def read_npz(path: str | Path, keys: tuple[str, ...], what: str = ".npz file"
             ) -> dict[str, np.ndarray]:
    """Arrays `keys` of an .npz file, each .npy header's shape checked against the member's
    size (and that against its compressed size) before the array is allocated; no pickles."""
    import zipfile
    import zlib

    path = Path(path)
    fmt = np.lib.format
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for k in keys:
                try:
                    info = zf.getinfo(f"{k}.npy")
                except KeyError:
                    raise DataError(f"{path}: {what} lacks key '{k}'") from None
                check_alloc(info.file_size, info.compress_size, str(path), f"member '{k}'",
                            ratio=1100, slack=1 << 12)
                with zf.open(info) as f:
                    version = fmt.read_magic(f)
                    read = fmt.read_array_header_1_0 if version == (1, 0) else \
                        fmt.read_array_header_2_0
                    shape, _, dtype = read(f)
                if dtype.hasobject:
                    raise DataError(f"{path}: '{k}' holds Python objects (refused)")
                bounded_dims(shape, str(path), f"'{k}'", dtype.itemsize, info.file_size,
                             allow_zero=True)
                with zf.open(info) as f:
                    out[k] = fmt.read_array(f, allow_pickle=False)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError,
            zlib.error, NotImplementedError, RuntimeError) as e:  # RuntimeError: "encrypted"
        raise DataError(f"{path}: corrupt {what} ({brief(e)})") from None
    return out


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
            raise DataError(f"{source}: cannot resolve '{name}' ({brief(e)})") from None
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
            raise DataError(f"{source}: cannot open '{name}' ({brief(e)})") from None
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
        raise DataError(f"{source}: cannot read {where} ({brief(e)})") from None


# ----------------------------------------------------------------------------- weights


def check_torch_file(path: str | Path) -> None:
    """A `torch.save` file in the zip format whose records fit the file (torch stores them
    uncompressed). The legacy pickle format, and zips whose directory lies about sizes, are
    refused before torch.load trusts a declared length (a cut-off header once asked for 1.4 GB)."""
    import zipfile

    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # torch reads anything else as a legacy pickle
            raise DataError(f"{path}: not a torch zip file (bad magic)")
    try:
        with zipfile.ZipFile(path) as zf:
            total = sum(i.file_size for i in zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: not a torch zip file ({brief(e)})") from None
    check_alloc(total, size, str(path), "torch records")


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


_ST_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
              "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def safetensors_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} from a .safetensors header, every entry checked against the file
    (known dtype, offsets inside the data block, size = prod(shape) x itemsize)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise DataError(f"{path}: truncated safetensors file")
        n = int.from_bytes(head, "little")
        check_alloc(n, min(size - 8, 100 << 20), str(path), "safetensors header")
        header = parse_json(decode_text(f.read(n), str(path)), str(path))
    if not isinstance(header, dict):
        raise DataError(f"{path}: safetensors header is not a JSON object")
    data_bytes = size - 8 - n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        try:  # JSON integers only: a float (1e999, 3.5) is a corrupt entry, not a size
            shape, offsets = e["shape"], e["data_offsets"]
            if not all(isinstance(x, int) and not isinstance(x, bool)
                       for x in (*shape, *offsets)):
                raise TypeError("non-integer size")
            shape = tuple(shape)
            begin, end = offsets
            item = _ST_DTYPES[e["dtype"]]
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path}: malformed header entry for tensor '{name}'") from None
        if min(shape, default=0) < 0 or not 0 <= begin <= end <= data_bytes or \
                end - begin != math.prod(shape) * item:
            raise DataError(f"{path}: tensor '{name}' does not fit the file (shape {shape}, "
                            f"bytes {begin}..{end} of {data_bytes}; truncated or corrupt)")
        out[name] = shape
    return out


def _checkpoint_shapes(path: Path, source: str) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a save_pretrained directory (one or several safetensors shards)."""
    index = path / "model.safetensors.index.json"
    if index.is_file():
        idx = read_json_file(index)
        shards = idx.get("weight_map") if isinstance(idx, dict) else None
        files = sorted({str(v) for v in shards.values()}) if isinstance(shards, dict) else []
        if not files or any("/" in f or f.startswith(".") for f in files):
            raise DataError(f"{index}: no usable 'weight_map'")
    elif (path / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise DataError(f"{source}: no model.safetensors (pickled .bin weights are not loaded)")
    out: dict[str, tuple[int, ...]] = {}
    for f in files:
        if not (path / f).is_file():
            raise DataError(f"{source}: weight shard '{f}' not found")
        out.update(safetensors_shapes(path / f))
    return out


def hf_config(path: str | Path, source: str):
    """A transformers config from `path/config.json`, read through our JSON checks first."""
    from transformers import AutoConfig

    path = Path(path)
    try:
        c = read_json_file(path / "config.json")
    except DataError as e:
        raise DataError(f"{source}: unreadable config.json ({brief(e)})") from None
    if not isinstance(c, dict):
        raise DataError(f"{source}: unreadable config.json (not a JSON object)")
    try:
        return AutoConfig.from_pretrained(str(path))
    except Exception as e:  # transformers raises many types for a bad config
        raise DataError(f"{source}: unreadable config.json ({brief(e)})") from None


def strict_from_pretrained(path: str | Path, config, source: str,
                           allow_missing: tuple[str, ...] = (), **kwargs):
    """`AutoModelForCausalLM.from_pretrained` that refuses, instead of random-initialising:
    a config that does not describe the stored tensors (checked on the meta device before any
    allocation), missing tensors (except prefixes in `allow_missing`), unexpected or mismatched
    tensors, and NaN/inf weights. Any failure is a DataError naming `source`."""
    import torch
    from transformers import AutoModelForCausalLM

    path = Path(path)
    try:
        stored = _checkpoint_shapes(path, source)
    except DataError as e:
        raise DataError(f"{source}: cannot load weights ({brief(e)})") from None
    layers = getattr(config, "num_hidden_layers", None)
    if not isinstance(layers, int) or not 0 < layers <= len(stored):
        raise DataError(f"{source}: config num_hidden_layers={layers!r} does not fit the "
                        f"{len(stored)} stored tensors")
    try:
        with torch.device("meta"):
            shape = AutoModelForCausalLM.from_config(config)
    except Exception as e:  # zero heads, inconsistent sizes ...
        raise DataError(f"{source}: config.json does not build a model ({type(e).__name__}: "
                        f"{e})") from None
    keys = set(shape.state_dict())
    want = {k: tuple(p.shape) for k, p in shape.named_parameters() if k in keys}
    want.update({k: tuple(b.shape) for k, b in shape.named_buffers() if k in keys})
    del shape
    optional = tuple(allow_missing)
    missing = sorted(k for k in want if k not in stored and not (optional and
                                                                  k.startswith(optional)))
    extra = sorted(k for k in stored if k not in want)
    wrong = sorted(k for k in stored if k in want and stored[k] != want[k])
    for what, names in (("missing", missing), ("unexpected", extra), ("mis-shaped", wrong)):
        if names:
            raise DataError(f"{source}: {len(names)} {what} tensor(s), e.g. '{names[0]}' "
                            f"(config.json and the weights disagree)")
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            str(path), config=config, output_loading_info=True, **kwargs)
    except Exception as e:  # corrupt tensors past the header check
        raise DataError(f"{source}: cannot load weights ({brief(e)})") from None
    left = [k for k in info.get("missing_keys", ()) if not (optional and k.startswith(optional))]
    for what, names in (("missing", left), ("unexpected", info.get("unexpected_keys", ())),
                        ("mis-shaped", info.get("mismatched_keys", ()))):
        if names:
            raise DataError(f"{source}: {len(names)} {what} tensor(s), e.g. "
                            f"'{sorted(map(str, names))[0]}'")
    check_finite_params(model, source)
    return model
