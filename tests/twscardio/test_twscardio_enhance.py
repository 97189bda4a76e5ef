"""Enhancement: gaps from timestamps, validity mask, exact band-limited interpolation, errors."""

import numpy as np
import pytest

from shared.errors import DataError
from twscardio.config import EnhanceConfig
from twscardio.enhance import (
    bandlimited_interpolate,
    detect_gaps,
    enhance_bud,
    linear_fill_upsample,
    resample_uniform,
    time_since_valid,
    validate_stream,
    validity_mask,
)


def _trig(t, P, K, rng):
    a, b = rng.normal(size=K + 1), rng.normal(size=K + 1)
    k = np.arange(K + 1)
    ang = 2 * np.pi * np.outer(t, k) / P
    return np.cos(ang) @ a + np.sin(ang) @ b


def test_bandlimited_interpolation_is_exact_with_gaps():
    rng = np.random.default_rng(0)
    fs, P = 25.0, 5.0
    t = np.arange(int(P * fs)) / fs + rng.normal(0, 0.002, int(P * fs))  # jittered
    keep = np.ones(t.size, bool)
    keep[30:36] = keep[80:83] = False  # bursty gaps
    t = np.sort(t[keep])
    K = 40  # 8 Hz < Nyquist of the remaining samples
    x = _trig(t, P, K, np.random.default_rng(1))
    t_out = np.arange(0, P, 0.01)
    ref = _trig(t_out, P, K, np.random.default_rng(1))
    y = bandlimited_interpolate(t, x[:, None], t_out, f_max=K / P, period=P, ridge=1e-12)
    assert np.max(np.abs(y[:, 0] - ref)) < 1e-6 * np.max(np.abs(ref))


def test_spline_upsampling_converges_on_bandlimited_signal():
    f = 3.0  # Hz, well below every input Nyquist
    t_out = np.arange(1.0, 4.0, 0.01)
    errs = []
    for fs in (15.0, 25.0, 50.0, 100.0):
        t = np.arange(0, 5, 1 / fs)
        y = resample_uniform(t, np.sin(2 * np.pi * f * t)[:, None], t_out, "spline")
        errs.append(np.max(np.abs(y[:, 0] - np.sin(2 * np.pi * f * t_out))))
    assert errs[-1] < 1e-4 and all(a > b for a, b in zip(errs, errs[1:]))


def test_gap_detection_and_mask():
    fs = 25.0
    t = np.arange(100) / fs
    t = np.delete(t, [10, 11, 12, 50])  # a 3-sample gap and a 1-sample gap
    after, missing = detect_gaps(t, fs)
    assert after.tolist() == [9, 46] and missing.tolist() == [3, 1]
    t_out = np.arange(0, 3.9, 0.01)
    m = validity_mask(t, t_out, fs, max_short_gap=2)
    bad = (t_out > 9 / fs + 1e-6) & (t_out < 13 / fs - 1e-6)
    edge = np.isclose(t_out, 9 / fs) | np.isclose(t_out, 13 / fs)
    assert not m[bad].any() and m[~bad & ~edge].all()
    tsv = time_since_valid(t, t_out)
    assert tsv.max() == pytest.approx(4 / fs - 0.01, abs=0.011)


def test_enhance_bud_fills_long_gaps_linearly():
    fs = 25.0
    t = np.delete(np.arange(125) / fs, np.arange(40, 50))
    x = np.stack([np.sin(2 * np.pi * 1.0 * t)] * 6, axis=1)
    t_out = np.arange(0, 4.9, 0.01)
    y, m, _ = enhance_bud(t, x, EnhanceConfig(), t_out)
    inside = (t_out > 39 / fs) & (t_out < 50 / fs)
    a, b = x[39, 0], x[39 + 1, 0]
    line = a + (t_out[inside] - 39 / fs) / (11 / fs) * (b - a)
    assert np.allclose(y[inside, 0], line) and not m[inside].any()
    assert linear_fill_upsample(t, x, t_out).shape == (t_out.size, 6)


@pytest.mark.parametrize("t,x,msg", [
    (np.array([0.0, 0.04, 0.03, 0.08, 0.12]), np.zeros((5, 6)), "not strictly increasing"),
    (np.zeros(0), np.zeros((0, 6)), "empty"),
    (np.arange(5) / 25, np.full((5, 6), np.nan), "NaN"),
    (np.arange(5) / 25, np.zeros((4, 6)), "shape"),
])
def test_bad_streams_raise_clear_errors(t, x, msg):
    with pytest.raises(DataError, match=msg):
        validate_stream(t, x, "left")
