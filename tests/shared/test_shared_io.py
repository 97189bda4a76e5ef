"""Atomic writes, JSON reading, run directories and resumable checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from shared.errors import DataError
from shared.io import (
    Checkpointer,
    atomic_path,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
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
