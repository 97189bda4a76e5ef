"""Recipes: bad configs and files are one line with exit code 2 and leave no run dir; the
package example runs."""

import doctest

import pytest

import edgeoar
from edgeoar import bench, train
from edgeoar import eval as eval_recipe
from shared.cli import run


@pytest.mark.parametrize("module,args,msg", [
    (train, ["--set", "modee=joint"], "unknown key 'modee'"),
    (train, ["--set", "mode=both"], "not one of"),
    (train, ["--set", "stream.image_size=50"], "multiple of 16"),
    (train, ["--set", "stream.actions=[fly]"], "unknown action 'fly'"),
    (train, ["--set", "stream.motion={camera_yaww: [0, 1]}"], "camera_yaww"),
    (train, ["--set", "model.motion_source=diff"], "partition_guidance"),
    (train, ["--config", "configs/edgeoar/missing.yaml"], "config file not found"),
    (bench, ["--set", "train.codec.cell=5"], "codec.cell"),
    (bench, ["--set", "exits.rule=edge"], "exits.rule"),
    (bench, ["--set", "exits.frame_budget=1.5"], "exits.frame_budget"),
    (eval_recipe, [], "--run"),
])
def test_bad_input_is_one_line_exit_2(module, args, msg, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        run(module.main, ["--out", str(tmp_path / "x"), *args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_resume_under_a_changed_config_is_one_line_before_any_work(capsys, tmp_path):
    from shared.config import load_config, save_config
    from shared.io import check_resume

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = load_config("configs/edgeoar/default.yaml", train.TrainConfig)
    save_config(cfg, run_dir / "config.yaml")
    (run_dir / "ckpt.pt").write_bytes(b"")  # refused before the checkpoint is read
    saved = (run_dir / "config.yaml").read_text()
    with pytest.raises(SystemExit) as e:
        run(train.main, ["--out", str(run_dir), "--set", "batch_size=3"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "batch_size=" in err
    assert (run_dir / "config.yaml").read_text() == saved
    longer = load_config("configs/edgeoar/default.yaml", train.TrainConfig,
                         ["rounds=9", "log_every=5"])
    check_resume(run_dir, longer, train.resume_free(longer))  # more rounds: resumes


def test_eval_of_a_missing_model_is_one_line(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(SystemExit) as e:
        run(eval_recipe.main, ["--run", str(tmp_path / "run"), "--out", str(tmp_path / "x")])
    assert e.value.code == 2 and "model file not found" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_package_docstring_example_runs():
    res = doctest.testmod(edgeoar, verbose=False)
    assert res.attempted > 0 and res.failed == 0
