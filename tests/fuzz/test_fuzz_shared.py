"""Fuzz: shared.config (YAML files and --set overrides), shared.io (JSON, checkpoints).

Bad configs fail with one line naming the key and the file, before any work: never a
UnicodeDecodeError traceback, a RecursionError from deep nesting, a stalled alias bomb, or a
negative count / NaN probability that is accepted.
"""

import dataclasses
import json
import math
import os
from pathlib import Path

import pytest
import torch
from fuzz_harness import (
    Target,
    assert_rejects,
    fuzz_settings,
    mutated_files_test,
)
from hypothesis import given
from hypothesis import strategies as st

from robwe.config import RobWEConfig
from shared.config import load_config, to_dict
from shared.errors import ConfigError, DataError
from shared.io import Checkpointer, read_json

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "robwe" / "tiny.yaml"


def _check_config(cfg, d):
    assert isinstance(cfg, RobWEConfig)

    def walk(v, key):
        if isinstance(v, float):
            assert math.isfinite(v), f"{key} = {v}"
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(x, f"{key}.{k}")
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, f"{key}[{i}]")

    walk(to_dict(cfg), "")
    assert cfg.fl.rounds >= 1 and 0 < cfg.fl.fraction <= 1 and cfg.data.num_clients >= 2
    assert all(h >= 1 for h in cfg.model.hidden)


def _seed_config(d):
    (d / "cfg.yaml").write_bytes(TINY.read_bytes())


def _seed_json(d):
    (d / "meta.json").write_text(json.dumps({"dataset_id": "x", "total_steps": 12,
                                             "ref": [1.5, -2.0, {"a": None}]}, indent=1))


def _seed_ckpt(d):
    Checkpointer(d).save({"step": 3, "model": {"w": torch.ones(4)}})


def _check_ckpt(state, d):
    assert isinstance(state, dict) and state["step"] == 3


TARGETS = [
    Target("config-yaml", _seed_config, lambda d: load_config(d / "cfg.yaml", RobWEConfig),
           _check_config, ("cfg.yaml",), lambda d: ["cfg.yaml"]),
    Target("json", _seed_json, lambda d: read_json(d / "meta.json"),
           lambda obj, d: None, ("meta.json",), lambda d: ["meta.json"]),
    Target("checkpoint", _seed_ckpt, lambda d: Checkpointer(d).load(), _check_ckpt,
           ("ckpt.pt",)),
]
BY_NAME = {t.name: t for t in TARGETS}


test_mutated_files = mutated_files_test(TARGETS, 300, files=4)


# --- overrides: any `--set key=value` is applied or refused in one line naming the key

KEYS = ["fl.rounds", "fl.fraction", "fl.lr", "model.hidden", "data.num_clients", "data.beta",
        "threat.tampered_frac", "detection.confidence", "seed", "watermark.slice_bits",
        "fl", "nope.deeper", "data.partition"]
VALUES = st.one_of(
    st.sampled_from(["-4", ".nan", ".inf", "-.inf", "0", "1e400", "[-64, 0]", "[64, 32]", "3",
                     "0.5", "true", "null", "'3'", "{a: 1}", "[" * 200 + "]" * 200, "~",
                     "&a [1, *a]", "1e-3", "2.5e1", "\udcff"]),
    st.text(max_size=12))


@fuzz_settings(450)
@given(key=st.sampled_from(KEYS), value=VALUES)
def test_overrides(key, value):
    try:
        cfg = load_config(TINY, RobWEConfig, [f"{key}={value}"])
    except ConfigError as e:
        msg = str(e)
        assert "\n" not in msg and (key.split(".")[-1] in msg or key.split(".")[0] in msg), msg
        return
    _check_config(cfg, None)


# --- regressions: each input found a crash, a hang or an accepted bad value


def _case(tmp_path, name):
    return BY_NAME[name].fresh(tmp_path)


@pytest.mark.parametrize("text, words", [
    (b"fl:\n  rounds: 3\n  lr: 0.1\xff\n", ["cfg.yaml:3", "not UTF-8"]),
    (b"a: " + b"[" * 20_000 + b"]" * 20_000 + b"\n", ["nested"]),
    (b"a: " + b"{b: " * 5000 + b"1" + b"}" * 5000 + b"\n", ["nested"]),
    (b"x: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + b"".join(
        b"x%d: &a%d [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n"
        % ((i, i) + (b"a" if i == 0 else b"a%d" % (i - 1),) * 9) for i in range(12)),
     ["alias"]),
    (b"fl:\n  rounds: -4\n", ["fl.rounds", "-4"]),
    (b"fl:\n  fraction: .nan\n", ["fl.fraction", "nan"]),
    (b"model:\n  hidden: [-64, 0]\n", ["model.hidden[0]"]),
    (b"data:\n  beta: .inf\n", ["data.beta"]),
])
def test_bad_config_files(tmp_path, text, words):
    d = _case(tmp_path, "config-yaml")
    (d / "cfg.yaml").write_bytes(text)
    assert_rejects(BY_NAME["config-yaml"], d, *words)


def test_deep_override_is_refused():
    with pytest.raises(ConfigError, match="nested"):
        load_config(TINY, RobWEConfig, ["fl=" + "[" * 20_000 + "]" * 20_000])


@pytest.mark.parametrize("text, words", [
    (b'{"a": "\xff"}', ["meta.json:1", "not UTF-8"]),
    (b"[" * 100_000 + b"]" * 100_000, ["nested"]),
    (b'{"a": 1', ["corrupt JSON"]),
    (b'{"a": 1' + b"0" * 5000 + b"}", ["corrupt JSON"]),  # past the int digit limit: ValueError
])
def test_bad_json(tmp_path, text, words):
    d = _case(tmp_path, "json")
    (d / "meta.json").write_bytes(text)
    assert_rejects(BY_NAME["json"], d, *words)


def test_checkpoint_behind_a_link_loop_is_an_error_not_a_fresh_start(tmp_path):
    os.symlink("ckpt.pt", tmp_path / "ckpt.pt")  # ckpt.pt -> itself
    with pytest.raises(DataError, match="no readable checkpoint"):
        Checkpointer(tmp_path).load()
    (tmp_path / "ckpt.pt").unlink()
    os.symlink(tmp_path / "gone.pt", tmp_path / "ckpt.pt")  # dangling
    with pytest.raises(DataError, match="no readable checkpoint"):
        Checkpointer(tmp_path).load()
    (tmp_path / "ckpt.pt").unlink()
    assert Checkpointer(tmp_path).load() is None  # nothing there: a fresh start


def test_config_ranges_are_field_types():
    fields = {f.name: f.type for f in dataclasses.fields(RobWEConfig().fl)}
    assert "PosInt" in str(fields["rounds"])


def test_cut_checkpoint_header_is_refused_before_torch_allocates(tmp_path):
    t = BY_NAME["checkpoint"]
    d = t.fresh(tmp_path)
    (d / "ckpt.pt").write_bytes((d / "ckpt.pt").read_bytes()[57:])  # once asked for 1.4 GB
    assert_rejects(t, d, "no readable checkpoint")
