"""Weighted BC (Eq. 9): alpha weights, beta gating, the tanh-Gaussian log-likelihood, ILID prep."""

import numpy as np
import torch
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from offline_il_select.config import ILIDConfig, PolicyConfig
from offline_il_select.ilid import ILID
from offline_il_select.models import Discriminator, Normalizer, TanhGaussianPolicy
from offline_il_select.wbc import bc_loss, importance_weight, weighted_bc_loss


def test_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    pol = TanhGaussianPolicy(5, 3, hidden=16)
    s, a = torch.randn(64, 5), torch.rand(64, 3) * 1.8 - 0.9
    mean, log_std = pol.dist_params(s)
    ref = TransformedDistribution(Normal(mean, log_std.exp()), TanhTransform()).log_prob(a).sum(-1)
    torch.testing.assert_close(pol.log_prob(s, a), ref, rtol=1e-4, atol=1e-4)


def test_importance_weight_closed_form_and_clip_range():
    d = torch.tensor([0.1, 0.5, 0.9])
    torch.testing.assert_close(importance_weight(d), torch.tensor([1 / 9, 1.0, 9.0]))
    disc = Discriminator(4, 8, (0.1, 0.9))
    with torch.no_grad():
        disc.net[-1].bias.fill_(100.0)  # saturate: output must stay clipped
    w = importance_weight(disc(torch.randn(10, 4)))
    assert torch.allclose(w, torch.full((10,), 9.0))


def test_weighted_loss_equals_manual_and_beta_gates_gradient():
    torch.manual_seed(1)
    pol = TanhGaussianPolicy(4, 2, hidden=16)
    s_u, a_u, s_s, a_s = torch.randn(8, 4), torch.rand(8, 2) - 0.5, torch.randn(8, 4), \
        torch.rand(8, 2) - 0.5
    alpha, beta = torch.rand(8) * 3, torch.tensor([1.0, 0, 1, 0, 0, 0, 1, 0])
    loss = weighted_bc_loss(pol, s_u, a_u, alpha, s_s, a_s, beta)
    manual = -(alpha * pol.log_prob(s_u, a_u)).mean() - (beta * pol.log_prob(s_s, a_s)).mean()
    torch.testing.assert_close(loss, manual)
    # beta = 0 on a sample: its action does not influence the gradient at all.
    a_s2 = a_s.clone()
    a_s2[beta == 0] = 0.7
    g1 = torch.autograd.grad(weighted_bc_loss(pol, s_u, a_u, alpha, s_s, a_s, beta),
                             list(pol.parameters()))
    g2 = torch.autograd.grad(weighted_bc_loss(pol, s_u, a_u, alpha, s_s, a_s2, beta),
                             list(pol.parameters()))
    for x, y in zip(g1, g2):
        torch.testing.assert_close(x, y)
    # ... while changing a beta = 1 sample does.
    a_s2[0] = -0.7
    g3 = torch.autograd.grad(weighted_bc_loss(pol, s_u, a_u, alpha, s_s, a_s2, beta),
                             list(pol.parameters()))
    assert any(not torch.allclose(x, y) for x, y in zip(g1, g3))
    torch.testing.assert_close(bc_loss(pol, s_u, a_u), -pol.log_prob(s_u, a_u).mean())


def _synthetic():
    """Expert states near +3 in dim 0; D_b episodes walk from -3 towards +3 or away from it."""
    rng = np.random.default_rng(0)
    S, A = 2, 1
    e_obs = np.c_[3 + 0.1 * rng.standard_normal(200), rng.standard_normal(200)]
    expert = {"observations": e_obs, "actions": np.full((200, A), 0.5),
              "next_observations": e_obs, "rewards": np.ones(200),
              "terminals": np.zeros(200, bool), "timeouts": np.r_[np.zeros(199, bool), True]}
    parts = []
    for ep in range(40):
        good = ep % 2 == 0  # good episodes move right into the expert region, bad ones left
        x = -3 + (np.arange(31) * 0.2 if good else -np.arange(31) * 0.2)
        obs = np.c_[x, rng.standard_normal(31)]
        parts.append({"observations": obs[:-1], "next_observations": obs[1:],
                      "actions": np.full((30, A), 0.5 if good else -0.5), "rewards": np.zeros(30),
                      "terminals": np.zeros(30, bool), "timeouts": np.r_[np.zeros(29, bool), True]})
    imperfect = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return expert, imperfect, S


def test_ilid_prepare_selects_transitions_leading_to_expert_states():
    expert, imperfect, S = _synthetic()
    s_all = np.concatenate([expert["observations"], imperfect["observations"]])
    norm = Normalizer(torch.as_tensor(s_all.mean(0)), torch.as_tensor(s_all.std(0)))
    cfg = ILIDConfig(rollback=5, disc_steps=300, disc_hidden=32, disc_lr=3e-3, disc_batch=64)
    ilid = ILID(expert, imperfect, norm, cfg, PolicyConfig(batch_size=32, hidden=16))
    stats = ilid.prepare(torch.Generator().manual_seed(0))
    sel = ilid.artifacts["selected"].numpy()
    good_rows = np.repeat(np.arange(40) % 2 == 0, 30)
    assert stats["n_selected"] > 0
    assert not sel[~good_rows].any()  # episodes moving away never reach expert-like states
    # Selected good transitions are the last ones before the expert region (within K steps).
    assert sel[good_rows].reshape(20, 30)[:, -1].all()
    assert not sel[good_rows].reshape(20, 30)[:, 0].any()
    # beta is 0 exactly where the selected transition's own state is expert-like.
    d_state = ilid.artifacts["d_state"].numpy()  # d(s) of the selected transitions' states
    np.testing.assert_array_equal(ilid.artifacts["beta"].numpy(), (d_state <= 0.4).astype(float))
    loss = ilid.loss(TanhGaussianPolicy(S, 1, 16, norm), torch.Generator().manual_seed(1))
    assert torch.isfinite(loss)


def test_precomputed_weights_equal_per_batch_discriminator_outputs():
    """prepare() fixes alpha over D_u and beta over D_s once; loss() must equal the loss computed
    with both discriminators run on the sampled batch itself (two separate policy forwards)."""
    expert, imperfect, S = _synthetic()
    s_all = np.concatenate([expert["observations"], imperfect["observations"]])
    norm = Normalizer(torch.as_tensor(s_all.mean(0)), torch.as_tensor(s_all.std(0)))
    cfg = ILIDConfig(rollback=5, disc_steps=300, disc_hidden=32, disc_lr=3e-3, disc_batch=64)
    B = 64
    ilid = ILID(expert, imperfect, norm, cfg, PolicyConfig(batch_size=B, hidden=16))
    ilid.prepare(torch.Generator().manual_seed(0))
    art = ilid.artifacts
    assert len(art["s_s"]) > 0
    pol = TanhGaussianPolicy(S, 1, 16, norm)
    loss = ilid.loss(pol, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)  # the same draws as loss()
    iu = torch.randint(len(art["s_u"]), (B,), generator=gen)
    i_s = torch.randint(len(art["s_s"]), (B,), generator=gen)
    s_u, a_u, s_s, a_s = art["s_u"][iu], art["a_u"][iu], art["s_s"][i_s], art["a_s"][i_s]
    with torch.no_grad():
        d_sa = ilid.sa_disc(torch.cat([s_u, a_u], 1))
        alpha = d_sa / (1 - d_sa)
        beta = (ilid.state_disc(s_s) <= cfg.sigma).float()
    torch.testing.assert_close(art["alpha"][iu], alpha)
    torch.testing.assert_close(art["beta"][i_s], beta)
    manual = -(alpha * pol.log_prob(s_u, a_u)).mean() - (beta * pol.log_prob(s_s, a_s)).mean()
    torch.testing.assert_close(loss, manual)
    # Chunked whole-dataset prediction equals one plain forward.
    x = torch.as_tensor(s_all, dtype=torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(ilid.state_disc.predict(x, chunk=7), ilid.state_disc(x))
