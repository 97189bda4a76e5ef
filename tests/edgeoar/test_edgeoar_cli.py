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


def test_eval_of_a_missing_model_is_one_line(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(SystemExit) as e:
        run(eval_recipe.main, ["--run", str(tmp_path / "run"), "--out", str(tmp_path / "x")])
    assert e.value.code == 2 and "model file not found" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_package_docstring_example_runs():
    res = doctest.testmod(edgeoar, verbose=False)
    assert res.attempted > 0 and res.failed == 0
