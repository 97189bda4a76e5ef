"""Periodic component analysis (`fusion.pica_weights`, `fusion.method="pica"`): the eigen-solution
against a brute-force search, and recovery of a planted periodic source whose mixing changes."""

import numpy as np
import pytest

from tests.twscardio.test_twscardio_fusion import FS, _beats
from twscardio.config import FusionConfig
from twscardio.fusion import bandpass, fuse, pica_weights


def _periodicity_error(y, lags):
    """1 - mean_tau sum y(t + tau) y(t) / (n - tau) over sum y^2 / n, by explicit sums."""
    n = len(y)
    p0 = np.dot(y, y) / n
    return 1.0 - np.mean([np.dot(y[t:], y[:-t]) / (n - t) / p0 for t in lags])


def test_pica_equals_brute_force_over_unit_weights_for_two_axes():
    n = 1500
    rng = np.random.default_rng(0)
    s = bandpass(_beats(n, seed=1), FS, [0.7, 15])
    z = np.stack([0.8 * s, -0.5 * s], axis=1) + bandpass(rng.normal(size=(n, 2)), FS, [0.7, 15])
    z /= z.std(axis=0)
    cands = [70, 80, 90]  # the source's period is 80 samples
    w, lam, lag = pica_weights(z, cands)
    theta = np.linspace(0, np.pi, 4001)
    errs = {L: np.array([_periodicity_error(z @ [np.cos(a), np.sin(a)], range(L - 2, L + 3))
                         for a in theta]) for L in cands}
    best_lag = min(cands, key=lambda L: errs[L].min())
    k = int(np.argmin(errs[best_lag]))
    assert lag == best_lag == 80
    assert lam == pytest.approx(errs[best_lag][k], abs=1e-4)
    assert abs(np.dot(w, [np.cos(theta[k]), np.sin(theta[k])])) > 0.9999


def test_pica_recovers_a_source_whose_mixing_changes_where_global_fusion_does_less():
    n = 6000  # 60 s; the bud is re-seated at 30 s: the source's loadings change
    rng = np.random.default_rng(2)
    s = _beats(n, seed=3)
    s /= s.std()
    a1 = np.array([1.0, 0.2, -0.3, 0.1, 0.8, 0.0])
    a2 = np.array([0.1, 1.0, 0.2, -0.8, 0.1, 0.3])
    load = np.where(np.arange(n)[:, None] < n // 2, a1, a2)
    noise = bandpass(rng.normal(size=(n, 6)), FS, [0.7, 15]) * 0.5
    acc = (s[:, None] * load + noise) * 1e-3
    X = np.zeros((n, 12))
    X[:, 0:3], X[:, 6:9] = acc[:, :3], acc[:, 3:]
    ref = bandpass(s, FS, [0.7, 15])
    r = {m: abs(np.corrcoef(fuse(X, np.ones((n, 2), bool), FS,
                                 FusionConfig(method=m))["fused"], ref)[0, 1])
         for m in ("global", "pica")}
    assert r["pica"] > 0.95 and r["global"] < r["pica"] - 0.05


def test_fusion_method_is_validated():
    with pytest.raises(ValueError, match="fusion.method"):
        FusionConfig(method="ica").validate()
    with pytest.raises(ValueError, match="fusion.pica_period"):
        FusionConfig(pica_period="guess").validate()


def test_pica_options_enter_the_cache_keys_only_when_used():
    from dataclasses import replace

    from twscardio.config import TrainConfig
    from twscardio.train import _data_key, _model_key

    cfg = TrainConfig()
    assert "method" not in _model_key(cfg)["fusion"]  # keys made before the option still hold
    pica = replace(cfg, fusion=replace(cfg.fusion, method="pica"))
    assert _model_key(pica) != _model_key(cfg)
    assert _data_key(pica, "train", 2) != _data_key(cfg, "train", 2)
