"""The train / eval / bench commands: help text, bad config, a tiny end-to-end run, resume."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from mobifuse import bench, train
from mobifuse import eval as mf_eval
from mobifuse.config import SimConfig
from mobifuse.data import read_pfm, sim_calibration, write_pfm
from mobifuse.experiments import train_scale
from mobifuse.simulator import simulate_scene
from shared.cli import run
from shared.io import read_json

TINY = ["--set", "sim.width=96", "--set", "sim.height=64", "--set", "sim.focal_px=84.0",
        "--set", "sim.tof_width=48", "--set", "sim.tof_height=32",
        "--set", "sim.tof_focal_px=42.0", "--set", "stereo.num_disparities=16",
        "--set", "train_scenes=2", "--set", "val_scenes=1", "--set", "steps=4",
        "--set", "batch_size=2", "--set", "crop=32", "--set", "ckpt_every=2",
        "--set", "net.widths=[4, 8, 8]"]


class _Result:
    def __init__(self, code, out, err):
        self.returncode, self.stdout, self.stderr = code, out, err


def _run(mod, *args):
    """Run a command's `main` through `shared.cli.run` in-process (no torch re-import)."""
    import contextlib
    import io

    main = {"mobifuse.train": train.main, "mobifuse.eval": mf_eval.main,
            "mobifuse.bench": bench.main,
            "mobifuse.experiments.train_scale": train_scale.main}[mod]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run(main, list(args))
        except SystemExit as e:
            code = e.code or 0
    return _Result(code, out.getvalue(), err.getvalue())


def test_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "mobifuse.train", "--help"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and "python -m mobifuse.train" in r.stdout


def test_help_explains():
    r = _run("mobifuse.train", "--help")
    assert r.returncode == 0 and "fusion network" in r.stdout and "--set" in r.stdout
    r = _run("mobifuse.bench", "--help")
    assert r.returncode == 0 and "inverse-variance" in r.stdout


def test_unknown_and_mistyped_keys_fail_with_one_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("train_scenes: 2\nlearning_rat: 0.1\n")
    r = _run("mobifuse.train", "--config", str(cfg), "--out", str(tmp_path / "run"))
    assert r.returncode == 2
    assert "learning_rat" in r.stderr and "bad.yaml" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "model.safetensors").exists()
    r = _run("mobifuse.train", "--set", "sim.baseline_m=fast", "--out", str(tmp_path / "r2"))
    assert r.returncode == 2 and "sim.baseline_m" in r.stderr
    r = _run("mobifuse.train", "--set", "stereo.num_disparities=20")
    assert r.returncode == 2 and "multiple of 16" in r.stderr


def test_train_then_eval_then_resume(tmp_path):
    out = tmp_path / "run"
    assert train.main(["--config", "configs/mobifuse/tiny.yaml", *TINY, "--out", str(out)]) == 0
    assert (out / "model.safetensors").is_file() and (out / "ckpt.pt").is_file()
    m = read_json(out / "metrics.json")
    assert m["steps"] == 4 and m["val_mae"] > 0
    # more steps would change the cosine schedule of the resumed steps: refused, run dir kept
    saved = (out / "config.yaml").read_text()
    r = _run("mobifuse.train", "--config", "configs/mobifuse/tiny.yaml", *TINY,
             "--set", "steps=6", "--out", str(out))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "steps=4 (now 6)" in r.stderr and (out / "config.yaml").read_text() == saved
    # validation scenes enter no training step: resumes (at its last step)
    assert train.main(["--config", "configs/mobifuse/tiny.yaml", *TINY,
                       "--set", "val_scenes=2", "--out", str(out)]) == 0
    assert "val_scenes: 2" in (out / "config.yaml").read_text()
    ev = tmp_path / "ev"
    assert mf_eval.main(["--config", "configs/mobifuse/tiny.yaml", *TINY[:14],
                         "--run", str(out), "--scenes", "1",
                         "--out", str(ev)]) == 0
    assert "mobifuse" in read_json(ev / "metrics.json")
    # a capture folder (the real-data layout) written from a simulated frame
    cap = _write_capture(tmp_path / "cap")
    ev2 = tmp_path / "ev2"
    assert mf_eval.main(["--config", "configs/mobifuse/tiny.yaml", *TINY[:14],
                         "--run", str(out), "--capture", str(cap),
                         "--out", str(ev2)]) == 0
    fused = read_pfm(ev2 / "fused.pfm")
    assert fused.shape == (32, 48) and np.isfinite(fused).all()
    m = read_json(ev2 / "metrics.json")  # fused, ToF-only and stereo-only side by side
    assert m["fused"]["mae"] < 1.0 and m["fused"]["coverage"] == 1.0
    assert {"inverse_variance", "tof_only", "stereo_only", "stereo_measured"} <= set(m)
    assert 0 < m["stereo_measured"]["coverage"] < 1


def test_eval_gives_a_camera_net_each_scenes_rays_and_field_of_view(tmp_path, monkeypatch):
    """`mobifuse.eval` on simulated scenes with a net that takes ray and FOV maps: the err it
    predicts on ends with the scene's centred rays and W / (2f), H / (2f) of its rig."""
    from mobifuse.config import NetConfig
    from mobifuse.models import N_ERR, TwoStageFusionNet, centred_rays, save_model

    torch.manual_seed(0)
    run_dir = tmp_path / "run"
    save_model(TwoStageFusionNet(NetConfig(widths=(4, 8, 8), ray_channels=True,
                                           fov_channels=True)), run_dir / "model.safetensors")
    seen = {}
    real = mf_eval.predict

    def spy(model, geom, err, batch=8):
        seen["err"] = err.numpy()
        return real(model, geom, err, batch)

    monkeypatch.setattr(mf_eval, "predict", spy)
    assert mf_eval.main(["--config", "configs/mobifuse/tiny.yaml", *TINY[:14], "--run",
                         str(run_dir), "--scenes", "1", "--out", str(tmp_path / "ev")]) == 0
    e = seen["err"][0]
    h, w = e.shape[-2:]
    assert e.shape[0] == N_ERR + 4
    np.testing.assert_allclose(e[N_ERR:N_ERR + 2], centred_rays(h, w, 84.0, 96, 64), rtol=1e-6)
    np.testing.assert_allclose(e[N_ERR + 2], 96 / (2 * 84.0), rtol=1e-6)
    np.testing.assert_allclose(e[N_ERR + 3], 64 / (2 * 84.0), rtol=1e-6)


def test_eval_middlebury_folder_reports_side_by_side(tmp_path):
    from test_mobifuse_api import _closed_form_middlebury

    scene = tmp_path / "scene"
    scene.mkdir()
    _closed_form_middlebury(scene)
    ev = tmp_path / "ev"
    assert mf_eval.main(["--middlebury", str(scene), "--downsample", "1", "--out", str(ev)]) == 0
    m = read_json(ev / "metrics.json")
    assert read_pfm(ev / "fused.pfm").shape == (64, 161)  # odd width, downsample 1
    assert m["stereo_only"]["median"] < 0.05 and m["fused"]["median"] < 0.05
    assert m["tof_source"].startswith("simulated") and m["search"]["min_disp"] <= 4
    r = _run("mobifuse.eval", "--middlebury", str(tmp_path / "none"))
    assert r.returncode == 2 and "calib.txt" in r.stderr
    ev2 = tmp_path / "ev2"  # the stereo offset forced on: the same folder still runs
    assert mf_eval.main(["--middlebury", str(scene), "--downsample", "1", "--offset-gate",
                         "100", "--out", str(ev2)]) == 0
    assert read_json(ev2 / "metrics.json")["fused"]["median"] < 0.05
    r = _run("mobifuse.eval", "--middlebury", str(scene), "--offset-gate", "-1", "--out",
             str(tmp_path / "ev3"))
    assert r.returncode == 2 and "--offset-gate must be >= 0" in r.stderr
    assert not (tmp_path / "ev3").exists()


def _write_capture(folder):
    sim = SimConfig(width=96, height=64, focal_px=84.0, tof_width=48, tof_height=32,
                    tof_focal_px=42.0)
    raw = simulate_scene(11, sim)
    folder.mkdir()
    cv2.imwrite(str(folder / "left.png"), raw["left"][:, :, ::-1])
    cv2.imwrite(str(folder / "right.png"), raw["right"][:, :, ::-1])
    write_pfm(folder / "tof_depth.pfm", np.where(raw["tof_valid"], raw["tof_depth"], 0))
    write_pfm(folder / "tof_amplitude.pfm", raw["tof_amplitude"])
    write_pfm(folder / "gt_depth.pfm", raw["depth"])
    c = sim_calibration(sim)
    (folder / "calib.json").write_text(json.dumps(
        {"K_left": c.K_left.tolist(), "K_tof": c.K_tof.tolist(),
         "T_left_tof": c.T_left_tof.tolist(), "baseline_m": c.baseline_m,
         "mod_freq_hz": c.mod_freq_hz}))
    return folder


def test_eval_missing_or_corrupt_model(tmp_path):
    r = _run("mobifuse.eval", "--run", str(tmp_path))
    assert r.returncode == 2 and "model file not found" in r.stderr
    r = _run("mobifuse.eval", "--run", str(tmp_path / "none"))
    assert r.returncode == 2 and "--run: run directory not found" in r.stderr
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"not a zip")
    r = _run("mobifuse.eval", "--run", str(tmp_path))
    assert r.returncode == 2 and "not a mobifuse.TwoStageFusionNet weights file" in r.stderr


def test_train_scale_refuses_bad_workers_and_arms_before_any_output(tmp_path):
    """One line, exit 2, and no output folder for a bad --workers or an unknown arm."""
    out = tmp_path / "ts"
    r = _run("mobifuse.experiments.train_scale", "--workers", "0", "--out", str(out))
    assert r.returncode == 2 and "--workers must be >= 1 (got 0)" in r.stderr
    r = _run("mobifuse.experiments.train_scale", "--arms", "S3", "--out", str(out))
    assert r.returncode == 2 and "invalid choice: 'S3'" in r.stderr
    r = _run("mobifuse.experiments.train_scale", "--render-only", "--no-render", "--out", str(out))
    assert r.returncode == 2 and "--render-only and --no-render exclude each other" in r.stderr
    assert not out.exists()


@pytest.mark.slow
def test_bench_quick_writes_report(tmp_path):
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    rep = read_json(tmp_path / "bench.json")
    assert {c["name"] for c in rep["checks"]} and rep["headline"]
    for f in ("bench.png", "sweeps.png", "qualitative.png", "bench.md"):
        assert (tmp_path / f).is_file()
