"""Typed configs: YAML -> (nested) dataclasses, with `key=value` overrides.

Every unknown or mistyped key fails *before* any work starts, with the key and the file named:

    >>> cfg = load_config("configs/lemo/tiny.yaml", TrainConfig, ["optim.lr=3e-4"])

Supported field types: bool, int, float, str, `Literal[...]`, `Optional[T]`, `list[T]`,
`tuple[T, ...]`, `dict[str, T]` and nested dataclasses. Ints are accepted for float fields;
nothing else is coerced (a YAML string "3" for an int field is an error, not a guess). Floats
must be finite; value ranges are part of the type (`PosInt`, `Prob`, ... or
`Annotated[float, Range(lo, hi)]`), so `rounds: -4` fails with the other key errors, before any
work starts.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from shared.errors import ConfigError
from shared.validate import check_depth, parse_yaml, read_text

T = TypeVar("T")

__all__ = [
    "load_config",
    "from_dict",
    "to_dict",
    "apply_overrides",
    "parse_override",
    "save_config",
    "Range",
    "PosInt",
    "NonNegInt",
    "PosFloat",
    "NonNegFloat",
    "Prob",
]


@dataclasses.dataclass(frozen=True)
class Range:
    """Allowed values of a numeric field: lo <= v <= hi (strict where `open`)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def check(self, v: float, where: str) -> None:
        ok = (self.lo is None or (v > self.lo if self.lo_open else v >= self.lo)) and \
             (self.hi is None or (v < self.hi if self.hi_open else v <= self.hi))
        if not ok:
            lo = "-inf" if self.lo is None else self.lo
            hi = "inf" if self.hi is None else self.hi
            span = f"{'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"
            raise ConfigError(f"{where}: {v!r} is outside {span}")


PosInt = Annotated[int, Range(lo=1)]  # counts, sizes, steps
NonNegInt = Annotated[int, Range(lo=0)]  # counts where 0 means "none" / "all"
PosFloat = Annotated[float, Range(lo=0, lo_open=True)]  # rates, lengths, scales
NonNegFloat = Annotated[float, Range(lo=0)]  # weights, penalties, noise levels
Prob = Annotated[float, Range(0, 1)]  # probabilities and fractions


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check(value: Any, tp: Any, path: str) -> Any:
    """Return `value` converted to `tp`, or raise ConfigError naming the key `path`."""
    where = f"'{path}'"
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Annotated:
        base, *extras = get_args(tp)
        value = _check(value, base, path)
        for rule in extras:
            if isinstance(rule, Range):
                rule.check(value, where)
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return _build(tp, value, path)
    if origin is Union or origin is types.UnionType:
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(value, arg, path)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: {value!r} does not fit {_type_name(tp)}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {list(get_args(tp))}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = get_args(tp)
        item = args[0] if args else Any
        out = [_check(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        _, vt = get_args(tp) or (str, Any)
        return {str(k): _check(v, vt, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported field type {_type_name(tp)}")


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        nested = isinstance(v, dict) and isinstance(out.get(k), dict)
        out[k] = _deep_merge(out[k], v) if nested else v
    return out


def _over_field_default(f: dataclasses.Field, value: Any) -> Any:
    """A partial dict for a nested dataclass field overrides the field's own default
    (`field(default_factory=lambda: Sim(kind="b"))`), not the nested class's defaults."""
    if not isinstance(value, dict) or f.default_factory is dataclasses.MISSING:
        return value
    default = f.default_factory()
    if not dataclasses.is_dataclass(default):
        return value
    return _deep_merge(_init_dict(default), value)


def _init_dict(obj: Any) -> dict:
    """`to_dict` restricted to constructor fields (what `_build` accepts)."""
    out = {}
    for f in dataclasses.fields(obj):
        if f.init:
            v = getattr(obj, f.name)
            out[f.name] = _init_dict(v) if dataclasses.is_dataclass(v) else to_dict(v)
    return out


def _build(cls: type[T], data: dict, where: str) -> T:
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown key '{prefix}{unknown[0]}' (known keys: {', '.join(sorted(fields))})"
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        kwargs[name] = _check(_over_field_default(fields[name], value), hints[name], key)
    try:
        obj = cls(**kwargs)
    except TypeError as e:  # a required field missing
        raise ConfigError(f"{where or cls.__name__}: {e}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except (ValueError, AssertionError, ArithmeticError) as e:
            raise ConfigError(f"{where or cls.__name__}: {e}") from None
    return obj


def from_dict(cls: type[T], data: dict | None) -> T:
    """Build dataclass `cls` from a plain dict, checking keys and types recursively."""
    return _build(cls, dict(data or {}), "")


def to_dict(cfg: Any) -> dict:
    """Dataclass -> plain dict (tuples become lists) that `from_dict` turns back into `cfg`."""

    def conv(v):
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return conv(cfg)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'a.b=3' -> (['a', 'b'], 3). The value is parsed as YAML ('1e-3', 'true', '[1, 2]')."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    except RecursionError:
        raise ConfigError(f"override '{key}': value nested too deep") from None
    check_depth(value, f"override '{key}'", ConfigError)
    # YAML reads '1e-3' as a string; accept it as the float a user means.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            pass
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str] | None) -> dict:
    """Return a copy of `data` with each 'a.b=value' applied (missing levels are created)."""
    out = _deepcopy(data)
    for text in overrides or []:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override '{text}': '{part}' is not a section")
            node = nxt
        node[path[-1]] = value
    return out


def _deepcopy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _deepcopy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deepcopy(v) for v in d]
    return d


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping (found by `resolve_config`: a package's shipped configs from any
    directory); a missing, unreadable or non-mapping file is a ConfigError."""
    path = resolve_config(path)
    data = parse_yaml(read_text(path, ConfigError), str(path), ConfigError)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def resolve_config(path: str | Path) -> Path:
    """A config path as given (absolute, or relative to the current directory); failing that, a
    package's shipped default: `configs/<package>/<name>.yaml` is read from the installed
    package's `configs/` folder (importlib.resources), so recipes run from any directory and
    from an installed wheel. A path that is neither is a ConfigError naming it."""
    path = Path(path)
    if path.is_file():
        return path
    parts = path.parts
    if not path.is_absolute() and len(parts) == 3 and parts[0] == "configs" \
            and parts[1].isidentifier():
        import importlib.resources

        try:
            shipped = importlib.resources.files(parts[1]) / "configs" / parts[2]
        except ModuleNotFoundError:
            shipped = None
        if shipped is not None and shipped.is_file():
            return Path(str(shipped))
    raise ConfigError(f"config file not found: {path}")


def load_config(
    path: str | Path | None, cls: type[T], overrides: list[str] | None = None
) -> T:
    """Load `path` (or the dataclass defaults when None) into `cls`, then apply overrides.
    `path` is found by `resolve_config` (a package's shipped configs from any directory).

    Errors name the file: "configs/x.yaml: unknown key 'optim.lrr' (known keys: ...)".
    """
    data = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "<defaults>"
    try:
        data = apply_overrides(data, overrides)
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically."""
    from shared.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
