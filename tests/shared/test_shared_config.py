"""Typed configs: YAML -> dataclasses; every bad key/type fails before work, naming key and file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from shared.config import (
    apply_overrides,
    from_dict,
    load_config,
    parse_override,
    save_config,
    to_dict,
)
from shared.errors import ConfigError


@dataclass
class Optim:
    lr: float = 1e-3  # learning rate
    betas: tuple[float, ...] = (0.9, 0.95)  # AdamW betas


@dataclass
class Cfg:
    name: str = "run"  # run name
    steps: int = 10  # optimiser steps
    mode: Literal["a", "b"] = "a"  # which variant
    quick: bool = False  # small setting
    layers: list[int] = field(default_factory=lambda: [1, 2])  # dense layers
    limit: Optional[int] = None  # optional cap  # noqa: UP045 (typing.Optional must work too)
    cap: float | None = None  # PEP 604 union
    optim: Optim = field(default_factory=Optim)  # nested section

    def validate(self) -> None:
        if self.steps < 0:
            raise ValueError("steps must be >= 0")


def write(tmp_path, text: str):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_yaml_to_nested_dataclass(tmp_path):
    p = write(tmp_path, "name: x\nsteps: 3\nmode: b\noptim:\n  lr: 0.1\n  betas: [0.8, 0.9]\n")
    cfg = load_config(p, Cfg)
    assert cfg.name == "x" and cfg.steps == 3 and cfg.mode == "b"
    assert cfg.optim.lr == 0.1 and cfg.optim.betas == (0.8, 0.9)
    assert cfg.layers == [1, 2] and cfg.limit is None


def test_defaults_without_file():
    assert load_config(None, Cfg) == Cfg()


def test_int_accepted_for_float_but_not_string_for_int(tmp_path):
    assert load_config(write(tmp_path, "optim:\n  lr: 1\n"), Cfg).optim.lr == 1.0
    with pytest.raises(ConfigError, match=r"c\.yaml: 'steps': expected an integer, got '3'"):
        load_config(write(tmp_path, "steps: '3'\n"), Cfg)


def test_unknown_key_names_key_and_file(tmp_path):
    p = write(tmp_path, "optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, Cfg)
    msg = str(e.value)
    assert str(p) in msg and "unknown key 'optim.lrr'" in msg and "lr" in msg


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("steps: 1.5\n", "'steps': expected an integer"),
        ("quick: 1\n", "'quick': expected true/false"),
        ("mode: c\n", "'mode': 'c' is not one of ['a', 'b']"),
        ("layers: [1, x]\n", "'layers[1]': expected an integer"),
        ("optim: 3\n", "expected a mapping for Optim"),
        ("limit: x\n", "'limit': 'x' does not fit"),
        ("steps: -1\n", "steps must be >= 0"),
        ("- 1\n- 2\n", "top level must be a mapping"),
        ("steps: [\n", "invalid YAML"),
    ],
)
def test_type_errors(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text), Cfg)
    assert fragment in str(e.value)


def test_missing_file_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml", Cfg)


def test_overrides_parse_yaml_values(tmp_path):
    p = write(tmp_path, "steps: 3\n")
    cfg = load_config(p, Cfg, ["optim.lr=1e-4", "steps=7", "quick=true", "layers=[4, 5]",
                               "limit=null", "name=hello world"])
    assert cfg.optim.lr == pytest.approx(1e-4) and cfg.steps == 7 and cfg.quick is True
    assert cfg.layers == [4, 5] and cfg.limit is None and cfg.name == "hello world"


def test_override_errors():
    with pytest.raises(ConfigError, match="not of the form key=value"):
        parse_override("steps")
    with pytest.raises(ConfigError, match="empty key"):
        parse_override("a..b=1")
    with pytest.raises(ConfigError, match="unknown key 'optim.nope'"):
        load_config(None, Cfg, ["optim.nope=1"])
    with pytest.raises(ConfigError, match="'steps' is not a section"):
        apply_overrides({"steps": 1}, ["steps.x=1"])


def test_round_trip_and_save(tmp_path):
    cfg = Cfg(name="z", layers=[3], optim=Optim(lr=0.5))
    assert from_dict(Cfg, to_dict(cfg)) == cfg
    save_config(cfg, tmp_path / "out" / "config.yaml")
    assert load_config(tmp_path / "out" / "config.yaml", Cfg) == cfg


@dataclass
class _Sim:
    kind: Literal["fixed", "randomised"] = "fixed"
    seconds: float = 30.0
    band: tuple[float, ...] = (0.5, 15.0)


@dataclass
class _Train:
    sim: _Sim = field(default_factory=lambda: _Sim(kind="randomised", band=(1.0, 8.0)))
    steps: int = 10


def test_partial_nested_override_keeps_the_fields_own_default():
    # `--set train.sim.seconds=10` must not reset `kind` to _Sim's class default
    cfg = from_dict(_Train, apply_overrides({}, ["sim.seconds=10"]))
    assert cfg.sim == _Sim(kind="randomised", seconds=10.0, band=(1.0, 8.0))
    assert from_dict(_Train, {}).sim.kind == "randomised"
    assert from_dict(_Train, {"sim": {"kind": "fixed"}}).sim.band == (1.0, 8.0)
    with pytest.raises(ConfigError, match="sim.nope"):
        from_dict(_Train, {"sim": {"nope": 1}})
