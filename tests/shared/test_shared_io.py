"""Atomic writes, JSON reading, run directories and resumable checkpoints."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import yaml

from shared.errors import ConfigError, DataError
from shared.io import (
    Checkpointer,
    atomic_path,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    check_resume,
    config_diff,
    make_run_dir,
    read_json,
)


def test_atomic_json_round_trip_with_numpy_and_torch(tmp_path):
    import numpy as np

    p = tmp_path / "a" / "r.json"
    atomic_write_json(p, {"x": np.float32(1.5), "v": torch.tensor([1, 2]), "p": tmp_path})
    assert read_json(p) == {"x": 1.5, "v": [1, 2], "p": str(tmp_path)}


def test_interrupted_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "r.json"
    atomic_write_text(p, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("crash mid-write")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]


def test_unserialisable_json_does_not_clobber(tmp_path):
    p = tmp_path / "r.json"
    atomic_write_json(p, {"ok": 1})
    with pytest.raises(TypeError):
        atomic_write_json(p, {"bad": object()})
    assert read_json(p) == {"ok": 1}


def test_read_json_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="file not found: .*missing.json"):
        read_json(tmp_path / "missing.json")
    p = tmp_path / "trunc.json"
    p.write_text(json.dumps({"a": [1, 2, 3]})[:-4])
    with pytest.raises(DataError, match="trunc.json: corrupt JSON"):
        read_json(p)


def test_csv(tmp_path):
    atomic_write_csv(tmp_path / "t.csv", [{"a": 1, "b": 2}, {"a": 3, "c": 4}])
    assert (tmp_path / "t.csv").read_text().splitlines() == ["a,b,c", "1,2,", "3,,4"]


def test_make_run_dir(tmp_path, monkeypatch):
    assert make_run_dir(tmp_path / "x", "pkg", "bench") == tmp_path / "x"
    monkeypatch.chdir(tmp_path)
    d = make_run_dir(None, "pkg", "train")
    assert d.is_dir() and d.parts[:2] == ("runs", "pkg") and d.name.startswith("train-")


def test_checkpointer_resume_and_corrupt_fallback(tmp_path):
    ck = Checkpointer(tmp_path)
    assert ck.load() is None
    ck.save({"step": 1})
    ck.save({"step": 2})
    assert ck.load()["step"] == 2
    ck.path.write_bytes(b"garbage")  # a corrupt latest falls back to the previous one
    assert ck.load()["step"] == 1
    ck.prev.write_bytes(b"garbage")
    with pytest.raises(DataError, match="no readable checkpoint"):
        ck.load()


def test_atomic_files_get_normal_permissions(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "r.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.txt").stat().st_mode) == 0o644


def _run_dir(tmp_path, saved: dict | None, name: str = "ckpt"):
    (tmp_path / f"{name}.pt").write_bytes(b"")
    if saved is not None:
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    return tmp_path


def test_config_diff_names_nested_keys_and_compares_lists_whole():
    was = {"optim": {"lr": 1e-3, "betas": [0.9, 0.99]}, "steps": 10, "old": 1}
    now = {"optim": {"lr": 1e-2, "betas": [0.9, 0.999]}, "steps": 10, "new": 2}
    assert config_diff(was, now) == ["optim.lr", "optim.betas", "new", "old"]
    assert config_diff(was, was) == []


def test_check_resume_refuses_a_changed_key_in_one_line(tmp_path):
    was = {"optim": {"lr": 1e-3}, "steps": 10}
    run = _run_dir(tmp_path, was)
    with pytest.raises(ConfigError) as e:
        check_resume(run, {"optim": {"lr": 1e-2}, "steps": 10})
    msg = str(e.value)
    assert "\n" not in msg and str(run) in msg and "optim.lr=0.001 (now 0.01)" in msg
    check_resume(run, was)  # same config: resumes


def test_check_resume_allows_named_keys_and_prefixes(tmp_path):
    was = {"steps": 10, "log": {"every": 5, "csv": True}, "optim": {"lr": 1e-3}}
    run = _run_dir(tmp_path, was)
    now = {"steps": 20, "log": {"every": 1, "csv": False}, "optim": {"lr": 1e-3}}
    check_resume(run, now, allowed=("steps", "log"))
    with pytest.raises(ConfigError, match="log.csv"):
        check_resume(run, now, allowed=("steps", "log.every"))
    with pytest.raises(ConfigError, match="optim.lr"):  # "optim.l" is no prefix of "optim.lr"
        check_resume(run, {**now, "optim": {"lr": 1.0}}, allowed=("steps", "log", "optim.l"))


def test_check_resume_lists_a_few_keys_then_and_n_more(tmp_path):
    was = {f"k{i}": i for i in range(6)}
    run = _run_dir(tmp_path, was)
    with pytest.raises(ConfigError) as e:
        check_resume(run, {f"k{i}": i + 1 for i in range(6)})
    msg = str(e.value)
    assert "k0=0 (now 1), k1=1 (now 2), k2=2 (now 3) and 3 more" in msg and "k3" not in msg


def test_check_resume_without_checkpoint_or_without_config(tmp_path):
    check_resume(tmp_path, {"a": 1})  # nothing to resume: a fresh run
    (tmp_path / "config.yaml").write_text("a: 2\n")
    check_resume(tmp_path, {"a": 1})  # a config but no checkpoint: nothing is resumed
    (tmp_path / "config.yaml").unlink()
    _run_dir(tmp_path, None, name="online")
    check_resume(tmp_path, {"a": 1})  # another checkpoint name than the caller's
    with pytest.raises(ConfigError, match="no config.yaml"):
        check_resume(tmp_path, {"a": 1}, names=("offline", "online"))


def test_check_resume_reads_absent_keys_as_named(tmp_path):
    """`absent_as`: a key the saved config lacks compares as the named value; a key it has, or a
    key under a section it lacks, is left as saved."""
    run = _run_dir(tmp_path, {"net": {"width": 8}, "steps": 10})
    now = {"net": {"width": 8, "members": 1}, "steps": 10}
    with pytest.raises(ConfigError, match="net.members=absent"):
        check_resume(run, now)
    check_resume(run, now, absent_as={"net.members": 1, "no.such.key": 5})
    with pytest.raises(ConfigError, match=r"net.members=2 \(now 1\)"):
        check_resume(run, now, absent_as={"net.members": 2})
    with pytest.raises(ConfigError, match="extra=absent"):  # no "extra" section: not filled
        check_resume(run, {**now, "extra": {"k": 0}}, absent_as={"net.members": 1, "extra.k": 0})
    (tmp_path / "b").mkdir()
    run2 = _run_dir(tmp_path / "b", {"net": {"width": 8, "members": 3}, "steps": 10})
    with pytest.raises(ConfigError, match=r"net.members=3 \(now 1\)"):  # a saved value wins
        check_resume(run2, now, absent_as={"net.members": 1})


def test_check_resume_takes_a_saved_dict_and_a_dataclass(tmp_path):
    @dataclasses.dataclass
    class Cfg:
        lr: float = 0.1
        rounds: int = 3

    check_resume(tmp_path, Cfg(rounds=5), allowed=("rounds",), saved={"lr": 0.1, "rounds": 3},
                 resuming=True)
    with pytest.raises(ConfigError, match="lr=0.2 \\(now 0.1\\)"):
        check_resume(tmp_path, Cfg(), saved={"lr": 0.2, "rounds": 3}, resuming=True)



@dataclasses.dataclass
class _Opt:
    lr: float = 3e-4
    betas: tuple[float, ...] = (0.9, 0.999)


@dataclasses.dataclass
class _Cfg:
    opt: _Opt = dataclasses.field(default_factory=_Opt)
    lens: list[int] = dataclasses.field(default_factory=lambda: [256, 512])
    mix: dict[str, float] = dataclasses.field(default_factory=lambda: {"a": 0.1})
    path: str | None = None
    tol: float = 0.1 + 0.2  # 0.30000000000000004: written with every digit


def test_check_resume_accepts_the_config_it_saved(tmp_path):
    # a legit resume: the same dataclass, through save_config's YAML (tuples come back as
    # lists, floats as written, None and nested sections as they were)
    from shared.config import load_config, save_config

    run = _run_dir(tmp_path, None)
    cfg = _Cfg(opt=_Opt(lr=1 / 3))
    save_config(cfg, run / "config.yaml")
    check_resume(run, cfg)
    check_resume(run, load_config(run / "config.yaml", _Cfg))
    with pytest.raises(ConfigError, match="opt.betas"):
        check_resume(run, _Cfg(opt=_Opt(lr=1 / 3, betas=(0.9, 0.99))))
