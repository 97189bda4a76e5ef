"""OLLIE step 2: the convex–concave saddle point over ν and y ≥ 0 (paper, method section).

The surrogate objective max_π E_{ρ^π}[R̃] - KL(ρ^π ‖ ρ_o), with the Bellman-flow constraint on
ρ^π dualised by ν(s) and y = ρ^π / ρ_o, is

    min_ν max_{y ≥ 0}  L(ν, y) = E_{(s,a,s')~D_o}[ y(s,a) δ_ν(s,a,s') - y log y ]
                                 + (1 - γ) E_{s0~p0}[ ν(s0) ]
    δ_ν(s, a, s') = R̃(s, a) + γ (1 - done) ν(s') - ν(s)

A termination (done = 1) ends the flow. The sign of R̃ then matters: where R̃ < 0 (with
R̃ = logit d: every row with d < 1/2, most of D_s), an occupancy that reaches a
termination early collects less negative reward and, holding less mass, less KL cost, so the
optimum follows the short random trajectories instead of the expert's (tests/ollie/
test_ollie_concentration.py: π*(expert action | start) 0.55). The offline phase therefore feeds
R̃ - logit(clip lo) ≥ 0 (`discriminator.shift_reward`): a termination is then worth what an
absorbing state of reward logit(clip lo) is (less that state's KL term), without an extra ν to
learn. On data that never terminates a constant shift changes nothing (the mass stays 1).

L is linear in the data distribution, so the minibatch mean of the bracket is an unbiased
estimate of L and of its gradients (unlike DemoDICE/SMODICE's log-sum-exp of a batch). Pointwise
in y the inner maximum is at y* = exp(δ̄_ν - 1) (δ̄: δ averaged over s'), a sanity check at
convergence. y is positive by construction: y = exp(log y) with the network's output as log y
(clamped). Updates are simultaneous Adam steps: descent for ν, ascent for y.

The dual (`offline.y_update: dual`, `dual_objective`): for fixed ν the inner maximum over
0 ≤ y ≤ Y = e^h is taken row by row in closed form (`box_conjugate`), so ν minimises a convex
function (tabular ν) instead of chasing y in a descent–ascent, and the y network is fitted to the
maximiser log y* = min(δ_ν - 1, h) (`y_regression_loss`). Still linear in the data
distribution, so minibatch gradients stay unbiased (no log-sum-exp). The descent–ascent's failure
it removes (Hopper, d clip (0.02, 0.98)): E[y] swung 0.19 → 0.003 → 148 within 3k steps, log y
then sat at its upper clamp on every row, where the clamp passes no gradient, and ν ran to 10⁸.

Networks (official `FullyConnectedQFunction`: 3 x 256 ReLU): ν: s (B, S) -> (B,);
y: (s‖a) (B, S + A) -> log y (B,). The official code's Q-style ν(s, a) is not the paper's; this
follows the paper.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from shared.il.models import Normalizer
from shared.il.nets import mlp

__all__ = ["NuNet", "YNet", "saddle_objective", "saddle_step", "pointwise_y",
           "y_regression_loss", "box_conjugate", "dual_objective"]


class NuNet(nn.Module):
    """ν(s) = MLP(s) + b / (1 - γ): s (B, S) -> (B,) (Lagrange multiplier of the Bellman flow
    constraint).

    ν's constant mode c enters δ_ν as -(1 - γ) c on every non-terminal row, so it sets the
    normalisation E_o[y] = 1 and with it y's absolute level; its gradient is (1 - γ)(1 - E_o[y]),
    and an MLP output has to travel to |c| ~ R̃ / (1 - γ) (hundreds at γ = 0.99) to get there.
    The scalar b holds that mode on δ's own scale (∂δ/∂b = -1), so an optimiser moves it as fast
    as it moves y (it gets its own learning rate in `offline.OLLIEPretrainer`).
    """

    def __init__(self, state_dim: int, hidden: int = 256, norm: Normalizer | None = None,
                 gamma: float = 0.99):
        super().__init__()
        self.net = mlp(state_dim, 1, hidden, depth=3)
        self.norm = norm or Normalizer(torch.zeros(state_dim), torch.ones(state_dim))
        self.offset = nn.Parameter(torch.zeros(()))  # b
        self.scale = 1.0 / (1.0 - gamma)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(s)).squeeze(-1) + self.offset * self.scale


class YNet(nn.Module):
    """log y(s, a): (s‖a) (B, S + A) -> (B,), clamped to [lo, hi]; y = exp(log y) > 0."""

    def __init__(self, in_dim: int, hidden: int = 256, norm: Normalizer | None = None,
                 log_y_range: tuple[float, float] = (-10.0, 5.0)):
        super().__init__()
        self.net = mlp(in_dim, 1, hidden, depth=3)
        self.norm = norm or Normalizer(torch.zeros(in_dim), torch.ones(in_dim))
        self.lo, self.hi = log_y_range

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """The network's log y before the clamp (B,)."""
        return self.net(self.norm(x)).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.raw(x).clamp(self.lo, self.hi)


def saddle_objective(log_y: torch.Tensor, reward: torch.Tensor, nu_s: torch.Tensor,
                     nu_next: torch.Tensor, not_done: torch.Tensor, nu_s0: torch.Tensor,
                     gamma: float, absorbing: tuple | None = None) -> torch.Tensor:
    """Minibatch estimate of L(ν, y). log_y, reward, nu_s, nu_next, not_done: (B,) over D_o
    transitions; nu_s0: (B0,) over initial states. Returns a scalar.

    `absorbing` = (nu_abs, log_y_abs, reward_abs, share): terminations lead into an absorbing
    state (as DemoDICE's data do) with its own scalar ν and y; its self-loop transitions make up
    `share` of the data and enter in expectation. Without it a termination ends the flow, and an
    occupancy that falls early loses mass and with it KL cost, which the objective then favours.
    """
    y = log_y.exp()
    if absorbing is None:
        delta = reward + gamma * not_done * nu_next - nu_s
        return (y * delta - y * log_y).mean() + (1 - gamma) * nu_s0.mean()
    nu_abs, log_y_abs, r_abs, share = absorbing
    nxt = not_done * nu_next + (1 - not_done) * nu_abs
    data = (y * (reward + gamma * nxt - nu_s) - y * log_y).mean()
    y_abs = log_y_abs.exp()
    loop = y_abs * (r_abs + (gamma - 1) * nu_abs) - y_abs * log_y_abs
    return (1 - share) * data + share * loop + (1 - gamma) * nu_s0.mean()


def y_regression_loss(raw_log_y: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """½ mean_B (log y - (δ_ν - 1))² for the network's log y (B,) and δ_ν (B,) (held fixed).

    Its negative gradient in log y is the ascent direction of L, y (δ - log y - 1), divided by
    y > 0 row by row: a preconditioned ascent with the same fixed point y = exp(δ̄ - 1) (δ is
    linear in ν(s'), so the minibatch regression target is unbiased for δ̄ - 1). Plain ascent
    scales each row's step by y, so rows where y has fallen low get no signal back: with a
    wide R̃ range y collapsed to ~0 on every row and stayed there (results/ollie/NOTES.md).
    """
    return 0.5 * (raw_log_y - (delta.detach() - 1)).pow(2).mean()


def box_conjugate(delta: torch.Tensor, log_y_max: float) -> torch.Tensor:
    """max_{0 ≤ y ≤ e^h} (y δ - y log y) row by row for δ (B,): exp(δ - 1) up to δ - 1 = h, then
    the line e^h (δ - h) (y at its bound). Convex and C¹ in δ, with slope y* ≤ e^h: a row whose
    δ runs away cannot blow ν's gradient up, and one at the bound still passes it on."""
    z = delta - 1
    return torch.where(z <= log_y_max, torch.exp(z.clamp(max=log_y_max)),
                       math.exp(log_y_max) * (delta - log_y_max))


def dual_objective(reward: torch.Tensor, nu_s: torch.Tensor, nu_next: torch.Tensor,
                   not_done: torch.Tensor, nu_s0: torch.Tensor, gamma: float,
                   log_y_max: float) -> torch.Tensor:
    """max_{0 ≤ y ≤ e^h} L(ν, y) as a minibatch estimate (scalar), to be minimised in ν:
    mean_B box_conjugate(δ_ν) + (1 - γ) mean_B0 ν(s0). Shapes as `saddle_objective`'s."""
    delta = reward + gamma * not_done * nu_next - nu_s
    return box_conjugate(delta, log_y_max).mean() + (1 - gamma) * nu_s0.mean()


def saddle_step(objective: torch.Tensor, nu_params: list[nn.Parameter],
                y_params: list[nn.Parameter], nu_opt: torch.optim.Optimizer,
                y_opt: torch.optim.Optimizer, y_loss: torch.Tensor | None = None) -> None:
    """One simultaneous gradient step: ν descends L, y ascends it (same minibatch), or, given
    `y_loss` (`y_regression_loss`), y descends that instead."""
    g_nu = torch.autograd.grad(objective, nu_params, retain_graph=True)
    g_y = torch.autograd.grad(objective if y_loss is None else y_loss, y_params)
    for p, g in zip(nu_params, g_nu):
        p.grad = g
    for p, g in zip(y_params, g_y):
        p.grad = -g if y_loss is None else g
    nu_opt.step()
    y_opt.step()


def pointwise_y(reward: torch.Tensor, nu_s: torch.Tensor, expected_nu_next: torch.Tensor,
                gamma: float) -> torch.Tensor:
    """y* = exp(δ̄ - 1), the inner maximiser of L for fixed ν (δ̄ with E[ν(s')] given)."""
    return torch.exp(reward + gamma * expected_nu_next - nu_s - 1)
