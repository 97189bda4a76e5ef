"""Step 3's low-y cut (`extraction.cut_low_y`, `offline.extraction_y_cut`): rows below
cut × quantile_q(y over D_e) get weight 0, the others keep theirs, cut 0 is the plain y-weighted
BC bit for bit, and out-of-range settings are refused naming the key."""

import pytest
import torch

from ollie.config import load_train_config
from ollie.data import build_data, state_stats
from ollie.extraction import cut_low_y, extraction_loss
from ollie.offline import OLLIEPretrainer
from shared.errors import ConfigError
from shared.il.models import Normalizer, TanhGaussianPolicy

TINY = "configs/ollie/tiny.yaml"


def test_cut_by_hand():
    # y over D_e = 10, 20, ..., 210: its 5th percentile (linear, position 0.05 · 20 = 1) is 20;
    # cut 0.5 puts the threshold at 10, and a row exactly at it is kept
    y_e = torch.arange(1, 22, dtype=torch.float32) * 10
    y = torch.tensor([5.0, 9.99, 10.0, 40.0, 200.0])
    w, thr = cut_low_y(y, y_e, 0.5, 0.05)
    assert thr == pytest.approx(10.0)
    assert w.tolist() == [0.0, 0.0, 10.0, 40.0, 200.0]
    kept = w > 0
    torch.testing.assert_close(w[kept] / w[kept].sum(), y[kept] / y[kept].sum())


def test_cut_zero_is_y_itself():
    y = torch.rand(50) * 1e-3
    w, thr = cut_low_y(y, y[:5], 0.0, 0.05)
    assert w is y and thr == 0.0


def test_cut_of_one_at_quantile_zero_keeps_every_expert_row():
    y_e = torch.tensor([3.0, 1.0, 2.0])
    w, thr = cut_low_y(torch.cat([y_e, torch.tensor([0.5, 0.99])]), y_e, 1.0, 0.0)
    assert thr == 1.0 and w.tolist() == [3.0, 1.0, 2.0, 0.0, 0.0]


@pytest.fixture(scope="module")
def tiny():
    cfg = load_train_config(TINY, ["online.env_steps=0"])
    data = build_data(cfg.data)
    mean, std = state_stats(data)
    return cfg, data, Normalizer(torch.as_tensor(mean), torch.as_tensor(std))


def _pretrainer(tiny, overrides):
    _, data, norm = tiny
    cfg = load_train_config(TINY, ["online.env_steps=0", *overrides])
    torch.manual_seed(0)
    p = OLLIEPretrainer(data, norm, cfg.offline)
    gen = torch.Generator().manual_seed(0)
    for i in range(p.prep_steps):
        p.prep_step(i, gen)
    S, A = p.s_o.shape[1], p.a_o.shape[1]
    return p, TanhGaussianPolicy(S, A, 16, norm)


def test_cut_zero_is_the_plain_extraction_bit_for_bit(tiny):
    """With the cut at 0 (the default) each step's loss is the one y-weighted BC computes from y
    directly, in both batching modes."""
    for mode in ("uniform", "resample"):
        p, pol = _pretrainer(tiny, [f"offline.extraction={mode}"])
        assert p.cfg.extraction_y_cut == 0.0
        y, B = p.weights(), p.cfg.policy_batch
        assert p.extraction_weights() is y
        g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
        for _ in range(3):
            got = p.loss(pol, g1)
            if mode == "uniform":
                idx = torch.randint(len(p.s_o), (B,), generator=g2)
                w = y[idx]
            else:
                cdf = torch.cumsum(y.double(), 0)
                u = torch.rand(B, generator=g2, dtype=torch.float64) * cdf[-1]
                idx = torch.searchsorted(cdf, u, right=True).clamp_max(len(cdf) - 1)
                w = torch.ones(B)
            ref = extraction_loss(pol.log_prob(p.s_o[idx], p.a_o[idx]), w)
            assert torch.equal(got, ref)


def test_cut_rows_carry_no_loss_in_either_batching_mode(tiny):
    for mode in ("uniform", "resample"):
        p, pol = _pretrainer(tiny, [f"offline.extraction={mode}", "offline.extraction_y_cut=1",
                                    "offline.extraction_y_cut_quantile=0.5"])
        n_e = len(p.x_e)
        # y by hand: D_e's rows 1..n_e (median (n_e+1)/2), every D_s row below it except one
        y = torch.cat([torch.arange(1, n_e + 1, dtype=torch.float32),
                       torch.full((len(p.s_o) - n_e,), 0.01)])
        y[-1] = float(n_e)
        p.y_o, p.stats = y, {}
        w = p.extraction_weights()
        thr = float(torch.quantile(y[:n_e].double(), 0.5))
        assert p.stats["y_cut_threshold"] == pytest.approx(thr)
        assert torch.equal(w == 0, y < thr)
        assert p.stats["y_cut_rows_imperfect"] == len(p.s_o) - n_e - 1
        assert p.stats["y_cut_rows_expert"] == int((y[:n_e] < thr).sum())
        # uniform batches weigh the cut rows 0; resampled batches never draw them
        g = torch.Generator().manual_seed(2)
        for _ in range(3):
            state = g.get_state()
            loss = p.loss(pol, g)
            g2 = torch.Generator()
            g2.set_state(state)
            if mode == "uniform":
                idx = torch.randint(len(p.s_o), (p.cfg.policy_batch,), generator=g2)
                assert torch.equal(loss, extraction_loss(
                    pol.log_prob(p.s_o[idx], p.a_o[idx]), w[idx]))
            else:
                cdf = torch.cumsum(w.double(), 0)
                u = torch.rand(p.cfg.policy_batch, generator=g2, dtype=torch.float64) * cdf[-1]
                idx = torch.searchsorted(cdf, u, right=True).clamp_max(len(cdf) - 1)
                assert (w[idx] > 0).all()
                assert torch.equal(loss, extraction_loss(
                    pol.log_prob(p.s_o[idx], p.a_o[idx]), torch.ones(len(idx))))


@pytest.mark.parametrize("key, value", [
    ("extraction_y_cut", "-0.1"), ("extraction_y_cut", "1.5"), ("extraction_y_cut", "nan"),
    ("extraction_y_cut_quantile", "-0.01"), ("extraction_y_cut_quantile", "2"),
])
def test_out_of_range_settings_name_the_key(key, value):
    with pytest.raises(ConfigError, match=f"offline.{key}"):
        load_train_config(TINY, [f"offline.{key}={value}"])


def test_a_run_with_the_cut_reports_what_it_cut(tiny):
    from ollie.train import fit

    _, data, _ = tiny
    cfg = load_train_config(TINY, ["online.env_steps=0", "offline.extraction_y_cut=1"])
    st = fit(cfg, data)["offline_stats"]
    assert st["y_cut_threshold"] > 0 and 0 <= st["y_cut_mass"] < 1
    assert 0 <= st["y_cut_rows_expert"] <= len(data.expert["actions"])
    plain = fit(load_train_config(TINY, ["online.env_steps=0"]), data)["offline_stats"]
    assert "y_cut_threshold" not in plain


def test_cut_refuses_a_y_that_is_not_finite():
    """A diverged saddle point (NaN or inf in y) is an error with the cut on, not a silent cut of
    every row (a NaN threshold) or of the NaN rows; with the cut off y passes through as before."""
    y = torch.tensor([1.0, float("nan"), 3.0])
    with pytest.raises(ValueError, match="extraction_y_cut"):
        cut_low_y(y, torch.tensor([1.0, 3.0]), 0.1, 0.05)
    with pytest.raises(ValueError, match="not finite"):
        cut_low_y(torch.tensor([1.0, float("inf")]), torch.tensor([1.0]), 0.1, 0.05)
    assert cut_low_y(y, y, 0.0, 0.05)[0] is y


def test_set_extraction_rebuilds_step_3_from_the_new_cut_and_y(tiny):
    """Re-targeting step 3 on trained stages 1-2: a new cut or new y gives exactly the weights
    `cut_low_y` computes from them, never the cached ones, in both batching modes."""
    import dataclasses

    for mode in ("uniform", "resample"):
        p, pol = _pretrainer(tiny, [f"offline.extraction={mode}"])
        y, n_e = p.weights(), len(p.x_e)
        assert p.extraction_weights() is y
        g = torch.Generator().manual_seed(0)
        p.loss(pol, g)  # fills the resampling table in resample mode
        cut_cfg = dataclasses.replace(p.cfg, extraction_y_cut=1.0, extraction_y_cut_quantile=0.5)
        p.set_extraction(cfg=cut_cfg)
        assert p.cfg is cut_cfg and p.cdf is None
        ref, _ = cut_low_y(y, y[:n_e], 1.0, 0.5)
        assert torch.equal(p.extraction_weights(), ref) and (ref == 0).any()
        assert "y_cut_threshold" in p.stats
        p.loss(pol, g)
        if mode == "resample":  # the table follows the cut weights
            torch.testing.assert_close(p.cdf, torch.cumsum(ref.double(), 0))
        y2 = y * torch.linspace(0.5, 2.0, len(y))
        p.set_extraction(y=y2)
        assert p.cdf is None and "y_cut_threshold" not in p.stats
        assert p.stats["y_mean_expert"] == pytest.approx(float(y2[:n_e].mean()))
        ref2, _ = cut_low_y(y2, y2[:n_e], 1.0, 0.5)
        assert p.weights() is y2 and torch.equal(p.extraction_weights(), ref2)
        p.loss(pol, g)
        if mode == "resample":  # and the new y's
            torch.testing.assert_close(p.cdf, torch.cumsum(ref2.double(), 0))
        with pytest.raises(ValueError, match="expected"):
            p.set_extraction(y=y2[:-1])
        with pytest.raises(ValueError, match="disc_steps"):  # stages 1-2 are not re-targeted
            p.set_extraction(cfg=dataclasses.replace(p.cfg, disc_steps=p.cfg.disc_steps + 1))
