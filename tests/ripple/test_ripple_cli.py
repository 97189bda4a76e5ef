"""The command-line tools: a tiny train -> eval round trip, bench, and one-line errors (exit 2)."""

import json

import numpy as np
import pytest

from shared.cli import run

TINY = "configs/ripple/tiny.yaml"


def _exit_code(main, argv):
    with pytest.raises(SystemExit) as e:
        run(main, argv)
    return e.value.code


def test_unknown_config_key_is_one_line_exit_2(capsys, tmp_path):
    from ripple.train import main

    assert _exit_code(main, ["--config", TINY, "--set", "model.d_modle=3",
                             "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "d_modle" in err[0] and "tiny.yaml" in err[0]
    assert _exit_code(main, ["--config", TINY, "--set", "online.cache_ratio=1.5"]) == 2
    assert "cache_ratio" in capsys.readouterr().err
    assert _exit_code(main, ["--config", str(tmp_path / "none.yaml")]) == 2


def test_train_then_eval_round_trip(tmp_path, capsys):
    from ripple.eval import main as eval_main
    from ripple.train import main as train_main

    tr = tmp_path / "train"
    assert _exit_code(train_main, ["--config", TINY, "--out", str(tr)]) == 0
    summary = json.loads((tr / "train.json").read_text())
    assert summary["neurons_per_layer"] == 256
    assert (tr / "checkpoint" / "config.json").is_file()
    ev = tmp_path / "eval"
    assert _exit_code(eval_main, ["--config", TINY, "--run", str(tr), "--out", str(ev)]) == 0
    rows = json.loads((ev / "results.json").read_text())["rows"]
    arms = {r["arm"] for r in rows}
    assert {"llama.cpp", "llmflash", "ripple"} <= arms
    assert (ev / "layout-ripple.bin").is_file()
    with np.load(ev / "placement.npz") as z:
        assert z["ripple"].shape == (2, 256)
    # a corrupt mask file: one line, exit 2, no results written
    (tr / "masks-test-stdlib-py.npz").write_bytes(b"junk")
    bad = tmp_path / "eval-bad"
    assert _exit_code(eval_main, ["--config", TINY, "--run", str(tr), "--out", str(bad)]) == 2
    assert "corrupt mask file" in capsys.readouterr().err
    assert not (bad / "results.json").exists()


@pytest.mark.slow
def test_bench_tiny_writes_checks_and_plots(tmp_path):
    from ripple.bench import main

    out = tmp_path / "b"
    assert _exit_code(main, ["--config", TINY, "--out", str(out)]) == 0
    d = json.loads((out / "bench.json").read_text())
    assert d["checks"] and d["headline"]
    assert (out / "bench.png").is_file()
