"""The saddle point (dice.py) and y-weighted extraction against an exact solution on a small
tabular MDP, and the pointwise optimum y* = exp(δ̄_ν - 1).

Reference: the primal problem max_ρ Σ ρ (R̃ - log ρ/ρ_o) over the Bellman-flow polytope, solved
by SLSQP on the 6 occupancies of a 3-state, 2-action MDP; its y* = ρ*/ρ_o and π*(a|s) ∝ ρ*(s,a).
The learned ν, log y are tables trained with the package's stochastic minibatch objective.
"""

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from ollie.dice import (
    box_conjugate,
    dual_objective,
    pointwise_y,
    saddle_objective,
    saddle_step,
    y_regression_loss,
)
from ollie.extraction import extraction_loss, resample_rows

S, A, GAMMA = 3, 2, 0.9


def _primal(P, p0, rho_o, R, y_max: float = np.inf) -> np.ndarray:
    """y* = ρ*/ρ_o of max_ρ Σ ρ (R̃ - log ρ/ρ_o) over the flow polytope with ρ ≤ y_max ρ_o."""
    def neg(x):
        r = x.reshape(S, A)
        return -(r * (R - np.log(r / rho_o))).sum()

    def flow(x):
        r = x.reshape(S, A)
        return r.sum(1) - (1 - GAMMA) * p0 - GAMMA * np.einsum("sat,sa->t", P, r)

    bounds = [(1e-9, y_max * q if np.isfinite(y_max) else None) for q in rho_o.ravel()]
    res = minimize(neg, rho_o.ravel(), method="SLSQP", bounds=bounds,
                   constraints=[{"type": "eq", "fun": flow}],
                   options={"ftol": 1e-14, "maxiter": 1000})
    assert res.success
    return res.x.reshape(S, A) / rho_o


@pytest.fixture(scope="module")
def mdp():
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(S), size=(S, A))  # P[s, a, s']
    p0 = rng.dirichlet(np.ones(S))
    rho_o = rng.dirichlet(np.ones(S * A)).reshape(S, A)  # data distribution D_o over (s, a)
    R = rng.normal(size=(S, A))  # surrogate reward R̃
    y = _primal(P, p0, rho_o, R)
    rho = y * rho_o
    return {"P": P, "p0": p0, "rho_o": rho_o, "R": R, "y": y,
            "pi": rho / rho.sum(1, keepdims=True)}


def _tensors(mdp: dict) -> tuple[torch.Tensor, ...]:
    """P (S*A, S), ρ_o (S*A,), p0 (S,), R̃ (S*A,) as float32 tensors."""
    return (torch.tensor(mdp["P"], dtype=torch.float32).reshape(S * A, S),
            torch.tensor(mdp["rho_o"].ravel(), dtype=torch.float32),
            torch.tensor(mdp["p0"], dtype=torch.float32),
            torch.tensor(mdp["R"].ravel(), dtype=torch.float32))


def _transitions(P, rho_o, p0, B: int, steps: int, decay_at: tuple, opts: list,
                 gen: torch.Generator):
    """`steps` minibatches (sa ~ ρ_o, s' ~ P(·|sa), s0 ~ p0) of B rows; every optimiser's lr is
    cut 10x at the steps in `decay_at`."""
    for it in range(steps):
        if it in decay_at:
            for o in opts:
                o.param_groups[0]["lr"] *= 0.1
        sa = torch.multinomial(rho_o, B, True, generator=gen)
        s_next = torch.multinomial(P[sa], 1, generator=gen).squeeze(1)
        s0 = torch.multinomial(p0, B, True, generator=gen)
        yield sa, s_next, s0


@pytest.fixture(scope="module")
def solved(mdp):
    """Tabular ν (S,) and log y (S*A,) after stochastic descent-ascent on sampled transitions."""
    gen = torch.Generator().manual_seed(0)
    nu = torch.zeros(S, requires_grad=True)
    log_y = torch.zeros(S * A, requires_grad=True)
    opts = [torch.optim.Adam([p], lr=0.02, betas=(0.5, 0.999)) for p in (nu, log_y)]
    P, rho_o, p0, R = _tensors(mdp)
    B = 1024
    for sa, s_next, s0 in _transitions(P, rho_o, p0, B, 9000, (4000, 7000), opts, gen):
        obj = saddle_objective(log_y[sa], R[sa], nu[sa // A], nu[s_next], torch.ones(B),
                               nu[s0], GAMMA)
        saddle_step(obj, [nu], [log_y], *opts)
    return nu.detach(), log_y.detach(), P, R


def test_y_matches_exact_occupancy_ratio(mdp, solved):
    _, log_y, _, _ = solved
    y = log_y.exp().numpy().reshape(S, A)
    np.testing.assert_allclose(y, mdp["y"], rtol=0.03)
    # and the learned ρ = ρ_o y is a distribution, as the flow constraints imply
    assert abs((mdp["rho_o"] * y).sum() - 1) < 0.02


def test_pointwise_optimum_holds_at_convergence(solved):
    nu, log_y, P, R = solved
    y_star = pointwise_y(R, nu.repeat_interleave(A), P @ nu, GAMMA)
    np.testing.assert_allclose(log_y.exp().numpy(), y_star.numpy(), rtol=0.03)


def test_y_weighted_bc_extracts_the_optimal_policy(mdp, solved):
    """A tabular softmax policy trained by y-weighted BC on samples of ρ_o recovers π*."""
    _, log_y, _, _ = solved
    gen = torch.Generator().manual_seed(1)
    logits = torch.zeros(S, A, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.05)
    rho_o = _tensors(mdp)[1]
    y = log_y.exp()
    for _ in range(1500):
        sa = torch.multinomial(rho_o, 2048, True, generator=gen)
        logp = torch.log_softmax(logits, 1)[sa // A, sa % A]
        loss = extraction_loss(logp, y[sa])
        opt.zero_grad()
        loss.backward()
        opt.step()
    pi = torch.softmax(logits, 1).detach().numpy()
    np.testing.assert_allclose(pi, mdp["pi"], atol=0.03)
    # the plain BC policy (y = 1) is the data's, which differs from π* here
    assert np.abs(mdp["rho_o"] / mdp["rho_o"].sum(1, keepdims=True) - mdp["pi"]).max() > 0.1


def test_extraction_weights_are_normalised_by_their_batch_mean():
    logp = torch.tensor([-1.0, -2.0, -3.0])
    y = torch.tensor([1.0, 2.0, 3.0])
    # w = y / 2 -> -(0.5 * -1 + 1 * -2 + 1.5 * -3) / 3
    assert extraction_loss(logp, y).item() == pytest.approx(7.0 / 3.0)
    assert extraction_loss(logp, 10 * y).item() == pytest.approx(7.0 / 3.0)


def test_resampled_rows_follow_y():
    """Rows drawn ∝ y: empirical frequencies match y / Σy (a zero weight is never drawn)."""
    y = torch.tensor([0.0, 1.0, 3.0, 0.5, 10.0, 0.5], dtype=torch.float64)
    idx = resample_rows(torch.cumsum(y, 0), 200_000, torch.Generator().manual_seed(0))
    freq = torch.bincount(idx, minlength=len(y)).double() / len(idx)
    np.testing.assert_allclose(freq.numpy(), (y / y.sum()).numpy(), atol=0.004)
    assert freq[0] == 0


def test_nu_offset_carries_the_constant_mode(mdp):
    """R̃ + 8 has the same exact optimum (the flow's mass is 1, so a constant reward only shifts
    ν by 8 / (1 - γ)). With ν = table + b / (1 - γ) (NuNet's parameterisation) the stochastic
    descent-ascent reaches y* in a budget where the table alone, which has to carry the shift
    itself, is still off."""
    P, rho_o, p0, R = _tensors(mdp)
    R = R + 8.0

    def solve(offset: bool, steps: int = 5000, B: int = 512) -> np.ndarray:
        gen = torch.Generator().manual_seed(0)
        nu, b = torch.zeros(S, requires_grad=True), torch.zeros((), requires_grad=True)
        log_y = torch.zeros(S * A, requires_grad=True)
        nu_opt = torch.optim.Adam([nu, b] if offset else [nu], lr=0.02, betas=(0.5, 0.999))
        y_opt = torch.optim.Adam([log_y], lr=0.02, betas=(0.5, 0.999))
        for sa, s_next, s0 in _transitions(P, rho_o, p0, B, steps, (steps // 2, steps * 4 // 5),
                                           [nu_opt, y_opt], gen):
            full = nu + b / (1 - GAMMA)
            obj = saddle_objective(log_y[sa], R[sa], full[sa // A], full[s_next], torch.ones(B),
                                   full[s0], GAMMA)
            saddle_step(obj, [nu, b] if offset else [nu], [log_y], nu_opt, y_opt)
        return log_y.detach().exp().numpy().reshape(S, A)

    np.testing.assert_allclose(solve(True), mdp["y"], rtol=0.03)
    assert np.abs(solve(False) / mdp["y"] - 1).max() > 0.1


def test_y_regression_update_reaches_the_exact_occupancy_ratio(mdp):
    """y fitted to δ_ν - 1 (the preconditioned ascent) while ν descends L: the same y* as the
    exact solution."""
    P, rho_o, p0, R = _tensors(mdp)
    gen = torch.Generator().manual_seed(0)
    nu, log_y = torch.zeros(S, requires_grad=True), torch.zeros(S * A, requires_grad=True)
    nu_opt = torch.optim.Adam([nu], lr=0.02, betas=(0.5, 0.999))
    y_opt = torch.optim.Adam([log_y], lr=0.02, betas=(0.5, 0.999))
    B, steps = 512, 5000
    for sa, s_next, s0 in _transitions(P, rho_o, p0, B, steps, (steps // 2, steps * 4 // 5),
                                       [nu_opt, y_opt], gen):
        obj = saddle_objective(log_y[sa], R[sa], nu[sa // A], nu[s_next], torch.ones(B),
                               nu[s0], GAMMA)
        delta = R[sa] + GAMMA * nu[s_next] - nu[sa // A]
        saddle_step(obj, [nu], [log_y], nu_opt, y_opt, y_regression_loss(log_y[sa], delta))
    np.testing.assert_allclose(log_y.detach().exp().numpy().reshape(S, A), mdp["y"], rtol=0.03)


def test_box_conjugate_is_the_inner_maximum_over_the_box():
    """box_conjugate(δ) = max_{0 ≤ y ≤ e^h} (y δ - y log y), against a fine grid of y, and its
    slope is the maximiser min(exp(δ - 1), e^h)."""
    h = 1.5
    delta = torch.linspace(-4.0, 6.0, 41, dtype=torch.float64, requires_grad=True)
    f = box_conjugate(delta, h)
    y = torch.linspace(1e-9, np.exp(h), 200_001, dtype=torch.float64)
    grid = (y[None] * delta.detach()[:, None] - y * y.log()).max(1).values
    np.testing.assert_allclose(f.detach().numpy(), grid.numpy(), rtol=1e-5)
    (slope,) = torch.autograd.grad(f.sum(), delta)
    np.testing.assert_allclose(slope.numpy(), np.minimum(np.exp(delta.detach().numpy() - 1),
                                                         np.exp(h)), rtol=1e-12)


@pytest.fixture(scope="module")
def det_mdp(mdp):
    """The same problem with deterministic transitions (s' = argmax of mdp's P(·|s, a)), as
    MuJoCo's: each data row then holds the one next state of its (s, a)."""
    P = np.eye(S)[mdp["P"].argmax(2)]
    return {**mdp, "P": P, "y": _primal(P, mdp["p0"], mdp["rho_o"], mdp["R"])}


def _solve_dual(mdp: dict, h: float, steps: int = 5000, B: int = 512) -> np.ndarray:
    """Tabular ν minimising `dual_objective` on sampled transitions, tabular log y fitted to
    min(δ_ν - 1, h) (the package's `y_update: dual`). Returns y (S, A) of the fitted table."""
    P, rho_o, p0, R = _tensors(mdp)
    gen = torch.Generator().manual_seed(0)
    nu, log_y = torch.zeros(S, requires_grad=True), torch.zeros(S * A, requires_grad=True)
    nu_opt = torch.optim.Adam([nu], lr=0.02, betas=(0.5, 0.999))
    y_opt = torch.optim.Adam([log_y], lr=0.02, betas=(0.5, 0.999))
    for sa, s_next, s0 in _transitions(P, rho_o, p0, B, steps, (steps // 2, steps * 4 // 5),
                                       [nu_opt, y_opt], gen):
        obj = dual_objective(R[sa], nu[sa // A], nu[s_next], torch.ones(B), nu[s0], GAMMA, h)
        delta = R[sa] + GAMMA * nu[s_next] - nu[sa // A]
        target = (delta.detach() - 1).clamp(max=h) + 1
        saddle_step(obj, [nu], [log_y], nu_opt, y_opt, y_regression_loss(log_y[sa], target))
    return log_y.detach().exp().numpy().reshape(S, A)


def test_dual_update_reaches_the_exact_occupancy_ratio(det_mdp):
    """ν on the closed-form inner maximum (no descent-ascent), y fitted to its maximiser: the
    primal's y* (deterministic transitions, the box far above y*)."""
    assert det_mdp["y"].max() < np.exp(4.0)
    np.testing.assert_allclose(_solve_dual(det_mdp, 5.0), det_mdp["y"], rtol=0.03)


def test_dual_update_with_an_active_box_solves_the_bounded_primal(det_mdp):
    """With y ≤ e^h below the unconstrained y*, the dual's solution is the primal's over the flow
    polytope with ρ ≤ e^h ρ_o (SLSQP, an independent reference)."""
    h = float(np.log(det_mdp["y"].max())) - 0.3
    m = det_mdp
    y_ref = _primal(m["P"], m["p0"], m["rho_o"], m["R"], np.exp(h))
    assert y_ref.max() == pytest.approx(np.exp(h), rel=1e-4)  # the box binds
    assert np.abs(y_ref - m["y"]).max() > 0.05  # and moves the solution
    np.testing.assert_allclose(_solve_dual(m, h, steps=8000), y_ref, rtol=0.03)


@pytest.mark.slow
def test_dual_update_with_stochastic_transitions_solves_the_sampled_dual(mdp):
    """With stochastic transitions a row's s' is one draw, and E_s'[exp(δ - 1)] >= exp(δ̄ - 1):
    the dual update minimises the former (as DemoDICE's and SMODICE's duals do), so it reaches
    that problem's minimiser (BFGS with the expectation over s' taken exactly), not the primal's
    y*; the descent-ascent, linear in δ, has no such gap (tests above)."""
    P, rho_o, p0, R = mdp["P"], mdp["rho_o"], mdp["p0"], mdp["R"]

    def sampled_dual(nu):
        delta = R[:, :, None] + GAMMA * nu[None, None, :] - nu[:, None, None]  # (S, A, S')
        return (rho_o[:, :, None] * P * np.exp(delta - 1)).sum() + (1 - GAMMA) * p0 @ nu

    nu = minimize(sampled_dual, np.zeros(S), method="BFGS", options={"gtol": 1e-12}).x
    y_ref = np.exp(R + GAMMA * P @ nu - nu[:, None] - 1)  # the regression target exp(δ̄ - 1)
    assert np.abs(y_ref / mdp["y"] - 1).max() > 0.1  # the gap to the primal
    np.testing.assert_allclose(_solve_dual(mdp, 5.0), y_ref, rtol=0.03)
