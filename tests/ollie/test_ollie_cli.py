"""The train recipe as a tool: every arm runs on the tiny setting, runs resume (offline and
mid-online), and bad configs or data fail with one line and exit code 2 before any file exists."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ollie.config import TrainConfig, load_train_config
from ollie.data import build_data
from ollie.train import fit, main

TINY = "configs/ollie/tiny.yaml"
REPO = Path(__file__).resolve().parents[2]  # the checkout under test, not an installed copy
ARMS = {  # the bench's arms, as config overrides
    "ollie": [],
    "ollie_no_align": ["online.discriminator=random"],
    "naive_gail": ["pretrain=dwbc", "online.discriminator=random"],
    "gail": ["pretrain=none", "online.discriminator=random"],
    "bc_expert": ["pretrain=bc_expert", "online.env_steps=0", "online.discriminator=random"],
    "bc_all": ["pretrain=bc_all", "online.env_steps=0", "online.discriminator=random"],
    # options: absorbing terminations offline; log(1 - D) reward without absorbing online
    "ollie_absorbing": ["offline.absorbing=true"],
    "ollie_negative": ["online.reward=negative", "online.absorbing=false"],
}


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "ollie.train", *args], capture_output=True,
                          text=True, env=env)


@pytest.mark.parametrize("y_update", ["ascent", "dual"])
def test_wide_clip_offline_settings_run(y_update):
    """The settings of halfcheetah.yaml and hopper.yaml (BCE d with a wide clip, ν's constant mode
    with its own lr, resampled extraction batches; y by ascent or the dual) on the tiny setting:
    finite, and b moved."""
    cfg = load_train_config(TINY, ["online.env_steps=0", "offline.disc_loss=bce",
                                   "offline.disc_clip=[0.001, 0.999]", "offline.log_y_max=10",
                                   "offline.nu_offset_lr=1e-3", "offline.extraction=resample",
                                   f"offline.y_update={y_update}"])
    res = fit(cfg, build_data(cfg.data))
    assert np.isfinite(res["offline_score"])
    assert res["method"].nu.offset.item() != 0.0
    assert torch.isfinite(res["method"].weights()).all()


@pytest.mark.parametrize("arm", list(ARMS))
def test_every_arm_runs(arm):
    cfg = load_train_config(TINY, ARMS[arm])
    res = fit(cfg, build_data(cfg.data))
    assert np.isfinite(res["offline_score"])
    if cfg.online.env_steps:
        steps = [p["env_steps"] for p in res["online_curve"]]
        assert steps == [0, 128, 256]
        assert all(np.isfinite(p["score"]) for p in res["online_curve"])
        # the policy moved online
        moved = any(not torch.equal(v, res["policy"].state_dict()[k])
                    for k, v in res["policy0"].items())
        assert moved


def test_run_then_resume_mid_online(tmp_path, caplog):
    out = tmp_path / "run"
    assert main(["--config", TINY, "--out", str(out)]) == 0
    res = json.loads((out / "result.json").read_text())
    assert [p["env_steps"] for p in res["online_curve"]] == [0, 128, 256]
    for f in ("offline.pt", "online.pt", "policy0.safetensors", "policy.safetensors",
              "offline_nets.safetensors", "model.json", "config.yaml"):
        assert (out / f).exists(), f
    caplog.set_level("INFO")
    assert main(["--config", TINY, "--out", str(out), "--set", "online.env_steps=384"]) == 0
    assert "resumed online phase" in caplog.text and "at env step 256" in caplog.text
    res2 = json.loads((out / "result.json").read_text())
    assert [p["env_steps"] for p in res2["online_curve"]] == [0, 128, 256, 384]
    assert res2["online_curve"][:3] == res["online_curve"]
    assert res2["offline_score"] == res["offline_score"]


def test_offline_resume_continues_the_same_run(tmp_path):
    """Stopping after part of the offline phase and resuming gives the uninterrupted result."""
    base = ["--config", TINY, "--set", "online.env_steps=0"]
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(base + ["--out", str(full)]) == 0
    # 20 d steps + 30 saddle steps + 20 of the 40 policy steps, then the rest
    assert main(base + ["--out", str(part), "--set", "offline.policy_steps=20"]) == 0
    assert main(base + ["--out", str(part)]) == 0
    a = json.loads((full / "result.json").read_text())
    b = json.loads((part / "result.json").read_text())
    assert a["offline_score"] == pytest.approx(b["offline_score"])


@pytest.mark.parametrize("args, needle", [
    (["--set", "offline.clipp=0.2"], "clipp"),
    (["--set", "online.reward=sqrt"], "online.reward"),
    (["--set", "pretrain=dwbc"], "needs pretrain=ollie"),
    (["--set", "offline.clip=[0.9, 0.1]"], "offline.clip"),
    (["--set", "offline.y_update=dual", "--set", "offline.absorbing=true"], "offline.absorbing"),
    (["--set", "offline.extraction_y_cut=2"], "offline.extraction_y_cut"),
    (["--set", "data.env_id=Nope-v9"], "Nope-v9"),
    (["--set", "data.expert_file=/nonexistent.hdf5"], "nonexistent"),
    (["--config", "configs/ollie/missing.yaml"], "missing.yaml"),
])
def test_bad_input_is_one_line_exit_2_and_no_files(tmp_path, args, needle):
    out = tmp_path / "x"
    argv = args if args[0] == "--config" else ["--config", TINY, *args]
    r = _cli(*argv, "--out", str(out))
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr
    assert not out.exists()


def test_train_config_is_typed():
    cfg = load_train_config(TINY, ["online.gamma=0.95"])
    assert isinstance(cfg, TrainConfig) and cfg.online.gamma == 0.95
    q = load_train_config(TINY, ["online.epochs=3"], quick=True)
    assert q.online.epochs == 3 and q.offline.dice_steps == 5000  # overlay, then --set


def test_out_of_another_arm_is_refused_unchanged(tmp_path):
    out = tmp_path / "run"
    assert main(["--config", TINY, "--out", str(out), "--set", "online.env_steps=0"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    r = _cli("--config", TINY, "--out", str(out), "--set", "pretrain=bc_expert",
             "--set", "online.discriminator=random")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "pretrain='ollie' (now 'bc_expert')" in r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # a changed training key of the same arm, too; the online budget may grow
    r = _cli("--config", TINY, "--out", str(out), "--set", "online.env_steps=0",
             "--set", "offline.policy_lr=0.001")
    assert r.returncode == 2 and "offline.policy_lr=" in r.stderr, r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    from ollie.train import resume_free
    from shared.config import to_dict
    from shared.io import check_resume

    longer = load_train_config(TINY, ["online.env_steps=512"])
    check_resume(out, to_dict(longer), resume_free(out), names=("offline", "online"))


def test_finished_run_without_checkpoints_is_not_overwritten_by_another_arm(tmp_path):
    out = tmp_path / "run"  # pretrain=none with no online budget writes no checkpoint
    assert main(["--config", TINY, "--out", str(out), "--set", "pretrain=none",
                 "--set", "online.discriminator=random", "--set", "online.env_steps=0"]) == 0
    assert not list(out.glob("*.pt")) and (out / "result.json").exists()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    r = _cli("--config", TINY, "--out", str(out), "--set", "pretrain=bc_expert",
             "--set", "online.discriminator=random", "--set", "online.env_steps=0")
    assert r.returncode == 2 and "pretrain='none' (now 'bc_expert')" in r.stderr, r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
