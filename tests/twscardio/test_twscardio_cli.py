"""Recipes: train writes its run dir; bad config gets one clear line and exit code 2."""

import json

import pytest

from shared.cli import run
from shared.io import Checkpointer
from twscardio import bench, train

TINY = ["--set", "steps=3", "--set", "n_subjects=1", "--set", "recordings_per_subject=1",
        "--set", "sim.duration_s=10.0", "--set", "window_s=5.0", "--set", "net.channels=8"]


def test_train_writes_run_dir(tmp_path):
    out = tmp_path / "run"
    assert train.main(["--config", "configs/twscardio/default.yaml", "--out", str(out), *TINY]) == 0
    for f in ("config.yaml", "metrics.json", "model.safetensors", "ckpt.pt"):
        assert (out / f).is_file(), f
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_params"] > 0 and "val" in m


def test_train_gives_the_loss_the_prior_a_residual_network_corrects(tmp_path, monkeypatch):
    """The correction prior's `prior` is the channel the residual network adds back: at the
    first step (the correction's last layer is zero) the prediction equals it exactly."""
    import torch

    from twscardio.models import RegionFocusedLoss

    seen = []
    forward = RegionFocusedLoss.forward

    def spy(self, pred, target, weights=None, prior=None):
        seen.append((pred.detach().clone(), None if prior is None else prior.clone()))
        return forward(self, pred, target, weights, prior)

    monkeypatch.setattr(RegionFocusedLoss, "forward", spy)
    out = tmp_path / "run"
    args = ["--out", str(out), *TINY, "--set", "net.residual_prior=true",
            "--set", "loss.correction_l1=1.0"]
    assert train.main(args) == 0
    pred, prior = seen[0]
    assert prior is not None and torch.equal(pred, prior)
    assert not torch.equal(*seen[2])  # later steps correct it
    assert json.loads((out / "metrics.json").read_text())["val"]["loss"] > 0


def test_a_run_dir_from_before_the_new_options_resumes(tmp_path, caplog):
    """config.yaml written before net.members / loss.correction_l1 existed lacks them; a resume
    reads them as the values such a run trained with (1, 0), not as a changed config."""
    import logging

    import yaml

    out = tmp_path / "run"
    assert train.main(["--out", str(out), *TINY]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    del saved["net"]["members"], saved["loss"]["correction_l1"]
    (out / "config.yaml").write_text(yaml.safe_dump(saved))
    state = Checkpointer(out).load()
    state["step"], state["hist"]["loss"] = 2, state["hist"]["loss"][:2]
    import torch
    torch.save(state, out / "ckpt.pt")
    caplog.set_level(logging.INFO)
    assert train.main(["--out", str(out), *TINY]) == 0
    assert "resumed from step 2" in caplog.text
    with pytest.raises(SystemExit) as e:  # another ensemble size is still a changed config
        run(train.main, ["--out", str(out), *TINY, "--set", "net.members=2"])
    assert e.value.code == 2


@pytest.mark.parametrize("main,args,msg", [
    ("train", ["--set", "loss.kindd=l1"], "unknown key 'loss.kindd'"),
    ("train", ["--set", "sim.channel.loss=1.5"], "channel.loss=1.5"),
    ("train", ["--set", "loss.kind=huber"], "not one of"),
    ("train", ["--set", "loss.correction_l1=0.5"], "net.residual_prior"),
    ("train", ["--config", "configs/twscardio/missing.yaml"], "config file not found"),
    ("bench", ["--workers", "-1"], "--workers must be >= 0"),
    ("bench", ["--set", "workers=-1"], "workers"),
])
def test_bad_config_is_one_line_exit_2(main, args, msg, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        run({"train": train, "bench": bench}[main].main, ["--out", str(tmp_path / "x"), *args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


SMOKE = ["--set", "train.steps=5", "--set", "train.n_subjects=1", "--set", "duration_s=20.0",
         "--set", "loss_sweep=[0.1]", "--set", "burst_sweep=[3.0]", "--set", "fs_sweep=[50.0]",
         "--set", "motion_sweep=[0.0, 3.0]", "--set", "stream_seconds=10.0"]


@pytest.mark.slow
def test_bench_smoke(tmp_path):
    args = ["--out", str(tmp_path), *SMOKE, "--set", "n_test_subjects=1"]
    assert bench.main(args) == 0
    b = json.loads((tmp_path / "bench.json").read_text())
    # in- and out-of-family, SQI, octave, streaming, accepted-window HR, (d) not the default
    assert len(b["checks"]) == 33 and b["headline"]
    assert all({"name", "measured", "target", "holds"} <= set(c) for c in b["checks"])
    for f in ("bench.png", "sweeps.png", "overlay.png"):
        assert (tmp_path / f).is_file()


@pytest.mark.slow
def test_bench_figures_do_not_depend_on_workers(tmp_path):
    """The test subjects on two spawned processes give the figures of one process exactly:
    every row, every streaming and heartbeat-free figure and every check but the timing."""
    out = {}
    for w in (1, 2):
        how = ["--set", "workers=1"] if w == 1 else ["--workers", "2"]  # both spellings
        args = ["--out", str(tmp_path / f"w{w}"), *SMOKE, "--set", "n_test_subjects=2", *how,
                "--set", "bootstrap_draws=5"]
        assert bench.main(args) == 0
        out[w] = json.loads((tmp_path / f"w{w}" / "bench.json").read_text())
    one, two = out[1], out[2]
    assert json.dumps(one["rows"]) == json.dumps(two["rows"])  # NaN-safe, bit for bit
    for key in ("sqi_rejection_no_beat", "stream_hr_error"):
        assert json.dumps(one[key]) == json.dumps(two[key])
    timing = "real time"
    for a, b in zip(one["checks"], two["checks"]):
        if not a["name"].startswith(timing):
            assert json.dumps(a["measured"]) == json.dumps(b["measured"]), a["name"]


def test_export_writes_earcardio_layout(tmp_path):
    from twscardio import export
    from twscardio.data import load_earcardio

    out = tmp_path / "sim"
    args = ["--subjects", "1", "--out", str(out), "--duration", "10"]
    assert export.main(args) == 0
    wins = load_earcardio(out)
    assert len(wins) == 2 and (out / "subject0" / "truth.npz").is_file()


def test_eval_missing_earcardio_dir_exit_2(capsys, tmp_path):
    from twscardio import eval as tws_eval

    with pytest.raises(SystemExit) as e:
        run(tws_eval.main, ["--earcardio", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "EarCardio root not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_train_resumes_from_checkpoint(tmp_path, caplog, capsys):
    import logging

    import torch

    out = tmp_path / "run"
    assert train.main(["--out", str(out), *TINY]) == 0
    assert Checkpointer(out).load()["step"] == 3
    # more steps would stretch the cosine schedule of the resumed steps: refused, dir unchanged
    saved = (out / "config.yaml").read_text()
    more = [a if a != "steps=3" else "steps=5" for a in TINY]
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run(train.main, ["--out", str(out), *more])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "steps=3 (now 5)" in err, err
    assert (out / "config.yaml").read_text() == saved
    # an interrupted run resumes, also with another checkpoint frequency
    state = Checkpointer(out).load()
    state["step"], state["hist"]["loss"] = 2, state["hist"]["loss"][:2]
    torch.save(state, out / "ckpt.pt")
    caplog.set_level(logging.INFO)
    assert train.main(["--out", str(out), *TINY, "--set", "ckpt_every=1"]) == 0
    assert "resumed from step 2" in caplog.text
    state = Checkpointer(out).load()
    assert state["step"] == 3 and len(state["hist"]["loss"]) == 3


def test_auto_workers_follows_the_usable_cores_up_to_the_cap(monkeypatch):
    monkeypatch.setattr(bench, "cpu_count", lambda: 64)
    assert bench.auto_workers() == bench.MAX_AUTO_WORKERS
    monkeypatch.setattr(bench, "cpu_count", lambda: 1)
    assert bench.auto_workers() == 1
    assert bench.SubjectMap(0, {}).workers == 1 and bench.SubjectMap(5, {}).workers == 5
    assert bench.SubjectMap(5, {}, jobs=3).workers == 3  # no idle workers

