"""The cross-bud term of the fusion (`fusion.cross_bud_covariance`, `fusion.cross_bud`): a slow
reference for the covariance, the first canonical correlation in closed form, and a planted
weak beat common to both buds that a bud-own periodic sway hides from the beat-lag fusion."""

from dataclasses import replace

import numpy as np
import pytest
from scipy import linalg

from twscardio.config import TrainConfig
from twscardio.experiments.cross_bud import add_breathing_sway
from twscardio.fusion import (
    bandpass,
    combine,
    cross_bud_covariance,
    highpass,
    periodic_weights,
    standardise,
    window_bounds,
    window_statistics,
)
from twscardio.pipeline import process
from twscardio.simulator import render_atoms, simulate

FS = 100.0


def test_cross_bud_covariance_matches_a_slow_reference():
    z = np.random.default_rng(0).normal(size=(200, 6))
    got = cross_bud_covariance(z, spread=2)
    ref = np.zeros((6, 6))
    for i in range(3):
        for j in range(3, 6):
            vals = []
            for lag in range(-2, 3):  # E[z_i(t + lag) z_j(t)] over the overlapping samples
                pairs = [z[t + lag, i] * z[t, j] for t in range(200) if 0 <= t + lag < 200]
                vals.append(sum(pairs) / len(pairs))
            ref[i, j] = ref[j, i] = np.mean(vals)
    assert np.allclose(got, ref, atol=1e-12)
    assert np.all(got[:3, :3] == 0) and np.all(got[3:, 3:] == 0)


def test_cross_bud_weights_are_the_first_canonical_pair():
    """With the beat-lag term left out, the fusion weights are the first canonical pair of the
    two buds (closed form: SVD of C_LL^-1/2 C_LR C_RR^-1/2) and the pencil's top eigenvalue is
    rho / (1 + rho), rho the first canonical correlation."""
    rng = np.random.default_rng(1)
    n = 4000
    s = rng.normal(size=n)
    z = rng.normal(size=(n, 6)) + np.outer(s, [1.0, -0.5, 0.2, 0.3, 0.8, -1.0])
    z -= z.mean(axis=0)
    c0 = z.T @ z / n
    cx = cross_bud_covariance(z, spread=0)
    w = periodic_weights(c0[None], np.zeros((1, 6, 6)), np.ones(1), cx[None], cross_bud=1.0)
    ill, irr = linalg.inv(linalg.sqrtm(c0[:3, :3])), linalg.inv(linalg.sqrtm(c0[3:, 3:]))
    u, sv, vt = linalg.svd(ill @ c0[:3, 3:] @ irr)
    a, b = ill @ u[:, 0], irr @ vt[0]
    ref = np.concatenate([a, b])
    cos = abs(w @ ref) / (np.linalg.norm(w) * np.linalg.norm(ref))
    assert cos > 0.9999
    lam = (w @ cx @ w) / (w @ c0 @ w)
    assert lam == pytest.approx(sv[0] / (1 + sv[0]), rel=1e-6)


def _irregular_beat(rng, n: int) -> np.ndarray:
    """A unit-variance 8-Hz complex (n,) at irregular RR (mean 0.9 s, SD 90 ms)."""
    t = 0.3 + np.cumsum(np.clip(rng.normal(0.9, 0.09, n // 40), 0.5, 1.5))
    t = t[t < n / FS - 0.3]
    beat = render_atoms(n, FS, t, np.ones(t.size), np.full(t.size, 0.03), np.full(t.size, 8.0),
                        0.15)
    return beat / beat.std()


def _planted(seed: int):
    """A weak 8-Hz complex at irregular RR (SD 90 ms) on one axis of each bud, white noise on
    every axis, and on another axis of each bud its own narrow-band sway (periods ~1.33 s and
    ~0.88 s, independent between buds: each more periodic at its lag than the blurred beat)."""
    rng = np.random.default_rng(seed)
    n = 6000
    beat = _irregular_beat(rng, n)
    x = rng.normal(size=(n, 6))
    x[:, 1] += 0.6 * beat
    x[:, 4] -= 0.6 * beat
    for axis, band in ((0, [0.72, 0.78]), (3, [1.10, 1.16])):
        sway = bandpass(rng.normal(size=(n, 1)), FS, band, order=4)[:, 0]
        x[:, axis] += 3.0 * sway / sway.std()
    x = bandpass(x, FS, [0.7, 15.0])
    return standardise(x, np.ones_like(x, dtype=bool), window_bounds(n, FS, 5.0)), beat


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cross_bud_term_recovers_a_beat_the_beat_lag_fusion_misses(seed):
    z, beat = _planted(seed)
    cfg = TrainConfig().fusion
    bounds = window_bounds(len(z), FS, 5.0)
    st = [window_statistics(z[s:e], FS, cfg) for s, e in bounds]
    c0s, cts = np.stack([a[0] for a in st]), np.stack([a[1] for a in st])
    q = np.stack([a[2] for a in st]).max(axis=1) ** 4
    cxs = np.stack([cross_bud_covariance(z[s:e]) for s, e in bounds])
    m = np.ones_like(z, dtype=bool)
    r = {}
    for wgt in (0.0, 4.0):
        w = periodic_weights(c0s, cts, q, cxs, cross_bud=wgt)
        r[wgt] = abs(np.corrcoef(combine(z, m, w), beat)[0, 1])
        share = np.abs(w[[1, 4]]).sum() / np.abs(w).sum()
        if wgt == 0.0:
            assert share < 0.5  # the sways win the beat-lag criterion
        else:
            assert share > 0.8
    assert r[4.0] > r[0.0] + 0.5


def _off(cfg: TrainConfig) -> TrainConfig:
    """The fusion without the cross-bud term (the default before it was adopted)."""
    return replace(cfg, fusion=replace(cfg.fusion, cross_bud=0.0, cross_bud_hp_hz=0.0))


# the fusion weights and first beats of `process(simulate(sim 20 s, seed=3), cfg, "b")` at 793c3bc,
# before the cross-bud term's high-pass existed and while the term was off by default
GOLDEN_OFF_WEIGHTS = [-1.0082872404596679, -0.46790285495451883, 3.7004272632353,
                      -1.2222562790386335, 1.5399198736763235, 1.7572124198280468]
GOLDEN_OFF_BEATS = [0.4819876585799645, 1.5848914972080559, 2.6406840252688664,
                    3.6085926621992224, 4.7209569469624855, 5.811424250032814]


def test_cross_bud_off_leaves_the_fusion_unchanged():
    """With the term off the fusion is the one committed before the term's high-pass (golden
    weights and beats from that tree); any positive weight runs the term (a different fusion on
    this recording)."""
    cfg = _off(replace(TrainConfig(), sim=replace(TrainConfig().sim, duration_s=20.0)))
    rec = simulate(cfg.sim, seed=3)
    base = process(rec, cfg, "b")
    assert np.allclose(base["fusion"]["weights"], GOLDEN_OFF_WEIGHTS, rtol=0, atol=1e-9)
    assert len(base["beats_all_s"]) == 20
    assert np.allclose(base["beats_all_s"][:6], GOLDEN_OFF_BEATS, rtol=0, atol=1e-9)
    on = process(rec, replace(cfg, fusion=replace(cfg.fusion, cross_bud=4.0)), "b")
    assert not np.allclose(on["fusion"]["weights"], base["fusion"]["weights"])


def test_fuse_takes_the_cross_bud_covariance_on_the_high_passed_axes(monkeypatch):
    """Inside `fuse`, each window's cross-bud covariance is computed on the standardised axes
    high-passed at cross_bud_hp_hz with gap-fill rows zeroed again: the windows it receives equal
    `highpass` of the windows `window_statistics` receives, masked where those are zero (gap
    fills and the stencil next to them), recomputed here independently."""
    import twscardio.fusion as fusion
    from twscardio.pipeline import prepare

    cfg = replace(TrainConfig(), sim=replace(TrainConfig().sim, duration_s=20.0))
    cfg = replace(cfg, fusion=replace(cfg.fusion, cross_bud=2.0, cross_bud_hp_hz=2.0))
    prep = prepare(simulate(cfg.sim, seed=4), cfg)
    mask = prep["mask"].copy()
    mask[500:560, 0] = False  # a 0.6-s gap in the left bud
    seen = {"z": [], "zx": []}
    ws, cb = fusion.window_statistics, fusion.cross_bud_covariance
    monkeypatch.setattr(fusion, "window_statistics",
                        lambda z, *a, **k: seen["z"].append(z.copy()) or ws(z, *a, **k))
    monkeypatch.setattr(fusion, "cross_bud_covariance",
                        lambda z, *a, **k: seen["zx"].append(z.copy()) or cb(z, *a, **k))
    fusion.fuse(prep["X"], mask, prep["fs"], cfg.fusion)
    z = np.concatenate(seen["z"])
    assert np.all(z[500:560, :3] == 0)  # the gap's rows are zero in the standardised axes
    ref = highpass(z, prep["fs"], 2.0) * (z != 0)
    got = np.concatenate(seen["zx"])
    assert got.shape == z.shape and np.all(got[500:560, :3] == 0)
    assert np.allclose(got, ref, rtol=0, atol=1e-12)
    assert not np.allclose(got, z, atol=1e-3)  # the high-pass did act


def test_breathing_sway_is_one_waveform_common_to_both_buds():
    """The probe's stress variant adds, per bud, one waveform along one direction (rank 1),
    the same waveform in both buds (|r| = 1 on common timestamps), with in-band harmonics:
    breathing at 0.2-0.35 Hz puts power above 0.7 Hz, which a sinusoid would not."""
    t = np.arange(0, 60, 0.02)
    rec = {s: {"relative_time": t, "acc": np.zeros((t.size, 3)), "gyro": np.zeros((t.size, 3))}
           for s in ("left", "right")}
    out = add_breathing_sway(rec, seed=5)
    assert np.all(rec["left"]["acc"] == 0)  # the input is not modified
    d = {s: out[s]["acc"] - rec[s]["acc"] for s in ("left", "right")}
    for s in d:
        sv = np.linalg.svd(d[s], compute_uv=False)
        assert sv[1] < 1e-9 * sv[0] and 1e-3 <= np.abs(d[s]).max() <= 3e-3 + 1e-12
    u = [np.linalg.svd(d[s], full_matrices=False)[0][:, 0] for s in d]
    assert abs(np.corrcoef(u[0], u[1])[0, 1]) == pytest.approx(1.0, abs=1e-9)
    spec = np.abs(np.fft.rfft(u[0])) ** 2
    f = np.fft.rfftfreq(t.size, 0.02)
    assert spec[f > 0.7].sum() > 0.02 * spec.sum()


def _common_sway(seed: int):
    """The weak 8-Hz beat of `_planted` on axis 1 of each bud, white noise on every axis, and a
    breathing-like sway common to both buds (one narrow-band waveform at 0.9-1.5 Hz, inside the
    0.7-15 Hz band) on axis 0 of each bud: shared by the buds, so the cross-bud term counts it."""
    rng = np.random.default_rng(seed)
    n = 6000
    beat = _irregular_beat(rng, n)
    sway = bandpass(rng.normal(size=(n, 1)), FS, [0.9, 1.5], order=4)[:, 0]
    x = rng.normal(size=(n, 6))
    x[:, [1, 4]] += 0.6 * beat[:, None]
    x[:, [0, 3]] += 3.0 * (sway / sway.std())[:, None]
    x = bandpass(x, FS, [0.7, 15.0])
    return standardise(x, np.ones_like(x, dtype=bool), window_bounds(n, FS, 5.0)), beat


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cross_bud_high_pass_ignores_a_sway_both_buds_share(seed):
    """Without the high-pass the cross-bud term (weight 4, no beat-lag term) puts its weight on
    the common sway; with `cross_bud_hp_hz` 3 the covariance is taken above the sway's band and
    the weights go to the beat axes."""
    z, beat = _common_sway(seed)
    bounds = window_bounds(len(z), FS, 5.0)
    c0s = np.stack([z[s:e].T @ z[s:e] / (e - s) for s, e in bounds])
    m = np.ones_like(z, dtype=bool)
    share, r = {}, {}
    for hp in (0.0, 3.0):
        zx = highpass(z, FS, hp) if hp else z
        cxs = np.stack([cross_bud_covariance(zx[s:e]) for s, e in bounds])
        w = periodic_weights(c0s, np.zeros_like(c0s), np.ones(len(bounds)), cxs, cross_bud=4.0)
        share[hp] = np.abs(w[[1, 4]]).sum() / np.abs(w).sum()
        r[hp] = abs(np.corrcoef(combine(z, m, w), beat)[0, 1])
    assert share[0.0] < 0.05 and share[3.0] > 0.7  # (0.001-0.004 / 0.78-0.96 on seeds 0-5)
    assert r[0.0] < 0.1 and r[3.0] > 0.75


def test_highpass_keeps_the_beat_band_and_removes_breathing():
    t = np.arange(6000) / FS
    x = np.stack([np.sin(2 * np.pi * 0.3 * t), np.sin(2 * np.pi * 8.0 * t)], axis=1)
    y = highpass(x, FS, 3.0)
    mid = slice(1000, 5000)  # away from the filter's edge transients
    assert np.abs(y[mid, 0]).max() < 0.01
    assert np.abs(y[mid, 1] - x[mid, 1]).max() < 0.05


def test_cross_bud_high_pass_acts_only_through_the_term_and_is_validated():
    """cross_bud_hp_hz changes nothing while cross_bud is 0 (same beats), changes the fusion
    when the term is on, must lie inside the band, and leaves the training cache keys as they
    were while it is 0."""
    from twscardio.train import _view_dict

    cfg = _off(replace(TrainConfig(), sim=replace(TrainConfig().sim, duration_s=20.0)))
    rec = simulate(cfg.sim, seed=3)
    base = process(rec, cfg, "b")
    hp_only = replace(cfg, fusion=replace(cfg.fusion, cross_bud_hp_hz=3.0))
    assert np.array_equal(process(rec, hp_only, "b")["beats_all_s"], base["beats_all_s"])
    on = replace(cfg, fusion=replace(cfg.fusion, cross_bud=4.0))
    on_hp = replace(cfg, fusion=replace(cfg.fusion, cross_bud=4.0, cross_bud_hp_hz=3.0))
    assert not np.allclose(process(rec, on_hp, "b")["fusion"]["weights"],
                           process(rec, on, "b")["fusion"]["weights"])
    for bad in (0.5, 15.0, 20.0):
        with pytest.raises(ValueError, match="cross_bud_hp_hz"):
            replace(cfg.fusion, cross_bud_hp_hz=bad).validate()
    slow = replace(on_hp, enhance=replace(on_hp.enhance, fs_out=30.0),
                   fusion=replace(on_hp.fusion, cross_bud_hp_hz=14.0))  # in the band, > 0.45 fs
    slow.fusion.validate()
    with pytest.raises(ValueError, match="0.45 x enhance.fs_out"):
        slow.validate()
    on_hp.validate()
    assert _view_dict(hp_only) == _view_dict(cfg)
    assert "cross_bud_hp_hz" not in _view_dict(on)["fusion"]
    assert _view_dict(on_hp)["fusion"]["cross_bud_hp_hz"] == 3.0


def test_the_default_fusion_is_the_validated_term():
    """The default is the pair the declared validation rule chose (results/twscardio/NOTES.md):
    cross_bud 2 on the axes high-passed at 2 Hz, and it enters the training cache keys."""
    from twscardio.train import _view_dict

    f = TrainConfig().fusion
    assert (f.cross_bud, f.cross_bud_hp_hz) == (2.0, 2.0)
    assert _view_dict(TrainConfig())["fusion"]["cross_bud_hp_hz"] == 2.0


def test_choose_applies_the_declared_rule():
    """Lowest mean IBI over every (run, setting) condition is chosen; adopted only when below
    off in every condition and not rejecting more than off + 0.5 points on the first run."""
    from twscardio.experiments.cross_bud import choose

    def row(ibi, rej=0.0):
        return {"ibi_mae_ms": ibi, "rejected_pct": rej}

    def runs(b2_rej=2.0, b3_25=15.0):
        plain = {"rows": {"50": {"a": row(30), "b 0": row(12, 1.0), "b 1": row(11, 1.0),
                                 "b 2": row(10, b2_rej), "b 3": row(9, 1.2),
                                 "b 4": row(float("nan"))},
                          "25": {"a": row(40), "b 0": row(14, 1.0), "b 1": row(13, 1.0),
                                 "b 2": row(12, 1.0), "b 3": row(b3_25, 1.0), "b 4": row(1)}}}
        sway = {"rows": {"50": {"a": row(30), "b 0": row(13), "b 1": row(12), "b 2": row(11),
                                "b 3": row(9), "b 4": row(1)}}}
        return [plain, sway]

    res = choose(runs())
    assert [r["variant"] for r in res["ranking"]] == ["b 2", "b 3", "b 1", "b 4"]
    assert res["ranking"][0]["mean_ibi_ms"] == pytest.approx(11.0)
    assert res["off"]["mean_ibi_ms"] == pytest.approx(13.0)
    assert res["chosen"] == "b 2" and not res["adopted"]  # 2.0 % rejected > 1.0 + 0.5
    res = choose(runs(b2_rej=1.5))
    assert res["chosen"] == "b 2" and res["adopted"]  # at the limit: 1.5 <= 1.0 + 0.5
    res = choose(runs(b2_rej=9.0, b3_25=13.5))  # b 3 now lowest (10.5) and below off everywhere
    assert res["chosen"] == "b 3" and res["adopted"]
    res = choose(runs(b3_25=14.5))  # b 3 lowest (10.83) but above off's 14 at "25": stays off
    assert res["chosen"] == "b 3" and not res["adopted"]


def test_choose_cli_names_a_missing_or_corrupt_file(tmp_path):
    from shared.errors import DataError
    from twscardio.experiments.cross_bud import main

    bad = tmp_path / "cut.json"
    bad.write_text('{"rows": {')
    for f in (tmp_path / "missing.json", bad):
        with pytest.raises(DataError, match=f.name):
            main(["--choose", str(f)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.json"]
