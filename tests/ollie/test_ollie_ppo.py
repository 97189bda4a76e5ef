"""PPO pieces against hand calculations: GAE with an episode end and a termination inside the
rollout, the clipped surrogate, and the GAIL rewards of D = P(policy)."""

import math

import pytest
import torch

from ollie.gail import disc_bce, gail_reward
from ollie.ppo import clipped_policy_loss, gae, sample_action
from shared.il.models import TanhGaussianPolicy


def test_gae_by_hand():
    # one env, 4 steps; the episode terminates at t=1 (next value 0), a new one runs t=2..3,
    # and the rollout stops mid-episode at t=3 (bootstrapped with V(s_4) = 4).
    g, lam = 0.9, 0.5
    r = torch.tensor([[1.0], [2.0], [0.5], [1.0]])
    v = torch.tensor([[0.5], [1.0], [2.0], [3.0]])
    v_next = torch.tensor([[1.0], [0.0], [3.0], [4.0]])
    ends = torch.tensor([[False], [True], [False], [False]])
    d3 = 1.0 + 0.9 * 4.0 - 3.0  # 1.6
    d2 = 0.5 + 0.9 * 3.0 - 2.0  # 1.2
    d1 = 2.0 + 0.0 - 1.0  # 1.0
    d0 = 1.0 + 0.9 * 1.0 - 0.5  # 1.4
    a3 = d3
    a2 = d2 + g * lam * a3
    a1 = d1  # the episode ended: nothing from t=2 flows back
    a0 = d0 + g * lam * a1
    adv, ret = gae(r, v, v_next, ends, g, lam)
    torch.testing.assert_close(adv[:, 0], torch.tensor([a0, a1, a2, a3]))
    torch.testing.assert_close(ret, adv + v)


def test_gae_lambda_one_is_the_discounted_return():
    r = torch.ones(5, 2)
    v = torch.zeros(5, 2)
    adv, _ = gae(r, v, torch.zeros(5, 2), torch.zeros(5, 2, dtype=torch.bool), 0.5, 1.0)
    assert adv[0, 0].item() == pytest.approx(sum(0.5 ** k for k in range(5)))


def test_clipped_loss_by_hand():
    eps = 0.2
    logp_old = torch.zeros(4)
    ratio = torch.tensor([1.5, 0.5, 1.1, 0.7])
    adv = torch.tensor([1.0, 1.0, -2.0, -1.0])
    # per row: min(ρA, clip(ρ)A): 1.5 -> min(1.5, 1.2) = 1.2; 0.5 -> min(0.5, 0.8) = 0.5;
    # 1.1, A=-2 -> min(-2.2, -2.2) = -2.2; 0.7, A=-1 -> min(-0.7, -0.8) = -0.8
    expected = -(1.2 + 0.5 - 2.2 - 0.8) / 4
    loss = clipped_policy_loss(torch.log(ratio), logp_old, adv, eps)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_rewards_and_bce_follow_the_policy_is_one_convention():
    logit = torch.tensor([-2.0, 0.0, 2.0])  # D = σ(logit) = P(policy)
    D = torch.sigmoid(logit)
    torch.testing.assert_close(gail_reward(logit, "positive"), -torch.log(D))
    torch.testing.assert_close(gail_reward(logit, "negative"), torch.log(1 - D))
    # expert-like (low D) earns more under both
    assert (gail_reward(logit, "positive").diff() < 0).all()
    assert (gail_reward(logit, "negative").diff() < 0).all()
    assert disc_bce(torch.tensor([0.0]), torch.tensor([0.0])).item() == pytest.approx(
        2 * math.log(2))


def test_sampled_log_prob_is_the_policy_density():
    pol = TanhGaussianPolicy(3, 2, 16)
    s = torch.randn(64, 3)
    a, logp = sample_action(pol, s, torch.Generator().manual_seed(0))
    assert a.abs().max() < 1
    torch.testing.assert_close(logp, pol.log_prob(s, a))
