"""The train / eval / bench commands: a tiny run, resume to the same weights, evaluation on a
split and on a video file, and bad input (one line, exit 2, no run dir)."""

import contextlib
import io

import numpy as np
import pytest

from bestshot import bench, train
from bestshot import eval as bs_eval
from bestshot.models import load_model
from shared.cli import run
from shared.io import read_json

TINY = "configs/bestshot/tiny.yaml"
SPLIT = ["--set", "split.n_videos=2", "--set", "split.image_size=32", "--set", "split.fps=6",
         "--set", "split.clip_seconds=4.0", "--set", "split.segments=1"]


def _run(main, *args):
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(err):
        try:
            run(main, [str(a) for a in args])
        except SystemExit as e:
            code = e.code or 0
    return code, out.getvalue(), err.getvalue().strip()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("bs") / "run"
    code, _, err = _run(train.main, "--config", TINY, "--out", d)
    assert code == 0, err
    return d


def test_train_writes_a_run_and_resumes_to_the_same_weights(trained, tmp_path):
    for f in ("model.safetensors", "metrics.json", "config.yaml", "ckpt.pt", "ckpt.prev.pt"):
        assert (trained / f).is_file(), f
    assert np.isfinite(read_json(trained / "metrics.json")["final_loss"])
    # an interrupted run: only the step-3 checkpoint is left; rerunning finishes steps 4-6
    import shutil

    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copy(trained / "ckpt.prev.pt", resumed / "ckpt.pt")
    shutil.copy(trained / "config.yaml", resumed / "config.yaml")
    code, _, err = _run(train.main, "--config", TINY, "--out", resumed)
    assert code == 0, err
    a, _ = load_model(trained)
    b, _ = load_model(resumed)
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-6, err_msg=k)


def test_resume_under_a_changed_config_is_refused(trained, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    saved = (run_dir / "config.yaml").read_text()
    code, _, err = _run(train.main, "--config", TINY, "--out", run_dir, "--set", "lr=0.5")
    assert code == 2 and "\n" not in err and "lr=" in err and str(run_dir) in err, err
    assert (run_dir / "config.yaml").read_text() == saved
    # checkpoint frequency changes no step: resumes (here: already at its last step)
    code, _, err = _run(train.main, "--config", TINY, "--out", run_dir, "--set", "ckpt_every=1")
    assert code == 0, err
    assert "ckpt_every: 1" in (run_dir / "config.yaml").read_text()


def test_eval_on_a_split_and_on_a_video_file(trained, tmp_path):
    code, _, err = _run(bs_eval.main, "--run", trained, "--out", tmp_path / "ev", *SPLIT)
    assert code == 0, err
    m = read_json(tmp_path / "ev" / "metrics.json")
    assert 0 <= m["hit1"] <= 1 and 0 <= m["localisation"]["mAP_mean"] <= 1
    assert (tmp_path / "ev" / "predictions.jsonl").is_file()
    import cv2

    path = tmp_path / "clip.avi"
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 8, (32, 32))
    for k in range(6):
        wr.write(np.full((32, 32, 3), 40 * k, np.uint8))
    wr.release()
    code, out, err = _run(bs_eval.main, "--run", trained, "--video", path, "--query",
                          "a person jumps", "--out", tmp_path / "q")
    assert code == 0, err
    assert out.startswith("frame ") and len(read_json(tmp_path / "q" / "scores.json")
                                            ["scores"]) == 6


@pytest.mark.parametrize("args,msg", [
    (["--set", "stepz=3"], "unknown key 'stepz'"),
    (["--set", "init=/no/such/run"], "'init': no weights"),
    (["--set", "model.kind=cnn"], "model.kind"),
    (["--set", "video.combos=only_heldout"], "needs heldout_pairs"),
])
def test_train_bad_input_is_one_line_and_leaves_no_run_dir(tmp_path, args, msg):
    code, _, err = _run(train.main, "--config", TINY, "--out", tmp_path / "r", *args)
    assert code == 2 and msg in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_eval_bad_video_and_empty_query(trained, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"nope" * 100)
    code, _, err = _run(bs_eval.main, "--run", trained, "--video", bad, "--query", "a jump",
                        "--out", tmp_path / "q")
    assert code == 2 and "bad.mp4" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "q").exists()
    code, _, err = _run(bs_eval.main, "--run", trained, "--video", bad)
    assert code == 2 and "--video and --query go together" in err


def test_bench_help_and_unknown_flag():
    assert _run(bench.main, "--help")[0] == 0
    code, _, err = _run(bench.main, "--nope")
    assert code == 2 and "unrecognized arguments" in err
