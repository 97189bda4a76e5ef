"""BCG->SCG network shapes and the region-focused loss against closed forms."""

import numpy as np
import pytest
import torch

from twscardio.config import LossConfig, NetConfig, TrainConfig
from twscardio.models import BCG2SCGNet, RegionFocusedLoss, local_pearson, region_weights


def test_region_weights_match_slow_reference():
    fs, n = 100.0, 300
    ao, ac = np.array([0.5, 1.4]), np.array([0.8, 1.7])
    w = region_weights(n, fs, ao, ac, lam=4.0, sigma_s=0.02)
    t = np.arange(n) / fs
    ref = 1 + 4 * sum(np.exp(-0.5 * ((t - c) / 0.02) ** 2) for c in np.r_[ao, ac])
    assert np.allclose(w, ref, atol=2e-3)  # atoms are truncated at 4 sigma


def test_plain_l1_is_the_ablation():
    p, y = torch.randn(4, 50), torch.randn(4, 50)
    loss = RegionFocusedLoss(LossConfig(kind="l1"), fs=100.0)(p, y)
    assert torch.isclose(loss, torch.nn.functional.l1_loss(p, y))


def test_region_loss_closed_form():
    p, y, w = torch.randn(3, 40), torch.randn(3, 40), torch.rand(3, 40) + 1
    got = RegionFocusedLoss(LossConfig(kind="region", corr_weight=0.5, local_r_weight=0),
                            fs=100.0)(p, y, w)
    r = np.array([np.corrcoef(p[i], y[i])[0, 1] for i in range(3)])
    ref = float((w * (p - y).abs()).sum() / w.sum()) + 0.5 * np.mean(1 - r)
    assert float(got) == pytest.approx(ref, rel=1e-5)
    # errors inside the AO/AC regions cost more than the same error elsewhere
    loss = RegionFocusedLoss(LossConfig(kind="region", corr_weight=0.0, local_r_weight=0),
                             fs=100.0)
    y0 = torch.zeros(1, 40)
    w0 = torch.ones(1, 40)
    w0[0, 10] = 5.0
    e_in, e_out = y0.clone(), y0.clone()
    e_in[0, 10], e_out[0, 30] = 1.0, 1.0
    assert loss(e_in, y0, w0) > loss(e_out, y0, w0)


def test_local_pearson_matches_a_loop_over_windows():
    g = torch.Generator().manual_seed(0)
    p, y = torch.randn(2, 37, generator=g), torch.randn(2, 37, generator=g)
    r, v = local_pearson(p, y, 10, 3)
    starts = range(0, 37 - 10 + 1, 3)
    assert r.shape == v.shape == (2, len(starts))
    for b in range(2):
        for i, s in enumerate(starts):
            pw, yw = p[b, s:s + 10].numpy(), y[b, s:s + 10].numpy()
            assert float(r[b, i]) == pytest.approx(np.corrcoef(pw, yw)[0, 1], abs=1e-5)
            assert float(v[b, i]) == pytest.approx(np.var(yw), rel=1e-5)


def test_local_r_term_closed_form_and_what_it_rewards():
    g = torch.Generator().manual_seed(1)
    p, y, w = torch.randn(3, 80, generator=g), torch.randn(3, 80, generator=g), torch.ones(3, 80)
    cfg = LossConfig(kind="region", corr_weight=0.5, local_r_weight=2.0, local_r_s=0.2,
                     local_r_hop_s=0.05)
    got = float(RegionFocusedLoss(cfg, fs=100.0)(p, y, w))
    base = float(RegionFocusedLoss(LossConfig(kind="region", corr_weight=0.5, local_r_weight=0),
                                   fs=100.0)(p, y, w))
    r, v = [], []
    for b in range(3):
        for s in range(0, 80 - 20 + 1, 5):
            pw, yw = p[b, s:s + 20].numpy(), y[b, s:s + 20].numpy()
            r.append(np.corrcoef(pw, yw)[0, 1])
            v.append(np.var(yw))
    r, v = np.array(r), np.array(v)
    assert got == pytest.approx(base + 2.0 * np.sum((1 - r) * v) / np.sum(v), rel=1e-5)
    # a prediction right in shape beat by beat but with a per-beat gain (a crop-level r below 1)
    # costs the term nothing; the same prediction shifted by a few samples costs it
    t = torch.arange(200) / 100.0
    ph = t % 0.5
    beat = torch.exp(-0.5 * ((ph - 0.1) / 0.02) ** 2) - torch.exp(-0.5 * ((ph - 0.2) / 0.03) ** 2)
    gain = 1 + 0.8 * (torch.floor(t / 0.5) % 2)
    term = RegionFocusedLoss(LossConfig(kind="region", corr_weight=0.0, local_r_weight=1.0,
                                        local_r_s=0.2, local_r_hop_s=0.1), fs=100.0)
    ones = torch.ones(1, 200)
    zero = RegionFocusedLoss(LossConfig(kind="region", corr_weight=0.0, local_r_weight=0),
                             fs=100.0)
    y1 = beat[None]
    scaled = (beat * gain)[None]
    only_local = float(term(scaled, y1, ones)) - float(zero(scaled, y1, ones))
    shifted = torch.roll(y1, 4, 1)
    assert only_local < 0.02  # windows straddling a gain change read r just below 1
    assert float(term(shifted, y1, ones)) - float(zero(shifted, y1, ones)) > 0.2


def test_squared_region_error_closed_form_and_keys():
    from twscardio.train import _data_key, _model_key
    p, y, w = torch.randn(2, 30), torch.randn(2, 30), torch.rand(2, 30) + 1
    got = RegionFocusedLoss(LossConfig(kind="region", corr_weight=0.0, local_r_weight=0,
                                       err="l2"), fs=100.0)(p, y, w)
    assert float(got) == pytest.approx(float((w * (p - y) ** 2).sum() / w.sum()), rel=1e-6)
    l2 = TrainConfig(loss=LossConfig(err="l2"))
    assert _model_key(l2)["loss"]["err"] == "l2" and "err" not in _model_key(TrainConfig())["loss"]
    assert _data_key(l2, "train", 4) == _data_key(TrainConfig(), "train", 4)
    assert "err" not in _model_key(TrainConfig(loss=LossConfig(kind="l1", err="l2")))["loss"]


def test_correction_l1_closed_form_checks_and_keys():
    """lambda x mean |pred - prior| added to either loss kind; refused without a residual
    network or without the prior; off leaves the keys as they were, and the data never move."""
    from dataclasses import replace

    from twscardio.train import _data_key, _model_key
    p, y, w, q = (torch.randn(2, 30) for _ in range(4))
    w = w.abs() + 1
    for kind in ("region", "l1"):
        base = LossConfig(kind=kind, local_r_weight=0)
        on = RegionFocusedLoss(replace(base, correction_l1=0.7), fs=100.0)(p, y, w, q)
        off = RegionFocusedLoss(base, fs=100.0)(p, y, w, q)  # the prior unused when off
        assert float(on) == pytest.approx(float(off + 0.7 * (p - q).abs().mean()), rel=1e-6)
    with pytest.raises(ValueError, match="needs the prior"):
        RegionFocusedLoss(LossConfig(correction_l1=0.5), fs=100.0)(p, y, w)
    with pytest.raises(ValueError, match="net.residual_prior"):
        TrainConfig(loss=LossConfig(correction_l1=0.5)).validate()
    res = TrainConfig(net=NetConfig(residual_prior=True))
    sparse = replace(res, loss=replace(res.loss, correction_l1=0.5))
    sparse.validate()
    assert "correction_l1" not in _model_key(res)["loss"]
    assert _model_key(sparse)["loss"]["correction_l1"] == 0.5
    assert _data_key(sparse, "train", 4) == _data_key(TrainConfig(), "train", 4)


def test_correction_l1_keeps_a_residual_network_at_its_prior_where_the_evidence_is_noise():
    """Target = prior + noise the input cannot predict: trained with the L1 prior on its
    correction, the residual network stays far nearer its prior than without it."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 18, 64, generator=g)
    y = x[:, -1] + 0.5 * torch.randn(16, 64, generator=g)
    size = {}
    for lam in (0.0, 1.0):
        torch.manual_seed(0)
        net = BCG2SCGNet(18, NetConfig(channels=8, dilations=[1, 2], residual_prior=True))
        loss_fn = RegionFocusedLoss(LossConfig(kind="l1", correction_l1=lam), fs=100.0)
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        for _ in range(150):
            loss = loss_fn(net(x), y, None, x[:, -1])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            size[lam] = float((net(x) - x[:, -1]).abs().mean())
    assert size[1.0] < 0.25 * size[0.0], size


def test_local_r_settings_are_checked_before_training():
    with pytest.raises(ValueError, match="loss.local_r_s"):
        TrainConfig(loss=LossConfig(local_r_weight=1.0, local_r_s=3.0)).validate()
    with pytest.raises(ValueError, match="loss.local_r_s"):
        TrainConfig(loss=LossConfig(local_r_weight=1.0, local_r_s=0.001)).validate()
    TrainConfig(loss=LossConfig(local_r_weight=0.0, local_r_s=3.0)).validate()  # off: unused
    with pytest.raises(ValueError, match="loss.local_r_hop_s"):
        TrainConfig(loss=LossConfig(local_r_weight=1.0, local_r_hop_s=0.001)).validate()
    TrainConfig(loss=LossConfig(kind="l1", local_r_weight=1.0, local_r_s=3.0)).validate()  # unused
    with pytest.raises(ValueError, match="needs 60 samples"):
        RegionFocusedLoss(LossConfig(local_r_weight=1.0), fs=100.0)(
            torch.zeros(1, 30), torch.zeros(1, 30), torch.ones(1, 30))


def test_the_term_off_leaves_the_network_keys_as_they_were():
    from twscardio.train import _data_key, _model_key
    off = TrainConfig(loss=LossConfig(local_r_weight=0.0))
    on = TrainConfig(loss=LossConfig(local_r_weight=1.0))
    l1 = TrainConfig(loss=LossConfig(kind="l1", local_r_weight=1.0))
    assert "local_r_weight" not in _model_key(off)["loss"]
    assert "local_r_weight" not in _model_key(l1)["loss"]  # unused by the plain-L1 ablation
    assert _model_key(l1) == _model_key(TrainConfig(loss=LossConfig(kind="l1", local_r_weight=0)))
    assert _model_key(on)["loss"]["local_r_weight"] == 1.0
    assert _data_key(on, "train", 4) == _data_key(off, "train", 4)  # the data do not change


# the quick (d) network's validation window r must stay above this (measured: README)
SHIPPED_D_MIN_R = 0.4


def test_network_is_length_agnostic_and_non_autoregressive():
    net = BCG2SCGNet(17, NetConfig(channels=8, dilations=[1, 2]))
    for L in (100, 257):
        assert net(torch.randn(2, 17, L)).shape == (2, L)
    with pytest.raises(ValueError, match="expects"):
        net(torch.randn(17, 100))


def test_residual_prior_network_starts_at_its_prior_and_learns_a_correction():
    torch.manual_seed(0)
    net = BCG2SCGNet(18, NetConfig(channels=8, dilations=[1, 2], residual_prior=True))
    x = torch.randn(2, 18, 120)
    assert torch.equal(net(x), x[:, -1])  # untrained: the prior channel exactly
    plain = BCG2SCGNet(18, NetConfig(channels=8, dilations=[1, 2]))
    assert not torch.allclose(plain(x), x[:, -1])
    # a few steps towards a target that is not the prior move the output off it
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    y = torch.roll(x[:, -1], 3, dims=1)
    before = float((net(x) - y).abs().mean())
    for _ in range(20):
        loss = (net(x) - y).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float((net(x) - y).abs().mean()) < before


def test_residual_prior_needs_the_prior_channel_and_keeps_the_keys_when_off():
    from dataclasses import replace

    from twscardio.config import TrainConfig
    from twscardio.train import _model_key

    with pytest.raises(ValueError, match="residual_prior"):
        TrainConfig(prior="none", net=NetConfig(residual_prior=True)).validate()
    with pytest.raises(ValueError, match="18 input channels"):
        BCG2SCGNet(17, NetConfig(channels=8, dilations=[1], residual_prior=True))
    base = TrainConfig()
    assert "residual_prior" not in _model_key(base)["net"]  # shipped weights keep their keys
    on = replace(base, net=replace(base.net, residual_prior=True))
    assert _model_key(on) != _model_key(base)


def test_shipped_quick_weights_match_the_quick_setting():
    """The bench's --quick arms find their trained weights in twscardio/weights/ (a change to
    the training data, the network or the quick setting changes the key: refresh them with
    `python -m twscardio.experiments.ship_weights`), and the region-loss network (d) reconstructs
    SCG on validation subjects it never saw: window r recomputed here, not read from its record."""
    import torch

    from shared.config import apply_overrides, from_dict, to_dict
    from twscardio.bench import QUICK, arm_configs
    from twscardio.config import BenchConfig
    from twscardio.models import load_model
    from twscardio.pipeline import normalise_windows
    from twscardio.train import WEIGHTS_DIR, model_file, windows

    bc = from_dict(BenchConfig, apply_overrides(to_dict(BenchConfig()),
                                                [f"{k}={v}" for k, v in QUICK.items()]))
    for arm, cfg in arm_configs(bc).items():
        path = model_file(cfg)
        assert path.parent == WEIGHTS_DIR, f"arm {arm}: no shipped weights for the quick setting"
        model, info = load_model(path)
        assert info["hist"]["n_params"] == sum(p.numel() for p in model.parameters())
        if arm != "d":
            continue
        assert info["hist"]["val"]["window_r_median"] > SHIPPED_D_MIN_R
        va = windows(cfg, "val", 4)  # the validation split's subjects (disjoint from training)
        with torch.no_grad():
            p = model(torch.from_numpy(normalise_windows(va["x"])).float()).numpy()
        pc, yc = p - p.mean(1, keepdims=True), va["y"] - va["y"].mean(1, keepdims=True)
        r = (pc * yc).sum(1) / (np.linalg.norm(pc, axis=1) * np.linalg.norm(yc, axis=1) + 1e-8)
        assert np.median(r) > SHIPPED_D_MIN_R, np.median(r)


def test_shipped_full_weights_match_the_full_setting():
    """The full bench's arms (3072 subjects x 60 s x 8000 steps, `python -m
    twscardio.experiments.ship_weights --full`) find their weights in twscardio/weights/ too,
    under keys of their own (not the quick ones), and each file's validation window r is the
    one recomputed here on the validation subjects (60-s recordings, whatever the training
    recordings' length), not only read from its record."""
    import torch

    from shared.config import apply_overrides, from_dict, to_dict
    from twscardio.bench import QUICK, arm_configs
    from twscardio.config import BenchConfig
    from twscardio.models import load_model
    from twscardio.pipeline import normalise_windows
    from twscardio.train import VAL_DURATION_S, WEIGHTS_DIR, model_file, validation_windows

    quick = from_dict(BenchConfig, apply_overrides(to_dict(BenchConfig()),
                                                   [f"{k}={v}" for k, v in QUICK.items()]))
    full, quick = arm_configs(BenchConfig()), arm_configs(quick)
    for arm, cfg in full.items():
        assert (cfg.n_subjects, cfg.sim.duration_s, cfg.steps) == (3072, 60.0, 8000)
        path = model_file(cfg)
        assert path.parent == WEIGHTS_DIR, f"arm {arm}: no shipped weights for the full setting"
        assert path != model_file(quick[arm])
        model, info = load_model(path)
        va = validation_windows(cfg, 4)
        assert len(va["x"]) == 4 * (int(VAL_DURATION_S / cfg.hop_s) - 1)
        with torch.no_grad():
            p = model(torch.from_numpy(normalise_windows(va["x"])).float()).numpy()
        pc, yc = p - p.mean(1, keepdims=True), va["y"] - va["y"].mean(1, keepdims=True)
        r = (pc * yc).sum(1) / (np.linalg.norm(pc, axis=1) * np.linalg.norm(yc, axis=1) + 1e-8)
        assert np.median(r) == pytest.approx(info["hist"]["val"]["window_r_median"], abs=1e-3)


def test_network_data_sets_are_the_bench_networks():
    """The probe that compares training data scores the very networks the bench uses: its
    "full" set is the full bench's, its "quick" set the `--quick` bench's (same weights files),
    a variant overrides the full setting's training only, and a malformed variant is refused."""
    from shared.config import apply_overrides, from_dict, to_dict
    from shared.errors import UserError
    from twscardio.bench import QUICK, arm_configs
    from twscardio.config import BenchConfig
    from twscardio.experiments.network_data import network_sets
    from twscardio.train import model_file

    sets = network_sets(["more:n_subjects=192,steps=10"])
    quick = from_dict(BenchConfig, apply_overrides(to_dict(BenchConfig()),
                                                   [f"{k}={v}" for k, v in QUICK.items()]))
    for name, bc in (("full", BenchConfig()), ("quick", quick)):
        for arm, cfg in arm_configs(bc).items():
            assert model_file(arm_configs(sets[name])[arm]) == model_file(cfg)
    more = sets["more"].train
    assert (more.n_subjects, more.steps, more.sim.duration_s) == (192, 10, 60.0)
    assert to_dict(sets["more"]) | {"train": None} == to_dict(BenchConfig()) | {"train": None}
    for bad in ("no_colon", ":steps=10", "full:steps=10"):
        with pytest.raises(UserError):
            network_sets([bad])


def test_network_data_arms_option():
    """`--arms` picks the arms the probe scores: c, d and the reference e (order kept, repeats
    dropped); anything else is refused."""
    from shared.errors import UserError
    from twscardio.experiments.network_data import parse_arms

    assert parse_arms("c,d") == ("c", "d")
    assert parse_arms("d") == ("d",)
    assert parse_arms(" d , d ") == ("d",)
    assert parse_arms("d,e") == ("d", "e")
    for bad in ("", "a", "b", "c,x", ","):
        with pytest.raises(UserError):
            parse_arms(bad)


def test_rest_share_sets_the_networks_rest_recordings_only(monkeypatch):
    from dataclasses import replace

    from twscardio.data import draw_conditions
    from twscardio.train import _data_key, _model_key, _timing_key
    cfg = TrainConfig()
    for share in (0.0, 0.3, 0.6, 1.0):
        rng = np.random.default_rng(0)
        rest = np.mean([draw_conditions(rng, cfg, share).motion_level == 0 for _ in range(2000)])
        assert rest == pytest.approx(share, abs=0.04)
    seen = []  # build_windows draws the network's recordings with cfg.rest_share

    def fake_simulate(sc, seed, subject=None):
        seen.append(sc.motion_level)
        raise StopIteration  # the conditions are all this test needs

    import twscardio.data as data
    monkeypatch.setattr(data, "simulate", fake_simulate)
    for share in (0.0, 1.0):
        seen.clear()
        with pytest.raises(StopIteration):
            data.build_windows(replace(cfg, rest_share=share), "train", 1)
        assert (seen[0] == 0.0) if share == 1.0 else (seen[0] > 0.0)  # either way: the pair
    rest60 = replace(cfg, rest_share=0.6)
    assert _timing_key(rest60) == _timing_key(cfg)  # the timing model's data do not use it
    assert _data_key(rest60, "train", 4) != _data_key(cfg, "train", 4)
    assert "rest_share" not in _model_key(cfg) and _model_key(rest60)["rest_share"] == 0.6
