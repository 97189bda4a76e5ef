"""`experiments.timing_size` and the trainer's per-block timing data: the data are each block's
`data.timing_dataset`, the score equals arm (e)'s r."""

from dataclasses import replace

import numpy as np
import pytest

from shared.errors import UserError
from twscardio.config import BenchConfig
from twscardio.experiments import timing_size as ts


@pytest.fixture
def small_cfg(monkeypatch, tmp_path):
    monkeypatch.setenv("PAPERBENCH_CACHE", str(tmp_path))
    cfg = BenchConfig().train
    return replace(cfg, sync=replace(cfg.sync, blocks=[2, 3], duration_s=8.0))


def test_timing_data_is_each_blocks_dataset_cached_on_its_own(small_cfg):
    from twscardio.data import timing_dataset
    from twscardio.train import timing_data

    got = timing_data(small_cfg)  # blocks [2, 3]: subjects 0-1, then 2-4, each a fresh stream
    ref = [timing_dataset(small_cfg, "train", 2, 0), timing_dataset(small_cfg, "train", 3, 2)]
    for k in ("X", "Y"):
        np.testing.assert_array_equal(got[k], np.concatenate([r[k] for r in ref]))
    # a longer layout reuses the leading blocks' data
    more = timing_data(replace(small_cfg, sync=replace(small_cfg.sync, blocks=[2, 3, 1])))
    np.testing.assert_array_equal(more["X"][:5], got["X"])
    # blocks of equal size at different starts are different subjects
    same = timing_data(replace(small_cfg, sync=replace(small_cfg.sync, blocks=[2, 2])))
    np.testing.assert_array_equal(same["X"][2:], timing_dataset(small_cfg, "train", 2, 2)["X"])
    assert not np.array_equal(same["X"][:2], same["X"][2:])


def test_score_is_arm_e_of_the_pipeline(small_cfg):
    from twscardio.beats import per_beat_pearson
    from twscardio.beatsync import TimingModel
    from twscardio.data import subject_recording, subject_seed
    from twscardio.pipeline import process

    val = ts.validation_set(small_cfg, 7, 1, 50.0, 0.1, duration_s=20.0)
    m = TimingModel(len(val[0]["x"]), 8, 1)  # a constant model: lag 0.12 s, LVET offset 15 ms
    m.y_mu.copy_(m.y_mu.new_tensor([0.12, 0.015]))
    for p in m.nets[0][-1].parameters():
        p.data.zero_()
    blur = (small_cfg.sync.blur_ao_ms / 1000, small_cfg.sync.blur_ac_ms / 1000)
    got = ts.score(val, ts.predictions(m, val), blur)
    sc = replace(small_cfg.sim, fs_in=50.0, duration_s=20.0, motion_level=0.0,
                 channel=replace(small_cfg.sim.channel, loss=0.1, burst=3.0))
    rec = subject_recording(sc, subject_seed("val", 7, small_cfg.seed), randomised=True)
    o = process(rec, replace(small_cfg, sim=sc), "e", m)
    np.testing.assert_array_equal(val[0]["j"], np.sort(o["j_s"]))  # the arm's own J peaks
    tr = rec["truth"]
    r = per_beat_pearson(o["scg"], tr["scg"][:len(o["scg"])], tr["r_idx"], float(tr["fs_ref"]))
    assert got["r"] == pytest.approx(float(np.median(r[np.isfinite(r)])), abs=1e-9)
    assert got["lag_err_ms"] == pytest.approx(1000 * abs(0.12 - val[0]["y"][0]))
    # no prediction: the r of a zero SCG (NaN beats dropped), no lag error
    empty = ts.score(val, np.full((1, 2), np.nan), blur)
    assert np.isnan(empty["lag_err_ms"]) and np.isnan(empty["r"])


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(UserError, match="--blocks"):
        ts.parse_ints("3000,x", "--blocks")
    with pytest.raises(UserError, match=">= 1"):
        ts.parse_ints("0,3", "--blocks")
    assert ts.parse_ints("0,14", "--blur", low=0) == [0, 14]
    with pytest.raises(UserError, match="AO,AC"):
        ts.main(["--blur", "4", "--subjects", "1"])
