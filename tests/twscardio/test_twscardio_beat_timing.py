"""The IBI-error decomposition probe (`experiments.beat_timing`): its per-pair errors are the
bench's IBI MAE (`beats.beat_metrics`) pair for pair, its class parts add up to the bench's
figure, and its octave windows follow `beats.octave_errors`' rule."""

from dataclasses import replace

import numpy as np
import pytest

from twscardio.beats import beat_metrics, octave_errors
from twscardio.config import ChannelConfig, TrainConfig
from twscardio.experiments.beat_timing import (
    DECOMPOSITION,
    decompose,
    octave_windows,
    recording_errors,
)
from twscardio.outfamily import simulate_out_of_family
from twscardio.pipeline import process


def test_octave_windows_follow_the_octave_error_rule():
    rng = np.random.default_rng(0)
    r = np.cumsum(0.8 + rng.normal(0, 0.03, 60))
    for det in (r + rng.normal(0, 0.01, r.size),  # right rate
                np.sort(np.concatenate([r, r[:-1] + np.diff(r) / 2])),  # double rate
                r[::2], r[::3],  # half rate; a third (two per window: not scored)
                np.sort(np.concatenate([r[:20], r[20:40:2], r[40:]]))):  # half rate in a stretch
        dur = float(r[-1] + 1)
        _, bad = octave_errors(det, r, dur)
        starts = np.arange(int(dur // 5.0)) * 5.0 + 2.5  # one time per window
        assert int(octave_windows(det, r, starts).sum()) == bad


def test_decomposition_parts_add_up_to_the_mean_of_recording_maes():
    rng = np.random.default_rng(1)
    res = []
    for n in (40, 55, 3):
        ibi = rng.exponential(8.0, n)
        d = rng.normal(0, 5, n)
        res.append({"ibi": ibi, "dec": rng.integers(0, len(DECOMPOSITION), n),
                    "detector": d, "reference": rng.normal(0, 3, n)})
    tab = decompose(res)
    assert sum(v["bench_ms"] for v in tab.values()) == pytest.approx(
        np.mean([x["ibi"].mean() for x in res]))
    assert sum(v["mae_share_ms"] for v in tab.values()) == pytest.approx(
        np.concatenate([x["ibi"] for x in res]).mean())
    assert sum(v["pairs_pct"] for v in tab.values()) == pytest.approx(100.0)


@pytest.mark.parametrize("fs_in,loss", [(25.0, 0.2)])
def test_probe_pairs_are_the_bench_ibi_pairs(fs_in, loss):
    cfg = TrainConfig()
    sc = replace(cfg.sim, fs_in=fs_in, duration_s=30.0,
                 channel=ChannelConfig(loss=loss, burst=3.0))
    rec = simulate_out_of_family(sc, 1)
    e = recording_errors(rec, cfg, "j_s")
    m = beat_metrics(process(rec, cfg, "b")["beats_all_s"], rec["truth"])
    assert e["ibi"].size == m["n_ibi"] and e["ibi"].mean() == pytest.approx(m["ibi_mae_ms"])
    assert set(np.unique(e["dec"])) <= set(range(len(DECOMPOSITION)))
