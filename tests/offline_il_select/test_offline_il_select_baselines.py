"""ISW-BC (Li et al., NeurIPS 2023; its code liziniu/ISWBC) against its defining properties: the
weights c / (1 - c) of a discriminator of D_e vs D_u = D_e ∪ D_b estimate d_e / d_u, so on data
where D_b is far from D_e and many times larger they put the weighted-BC loss on D_e's rows; the
gradient penalty is the two-sided (||grad logit|| - 1)^2 of its code."""

import numpy as np
import pytest
import torch

from offline_il_select.baselines import ISWBC
from offline_il_select.config import BaselineConfig, ILIDConfig, PolicyConfig, TrainConfig
from offline_il_select.discriminator import isw_penalty
from offline_il_select.models import Normalizer, TanhGaussianPolicy


def _separable(n_e: int = 50, n_b: int = 20_000):
    """D_e: n_e expert pairs near s = +2, a = 0.5; D_b: n_b pairs of random states and actions
    around s = -2 (400x as many rows, as D4RL's 1,000 random episodes against one expert one)."""
    rng = np.random.default_rng(0)

    def part(n, centre, act):
        s = rng.normal(centre, 0.5, size=(n, 3)).astype(np.float32)
        a = act(n).astype(np.float32)
        return {"observations": s, "actions": a, "next_observations": s,
                "terminals": np.zeros(n, bool), "timeouts": np.zeros(n, bool)}

    expert = part(n_e, 2.0, lambda n: np.full((n, 1), 0.5))
    imperfect = part(n_b, -2.0, lambda n: rng.uniform(-1, 1, (n, 1)))
    s = np.concatenate([expert["observations"], imperfect["observations"]])
    return expert, imperfect, Normalizer(torch.as_tensor(s.mean(0)), torch.as_tensor(s.std(0)))


@pytest.mark.parametrize("penalty", [1.0, 0.0])
def test_iswbc_weights_put_the_loss_on_the_expert_rows(penalty):
    """With D_b 400x D_e and separable, D_e's rows must carry most of the loss weight (ideal
    weights d_e / d_u: all of it). A [0.1, 0.9] output clip (ILID's) bounds the weights to
    [1/9, 9] and D_e's share to 81 n_e / (81 n_e + n_b) = 0.17 here: a policy trained on it
    imitates D_b."""
    expert, imperfect, norm = _separable()
    icfg = ILIDConfig(disc_steps=300, disc_hidden=32, disc_lr=3e-3, disc_batch=64)
    torch.manual_seed(0)
    isw = ISWBC(expert, imperfect, norm, PolicyConfig(batch_size=32, hidden=16),
                BaselineConfig(iswbc_grad_penalty=penalty), icfg)
    st = isw.prepare(torch.Generator().manual_seed(0))
    n_e = len(expert["observations"])
    assert st["weight_share_expert"] == pytest.approx(
        float(isw.w[:n_e].sum() / isw.w.sum()), rel=1e-5)
    assert st["weight_share_expert"] > 0.6
    # ILID's clip: a D_b row's weight >= 1/81 of an expert row's
    assert st["weight_median_imperfect"] < 0.005 * st["weight_mean_expert"]
    assert float(isw.w.mean()) == pytest.approx(1.0, rel=1e-4)  # self-normalised
    assert torch.isfinite(isw.loss(TanhGaussianPolicy(3, 1, 16, norm),
                                   torch.Generator().manual_seed(1)))


def test_isw_penalty_is_the_two_sided_gradient_penalty():
    """For a linear logit u . x the gradient is u everywhere: the penalty is (||u|| - 1)^2 at any
    rows, per member for (K, B, D) rows."""
    g = torch.Generator().manual_seed(0)
    xp, xn = torch.randn(2, 16, 4, generator=g), torch.randn(2, 16, 4, generator=g)
    w = torch.rand(2, 16, 1, generator=g)
    u = torch.tensor([[0.6, 0.8, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]], requires_grad=True)
    pen = isw_penalty(lambda x: (x * u[:, None]).sum(-1), xp, xn, xn.flip(1), w)
    torch.testing.assert_close(pen, torch.tensor([0.0, 1.0]), atol=1e-6, rtol=0)
    pen.sum().backward()  # differentiable in the parameters: d/du (||u|| - 1)^2
    torch.testing.assert_close(u.grad[1], torch.tensor([2.0, 0.0, 0.0, 0.0]), atol=1e-5, rtol=0)
    # where the gradient is 0 (a flat logit) the penalty is 1 and its gradient stays finite
    z = torch.zeros(4, requires_grad=True)
    pen0 = isw_penalty(lambda x: (x * z).sum(-1), xp[0], xn[0], xn[0], w[0])
    pen0.backward()
    assert pen0.item() == pytest.approx(1.0, abs=1e-5) and torch.isfinite(z.grad).all()


def test_iswbc_clip_is_validated():
    cfg = TrainConfig()
    cfg.baselines.iswbc_clip = (0.1, 0.1)
    with pytest.raises(ValueError, match="iswbc_clip"):
        cfg.validate()


@pytest.mark.parametrize("stratified", [True, False])
def test_iswbc_terms_estimate_the_weighted_loss_over_the_union(stratified):
    """Whatever the sampler, the terms' expected loss is ISW-BC's -1/|D_u| sum_{D_u} w log pi
    (computed here over every row), and `loss()` draws from those terms: its mean over many
    draws approaches the same value. Stratified, every batch holds B rows of D_e."""
    expert, imperfect, norm = _separable(n_e=40, n_b=2_000)
    torch.manual_seed(0)
    isw = ISWBC(expert, imperfect, norm, PolicyConfig(batch_size=64, hidden=16),
                BaselineConfig(iswbc_stratified=stratified), ILIDConfig(disc_steps=5))
    isw.w = torch.rand(len(isw.s_u)) * 3  # any fixed weights
    pol = TanhGaussianPolicy(3, 1, 16, norm)
    with torch.no_grad():
        logp = pol.log_prob(isw.s_u, isw.a_u)
        exact = -(isw.w * logp).mean()
        terms = isw.terms()
        from_terms = -sum((torch.as_tensor(w) * logp[torch.as_tensor(r)]).mean()
                          for r, w in terms)
        torch.testing.assert_close(from_terms, exact, rtol=1e-5, atol=1e-6)
        g = torch.Generator().manual_seed(0)
        draws = torch.stack([isw.loss(pol, g) for _ in range(3000)])
    assert abs(draws.mean().item() - exact.item()) < 4 * draws.std().item() / 3000 ** 0.5
    assert len(terms) == (2 if stratified else 1)
    if stratified:
        np.testing.assert_array_equal(terms[0][0], np.arange(40))  # D_e's rows, a batch each
