"""Recipes run from any directory, validate before they write, and size torch's thread pool to
the cores actually available. (tests/conftest.py runs every test from an empty directory.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import shared.runtime as runtime
from shared.cli import run
from shared.config import resolve_config
from shared.errors import ConfigError
from tests.inprocess import cli

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["lemo", "ripple", "twscardio", "mobifuse", "offline_il_select", "robwe", "ollie",
            "edgeoar", "bestshot", "crosslm"]
RECIPES = [f"{p}.{r}" for p in PACKAGES for r in ("train", "eval", "bench")
           if (ROOT / p / f"{r}.py").is_file()]


def test_every_shipped_config_resolves_outside_the_repo():
    assert Path.cwd() != ROOT and not Path("configs").exists()
    shipped = sorted(ROOT.glob("configs/*/*.yaml"))
    assert len(shipped) >= 20
    for f in shipped:
        rel = f.relative_to(ROOT)
        assert resolve_config(rel).read_bytes() == f.read_bytes(), rel
    with pytest.raises(ConfigError, match="config file not found: configs/lemo/nope.yaml"):
        resolve_config("configs/lemo/nope.yaml")
    with pytest.raises(ConfigError, match="config file not found"):
        resolve_config("configs/no_such_package/x.yaml")


def test_a_local_file_wins_over_the_shipped_default(tmp_path):
    local = tmp_path / "configs" / "ripple" / "tiny.yaml"
    local.parent.mkdir(parents=True)
    local.write_text("seed: 7\n")
    assert resolve_config("configs/ripple/tiny.yaml").read_text() == "seed: 7\n"


@pytest.mark.parametrize("module", RECIPES)
def test_help_from_another_directory(module):
    code, _ = cli(module, "--help")
    assert code == 0


@pytest.mark.parametrize("module", RECIPES)
def test_every_recipe_refuses_an_unknown_flag(module):
    code, err = cli(module, "--no-such-flag")
    assert code == 2 and "unrecognized arguments: --no-such-flag" in err


def test_ripple_and_mobifuse_eval_find_their_default_configs(tmp_path):
    # the defaults are relative paths (configs/<package>/...): before, these failed outside
    # the repo root with "config file not found"
    code, err = cli("mobifuse.eval", "--run", str(tmp_path))
    assert code == 2 and "model file not found" in err
    code, err = cli("ripple.eval", "--set", "nope=1")
    assert code == 2 and "unknown key 'nope'" in err and "not found" not in err


def test_ripple_tiny_train_then_eval_from_another_directory(tmp_path):
    code, err = cli("ripple.train", "--config", "configs/ripple/tiny.yaml", "--out", "tr")
    assert code == 0, err
    code, err = cli("ripple.eval", "--config", "configs/ripple/tiny.yaml", "--run", "tr",
                    "--out", "ev")
    assert code == 0, err
    assert (tmp_path / "tr").is_dir() and any((tmp_path / "ev").iterdir())


# --- validate, then write: a failing check leaves no new files --------------------------------

def test_lemo_unsupported_model_leaves_no_run_dir(tmp_path):
    model = tmp_path / "gpt2"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    code, err = cli("lemo.train", "--set", f"model.path={model}", "--out", "run")
    assert code == 2 and "gpt2" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_offline_il_select_data_that_does_not_fit_the_env_leaves_no_run_dir(tmp_path):
    from shared.il.datasets import write_d4rl_hdf5

    rng = np.random.default_rng(0)
    n = 40
    d = {"observations": rng.normal(size=(n, 5)), "actions": rng.uniform(-1, 1, (n, 3)),
         "rewards": rng.normal(size=n), "terminals": np.zeros(n, bool),
         "timeouts": np.r_[np.zeros(n - 1, bool), True], "next_observations": rng.normal(
             size=(n, 5))}
    write_d4rl_hdf5(tmp_path / "e.hdf5", d)
    write_d4rl_hdf5(tmp_path / "s.hdf5", d)
    code, err = cli("offline_il_select.train", "--config", "configs/offline_il_select/tiny.yaml",
                    "--set", f"data.expert_file={tmp_path / 'e.hdf5'}",
                    "--set", f"data.imperfect_file={tmp_path / 's.hdf5'}", "--out", "run")
    assert code == 2 and len(err.splitlines()) == 1
    assert "observations have shape (5,)" in err and "expects (11,)" in err
    assert not (tmp_path / "run").exists()


def test_mobifuse_eval_of_a_missing_capture_leaves_no_run_dir(tmp_path):
    from mobifuse.config import TrainConfig
    from mobifuse.models import TwoStageFusionNet, save_model

    save_model(TwoStageFusionNet(TrainConfig().net), tmp_path / "model.safetensors")
    code, err = cli("mobifuse.eval", "--run", str(tmp_path),
                    "--capture", str(tmp_path / "no_capture"), "--out", "ev")
    assert code == 2 and "no_capture" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "ev").exists()


def test_robwe_missing_data_file_leaves_no_run_dir(tmp_path):
    code, err = cli("robwe.train", "--config", "configs/robwe/mnist-idx.yaml",
                    "--set", f"data.path={tmp_path / 'nowhere'}", "--out", "run")
    assert code == 2 and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


# --- threads -----------------------------------------------------------------------------------

@pytest.fixture
def fresh_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(runtime, "_THREADS", None)
    yield
    torch.set_num_threads(before)
    runtime._THREADS = None


def test_threads_follow_the_affinity_mask(fresh_threads, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(runtime, "_cgroup_cpus", lambda: None)
    assert runtime.configure_threads({}) == 1 and torch.get_num_threads() == 1


def test_threads_respect_omp_num_threads_and_are_set_once(fresh_threads, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setattr(runtime, "_cgroup_cpus", lambda: None)
    assert runtime.configure_threads({"OMP_NUM_THREADS": "3"}) == 3
    assert torch.get_num_threads() == 3
    assert runtime.configure_threads({"OMP_NUM_THREADS": "5"}) == 3  # once per process


def test_threads_capped_by_a_cgroup_quota(fresh_threads, monkeypatch, tmp_path):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    quota = tmp_path / "cpu.max"
    quota.write_text("200000 100000\n")
    assert runtime._cgroup_cpus(str(quota)) == 2.0
    quota.write_text("max 100000\n")
    assert runtime._cgroup_cpus(str(quota)) is None
    monkeypatch.setattr(runtime, "_cgroup_cpus", lambda: 2.0)
    assert runtime.cpu_count() == 2
    assert runtime.configure_threads({"OMP_NUM_THREADS": "bogus"}) == 2


def test_every_recipe_sets_threads_through_cli_run(fresh_threads, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    seen = []
    with pytest.raises(SystemExit):
        run(lambda argv: seen.append(torch.get_num_threads()) or 0, [])
    assert seen == [1]


# --- --quick is an overlay under --set ---------------------------------------------------------

def test_quick_overlay_never_overrides_an_explicit_set():
    from dataclasses import dataclass

    from shared.cli import parse_args

    @dataclass
    class Demo:
        steps: int = 100
        width: int = 64

    quick = {"steps": 5, "width": 8}
    _, cfg = parse_args(["--quick", "--set", "steps=7"], Demo, "demo", "", quick=quick)
    assert (cfg.steps, cfg.width) == (7, 8)
    _, cfg = parse_args(["--set", "steps=7"], Demo, "demo", "", quick=quick)
    assert (cfg.steps, cfg.width) == (7, 64)
    from lemo.bench import QUICK, BenchConfig

    _, bc = parse_args(["--quick", "--set", "accuracy=true", "--set", "ft_steps=3"],
                       BenchConfig, "lemo.bench", "", quick=QUICK)
    assert bc.accuracy is True and bc.ft_steps == 3 and bc.mem_seq_lens == [4096]


@pytest.mark.slow
def test_an_installed_wheel_ships_configs_weights_and_runs_elsewhere(tmp_path):
    """Build the wheel, install it into a bare folder and run a recipe from outside the repo
    with only that folder (plus the venv's dependencies) on the path."""
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", str(ROOT), "-w", str(tmp_path / "whl")],
                   check=True, cwd=tmp_path)
    wheel = next((tmp_path / "whl").glob("paperbench-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ROOT.glob("configs/*/*.yaml"):
        assert f"{f.parent.name}/configs/{f.name}" in names, f
    assert any(n.startswith("lemo/weights/") and n.endswith(".pt") for n in names)
    assert "shared/il/policies/hopper_expert.pt" in names
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True)
    env = {**os.environ, "PYTHONPATH": str(site), "PAPERBENCH_CACHE": str(tmp_path / "c")}
    r = subprocess.run([sys.executable, "-m", "ripple.train", "--config",
                        "configs/ripple/tiny.yaml", "--out", "tr"],
                       cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([sys.executable, "-c", "import ripple; print(ripple.__file__)"],
                       cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.stdout.startswith(str(site))


def test_cache_lives_in_the_checkout_or_the_user_cache_never_site_packages(monkeypatch,
                                                                          tmp_path):
    import shared.cache as cache

    monkeypatch.delenv("PAPERBENCH_CACHE")
    assert cache.cache_dir() == ROOT / ".cache"
    site = tmp_path / "site-packages" / "shared"
    site.mkdir(parents=True)
    monkeypatch.setattr(cache, "__file__", str(site / "cache.py"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "paperbench"
    assert not (tmp_path / "site-packages" / ".cache").exists()


def test_robwe_bench_with_a_corrupt_data_folder_leaves_no_run_dir(tmp_path):
    data = tmp_path / "mnist"
    data.mkdir()
    (data / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03junk")
    code, err = cli("robwe.bench", "--set", "data.dataset=mnist_idx",
                    "--set", f"data.path={data}", "--out", "b")
    assert code == 2 and len(err.splitlines()) == 1
    assert not (tmp_path / "b").exists()
