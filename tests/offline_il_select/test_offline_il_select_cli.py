"""The train recipe as a tool: a tiny run, resume, and clear one-line errors on bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from offline_il_select.train import main
from shared.errors import ConfigError, DataError
from shared.il.datasets import write_d4rl_hdf5

TINY = "configs/offline_il_select/tiny.yaml"


REPO = Path(__file__).resolve().parents[2]


def _cli(*args, cwd=None):
    # tests run in a temporary directory: this checkout's code, not an installed copy
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "offline_il_select.train", *args],
                          capture_output=True, text=True, cwd=cwd, env=env)


def test_tiny_run_then_resume(tmp_path, caplog, capsys):
    out = tmp_path / "run"
    assert main(["--config", TINY, "--out", str(out)]) == 0
    res = json.loads((out / "result.json").read_text())
    assert res["method"] == "ilid" and np.isfinite(res["score"])
    assert (out / "ckpt.pt").exists() and (out / "curve.csv").exists()
    # Extend the budget: the second run resumes from step 40 instead of starting over.
    caplog.set_level("INFO")
    assert main(["--config", TINY, "--out", str(out), "--set", "policy.steps=60"]) == 0
    assert "at step 40" in caplog.text
    curve = (out / "curve.csv").read_text().strip().splitlines()
    assert [line.split(",")[0] for line in curve[1:]] == ["20", "40", "60"]
    # a changed training key is refused before any work, the run dir left as it was
    from shared.cli import run

    saved = (out / "config.yaml").read_text()
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run(main, ["--config", TINY, "--out", str(out), "--set", "policy.steps=60",
                   "--set", "policy.lr=0.01"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "policy.lr=" in err, err
    assert (out / "config.yaml").read_text() == saved


def test_resume_on_another_device_is_refused(tmp_path):
    """The batch generator's state belongs to its device: a CUDA run does not resume on the
    CPU (nor the reverse); the error names the device to use and the run dir is left as it was."""
    import torch

    out = tmp_path / "run"
    assert main(["--config", TINY, "--out", str(out), "--set", "policy.steps=20"]) == 0
    st = torch.load(out / "ckpt.pt", weights_only=False)
    assert st["device"] == "cpu"
    st["device"] = "cuda"  # as if trained on a GPU
    torch.save(st, out / "ckpt.pt")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    r = _cli("--config", TINY, "--out", str(out), "--set", "policy.steps=40")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "trained on cuda" in r.stderr and "device=cuda" in r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # config.yaml too


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = _cli("--config", TINY, "--out", str(tmp_path / "x"), "--device", "cuda")
    assert r.returncode == 2 and "CUDA is not available" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["ilid", "bc_expert", "dwbc", "iswbc"])
def test_methods_train_and_resume_on_cuda(tmp_path, method):
    """Every method trains on the GPU (data, networks and batches there) and resumes there."""
    import torch

    from offline_il_select.config import TrainConfig
    from offline_il_select.data import build_data
    from offline_il_select.train import fit
    from shared.config import load_config

    cfg = load_config(TINY, TrainConfig, [f"method={method}", "device=cuda", "policy.steps=20"])
    data = build_data(cfg.data)
    res = fit(cfg, data, tmp_path / "run")
    assert np.isfinite(res["score"]) and res["train_s"] > 0
    assert next(res["policy"].parameters()).is_cuda
    if method == "ilid":
        a = res["artifacts"]
        assert a["s_u"].is_cuda and a["alpha"].is_cuda and a["beta"].is_cuda
        assert a["selected"].device.type == "cpu"  # the selection mask is numpy's
    st = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=False)
    assert st["device"] == "cuda"
    res2 = fit(load_config(TINY, TrainConfig, [f"method={method}", "device=cuda",
                                               "policy.steps=40"]), data, tmp_path / "run")
    assert [c["step"] for c in res2["curve"]] == [20, 40]


@pytest.mark.parametrize("method", ["bc_expert", "bc_all", "dwbc", "iswbc"])
def test_baselines_run(tmp_path, method):
    out = tmp_path / method
    assert main(["--config", TINY, "--out", str(out), "--set", f"method={method}",
                 "--set", "policy.steps=20"]) == 0
    assert json.loads((out / "result.json").read_text())["method"] == method


def test_unknown_key_and_bad_values_fail_cleanly(tmp_path):
    r = _cli("--config", TINY, "--set", "ilid.sigmaa=0.3", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "sigmaa" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = _cli("--config", TINY, "--set", "ilid.sigma=0.95", "--out", str(tmp_path / "y"))
    assert r.returncode == 2 and "ilid.sigma" in r.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def _tiny_dataset(n=30, s=11, a=3):
    rng = np.random.default_rng(0)
    return {"observations": rng.normal(size=(n, s)), "actions": rng.uniform(-1, 1, (n, a)),
            "rewards": rng.normal(size=n), "terminals": np.zeros(n, bool),
            "timeouts": np.r_[np.zeros(n - 1, bool), True],
            "next_observations": rng.normal(size=(n, s))}


def test_user_dataset_files_and_their_errors(tmp_path):
    good = tmp_path / "good.hdf5"
    write_d4rl_hdf5(good, _tiny_dataset())
    assert main(["--config", TINY, "--out", str(tmp_path / "ok"), "--set",
                 f"data.imperfect_file={good}", "--set", "data.n_s=1", "--set",
                 "policy.steps=20"]) == 0
    bad = tmp_path / "nan.hdf5"
    with h5py.File(bad, "w") as f:
        for k, v in _tiny_dataset().items():
            if k == "rewards":
                v = v.copy()
                v[3] = np.nan
            f.create_dataset(k, data=v)
    # In-process (the exit-code path is covered above): DataError is the CLI's exit code 2.
    with pytest.raises(DataError, match="'rewards' has a non-finite value .* row 3"):
        main(["--config", TINY, "--set", f"data.imperfect_file={bad}", "--out",
              str(tmp_path / "nan")])
    assert not (tmp_path / "nan").exists()  # nothing half-written
    wrong = tmp_path / "wrong.hdf5"
    write_d4rl_hdf5(wrong, _tiny_dataset(s=5))
    with pytest.raises(DataError, match=r"wrong.hdf5: observations have shape \(5,\) per step "
                                        r"but Hopper-v5 expects \(11,\)"):
        main(["--config", TINY, "--set", f"data.imperfect_file={wrong}"])
    # a missing file is a config error, found before any rollout
    with pytest.raises(ConfigError, match="data.expert_file: file not found"):
        main(["--config", TINY, "--set", f"data.expert_file={tmp_path / 'missing.hdf5'}"])
