"""The train / eval / bench commands: help, bad input (one line, exit 2), a tiny run, resume."""

import contextlib
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

from robwe import bench, train
from robwe import eval as rw_eval
from shared.cli import run
from shared.io import read_json

TINY = Path(__file__).resolve().parents[2] / "configs" / "robwe" / "tiny.yaml"


def _run(main, *args):
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run(main, [str(a) for a in args])
        except SystemExit as e:
            code = e.code or 0
    return code, out.getvalue(), err.getvalue()


def _problems(err: str) -> list[str]:
    """stderr lines other than ordinary INFO/DEBUG log records (e.g. 'run dir ...')."""
    return [line for line in err.strip().splitlines()
            if not re.match(r"^\d\d:\d\d:\d\d (INFO|DEBUG) ", line)]


def _cfg(tmp_path):
    path = tmp_path / "tiny.yaml"
    shutil.copy(TINY, path)
    return path


def test_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "robwe.train", "--help"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and "python -m robwe.train" in r.stdout


def test_help_explains():
    code, out, _ = _run(train.main, "--help")
    assert code == 0 and "tampered watermarks" in out and "--engine" in out
    code, out, _ = _run(bench.main, "--help")
    assert code == 0 and "shared-fedipr" in out
    code, out, _ = _run(rw_eval.main, "--help")
    assert code == 0 and "uniqueness" in out


def test_bad_input_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("fl:\n  roundz: 3\n")
    code, _, err = _run(train.main, "--config", bad, "--out", tmp_path / "r1")
    assert code == 2 and "fl.roundz" in err and "bad.yaml" in err
    assert len(_problems(err)) == 1
    cfg = _cfg(tmp_path)
    code, _, err = _run(train.main, "--config", cfg, "--set", "watermark.slice_bits=900",
                        "--out", tmp_path / "r2")
    assert code == 2 and "too short" in err and len(_problems(err)) == 1
    code, _, err = _run(train.main, "--config", cfg, "--set", "data.dataset=imagenet")
    assert code == 2 and "imagenet" in err
    code, _, err = _run(train.main, "--config", cfg, "--set", "data.dataset=cifar10",
                        "--set", f"data.path={tmp_path / 'none'}", "--out", tmp_path / "r3")
    assert code == 2 and "CIFAR-10 directory not found" in err
    assert not (tmp_path / "r3" / "metrics.json").exists()
    code, _, err = _run(rw_eval.main, "--run", tmp_path / "missing")
    assert code == 2 and "not found" in err


def test_train_resume_and_eval(tmp_path, caplog):
    cfg = _cfg(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    assert _run(train.main, "--config", cfg, "--out", a)[0] == 0
    m = read_json(a / "metrics.json")
    assert m["detection_rate"] == 1.0 and m["false_flag_rate"] == 0.0
    assert m["head_bits_honest_min"] >= 0.99 and m["slice_bits_honest_min"] >= 0.99
    assert len(read_json(a / "history.json")) == 4

    # Resume: roll b back to its round-2 checkpoint, rerun: same result as the straight run.
    assert _run(train.main, "--config", cfg, "--out", b)[0] == 0
    shutil.copy(b / "ckpt.prev.pt", b / "ckpt.pt")
    caplog.set_level("INFO", logger="robwe.train")
    assert _run(train.main, "--config", cfg, "--out", b)[0] == 0
    assert "resuming from round 2" in caplog.text
    assert read_json(b / "metrics.json") == m

    saved = (b / "config.yaml").read_text()
    code, _, err = _run(train.main, "--config", cfg, "--out", b, "--seed", "4")
    assert code == 2 and "seed=3 (now 4)" in err and len(err.splitlines()) == 1, err
    assert (b / "config.yaml").read_text() == saved
    # more rounds extend the run
    caplog.clear()
    assert _run(train.main, "--config", cfg, "--out", b, "--set", "fl.rounds=5")[0] == 0
    assert "resuming from round 4" in caplog.text and len(read_json(b / "history.json")) == 5

    assert _run(rw_eval.main, "--run", a)[0] == 0
    ev = read_json(a / "eval.json")
    assert ev["uniqueness"]["diagonal_min"] >= 0.99 and (a / "uniqueness.png").is_file()

    for name in ("ckpt.pt", "ckpt.prev.pt"):
        (b / name).write_bytes(b"garbage")
    code, _, err = _run(train.main, "--config", cfg, "--out", b)
    assert code == 2 and "no readable checkpoint" in err


def test_train_on_flower_inprocess(tmp_path):
    cfg = _cfg(tmp_path)
    code, _, _ = _run(train.main, "--config", cfg, "--engine", "flower-inprocess",
                      "--out", tmp_path / "f")
    assert code == 0
    ev = read_json(tmp_path / "f" / "flower_evaluate.json")
    assert len(ev) == 5 and min(v["head_bits"] for v in ev.values()) >= 0.99
