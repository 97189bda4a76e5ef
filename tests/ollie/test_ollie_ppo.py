"""PPO pieces against hand calculations: GAE with an episode end and a termination inside the
rollout, the clipped surrogate, and the GAIL rewards of D = P(policy); log π of sampled actions
against the float64 density of the pre-tanh sample (saturated actions too), a PPO iteration
from a saturated policy, and the stops on non-finite actions and losses."""

import math

import numpy as np
import pytest
import torch

from ollie.gail import disc_bce, gail_reward
from ollie.ppo import clipped_policy_loss, gae, log_prob_pre_tanh, sample_action
from shared.errors import DataError
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



def _density(mean, log_std, u):
    """log π(tanh u) in float64 from the pre-tanh Gaussian (the reference)."""
    m, ls, u = (x.double() for x in (mean, log_std, u))
    z = (u - m) / ls.exp()
    return (-0.5 * z * z - ls - 0.5 * math.log(2 * math.pi)
            - torch.log1p(-torch.tanh(u) ** 2)).sum(-1)


def _saturated_policy(mean: float = 8.5, log_std: float = -5.0) -> TanhGaussianPolicy:
    """A policy whose first action's pre-tanh mean sits where float32 tanh rounds to 1."""
    torch.manual_seed(0)
    pol = TanhGaussianPolicy(3, 2, 16)
    with torch.no_grad():
        pol.net[-1].weight.mul_(0.01)
        pol.net[-1].bias.copy_(torch.tensor([mean, 0.0, log_std, -1.0]))
    return pol


def test_sampled_log_prob_is_the_policy_density():
    pol = TanhGaussianPolicy(3, 2, 16)
    s = torch.randn(64, 3)
    a, u, logp = sample_action(pol, s, torch.Generator().manual_seed(0))
    assert a.abs().max() < 1
    torch.testing.assert_close(a, torch.tanh(u))
    torch.testing.assert_close(logp, pol.log_prob(s, a))  # atanh is exact away from ±1
    torch.testing.assert_close(logp.double(), _density(*pol.dist_params(s), u), rtol=1e-5,
                               atol=1e-5)
    torch.testing.assert_close(log_prob_pre_tanh(pol, s, u), logp)


def test_log_prob_of_saturated_actions_is_the_density_of_the_sample():
    # float32 rounds tanh(8.5 ± 0.03) to exactly 1: recomputing log π from a (atanh of the
    # clamped action, u = 7.25) put the sample ~17,000 nats below its true density
    pol = _saturated_policy()
    s = torch.randn(256, 3)
    a, u, logp = sample_action(pol, s, torch.Generator().manual_seed(1))
    assert (a[:, 0] > 1 - 1e-6).all()  # beyond the clamp of atanh
    ref = _density(*pol.dist_params(s), u)
    assert torch.isfinite(logp).all()
    torch.testing.assert_close(logp.double(), ref, rtol=1e-4, atol=1e-2)
    assert (pol.log_prob(s, a).double() < ref - 1000).all()  # what a = tanh(u) alone gives


def _rollout(pol, T: int, N: int, gen: torch.Generator) -> dict:
    """A (T, N) rollout of `pol` on random 3-d states, never terminating, as `collect` stores it
    (actions, their pre-tanh samples and log π at them)."""
    s = torch.randn(T, N, 3)
    a, u, logp = sample_action(pol, s.reshape(T * N, 3), gen)
    return {"s": s, "a": a.reshape(T, N, 2), "u": u.reshape(T, N, 2),
            "logp": logp.reshape(T, N), "s_next": torch.randn(T, N, 3),
            "term": torch.zeros(T, N, dtype=torch.bool), "end": torch.zeros(T, N, dtype=torch.bool)}


def test_ppo_iteration_from_a_saturated_policy_moves_it_little():
    """One GAIL + PPO iteration from a policy with saturated actions and σ = e^-5: log π at the
    stored u keeps the update's KL at PPO's scale (with log π recomputed from a it was ~10 and
    the ratio overflowed to inf, then NaN)."""
    from ollie.config import OnlineConfig
    from ollie.gail import OnlineState, ValueNet, _iteration
    from shared.il.models import Normalizer

    pol = _saturated_policy()
    gen = torch.Generator().manual_seed(2)
    roll = _rollout(pol, 64, 4, gen)
    norm = Normalizer(torch.zeros(3), torch.ones(3))
    value, disc = ValueNet(3, 16, norm), torch.nn.Linear(5, 1)
    disc_fn = torch.nn.Sequential(disc, torch.nn.Flatten(0))
    cfg = OnlineConfig(epochs=4, minibatch=64, disc_batch=64, value_warmup_epochs=1,
                       policy_lr=1e-4, target_kl=10.0)
    st = OnlineState(pol, value, disc_fn, torch.optim.Adam(pol.parameters(), lr=1e-4),
                     torch.optim.Adam(value.parameters(), lr=3e-4),
                     torch.optim.Adam(disc_fn.parameters(), lr=1e-4), gen)
    out = _iteration(st, roll, torch.randn(100, 5), cfg, warmup=True)
    assert all(torch.isfinite(p).all() for p in pol.parameters())
    assert out["approx_kl"] < 0.5


def test_clipped_loss_survives_an_overflowing_ratio():
    logp = torch.tensor([200.0, 0.0], requires_grad=True)
    loss = clipped_policy_loss(logp, torch.zeros(2), torch.tensor([-1.0, 1.0]), 0.2)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logp.grad).all()


class _Envs:
    """A vector env stand-in that records whether it was stepped."""

    def __init__(self):
        self.stepped = 0

    def step(self, a):
        self.stepped += 1
        raise AssertionError("the environment got an action")


def test_non_finite_actions_never_reach_the_environment():
    from ollie.gail import collect

    pol = TanhGaussianPolicy(3, 2, 16)
    with torch.no_grad():
        pol.net[0].weight[0, 0] = float("nan")
    envs = _Envs()
    with pytest.raises(DataError, match="arm X, iteration 3.*rollout step 0"):
        collect(envs, np.ones((2, 3)), pol, torch.Generator(), 4, "cpu", "arm X, iteration 3")
    assert envs.stepped == 0


def test_a_non_finite_loss_names_the_run():
    from ollie.gail import _finite

    with pytest.raises(DataError, match="naive_gail seed 2.*the value loss is not finite"):
        _finite(torch.tensor(float("nan")), "the value loss", "naive_gail seed 2")
    x = torch.ones(3)
    assert _finite(x, "x", "here") is x


def _sharp_iteration(kl_check: str, target_kl: float = 0.02) -> tuple[dict, int]:
    """One iteration from a sharp policy (σ = e^-4, unsaturated) -> stats, minibatches."""
    from ollie.config import OnlineConfig
    from ollie.gail import OnlineState, ValueNet, _iteration
    from shared.il.models import Normalizer

    pol = _saturated_policy(mean=0.5, log_std=-4.0)
    gen = torch.Generator().manual_seed(3)
    T, N = 128, 4
    roll = _rollout(pol, T, N, gen)
    norm = Normalizer(torch.zeros(3), torch.ones(3))
    torch.manual_seed(4)
    value = ValueNet(3, 16, norm)
    disc = torch.nn.Sequential(torch.nn.Linear(5, 1), torch.nn.Flatten(0))
    with torch.no_grad():  # a fixed D that rewards larger first actions: a coherent push
        disc[0].weight.copy_(torch.tensor([[0.0, 0.0, 0.0, -10.0, 0.0]]))
        disc[0].bias.zero_()
    cfg = OnlineConfig(epochs=5, minibatch=64, disc_batch=64, value_warmup_epochs=1,
                       target_kl=target_kl, kl_check=kl_check, gamma=0.01, gae_lambda=0.0)
    st = OnlineState(pol, value, disc, torch.optim.Adam(pol.parameters(), lr=1e-3),
                     torch.optim.Adam(value.parameters(), lr=3e-4),
                     torch.optim.Adam(disc.parameters(), lr=0.0), gen)
    return _iteration(st, roll, torch.randn(100, 5), cfg, warmup=True), T * N // 64


def test_minibatch_kl_check_stops_the_policy_before_it_runs_away():
    per_epoch_stop, n_mb = _sharp_iteration("epoch")
    per_mb_stop, _ = _sharp_iteration("minibatch")
    assert per_epoch_stop["policy_steps"] == n_mb  # the first epoch always runs whole
    assert 1 <= per_mb_stop["policy_steps"] < n_mb
    assert per_mb_stop["approx_kl"] < 0.6 * per_epoch_stop["approx_kl"]
    unbounded, _ = _sharp_iteration("minibatch", target_kl=1e9)  # the stop never fires
    assert unbounded["policy_steps"] == 5 * n_mb
