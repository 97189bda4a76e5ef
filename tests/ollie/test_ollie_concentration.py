"""Does y concentrate on expert rows? A 3-state MDP with terminations, shaped like the paper's
Hopper data (many short random trajectories, a few long expert ones).

s0 (start): the expert's action a0 leads to s2, a1 to s1. s1 ("falling"): either action stays
w.p. 0.8, else the episode terminates. s2 ("hopping"): a0 stays, a1 terminates. D_s holds 1000
random episodes (a0 w.p. 0.1) and 2 expert ones (always a0, 200 steps); D_e one expert episode.
R̃ = logit of the ideal discriminator ρ_e / (ρ_e + ρ_o), clipped to [0.1, 0.9] as d is.

Reference: the dual min_ν Σ ρ_o exp(δ̄_ν - 1) + (1 - γ) ν(s0) (δ̄ with the expected next ν, a
termination contributing 0) by BFGS; y* = exp(δ̄ - 1) = ρ*/ρ_o. With R̃ = logit d itself the
optimum falls at the start (π*(a0|s0) ≈ 0.55): R̃ < 0 on random rows, so ending the flow early
saves both reward and KL cost; the official min-max scaling to [0, 1] falls too. With the
shift to R̃ - logit(0.1) ≥ 0 (`offline.reward_shift: min`) it takes the expert's action and
most of y's mass lies on expert rows; the package's stochastic descent-ascent reaches that
optimum.
"""

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from ollie.dice import saddle_objective, saddle_step
from ollie.discriminator import shift_reward

S, A, GAMMA, H = 3, 2, 0.95, 200
P = np.zeros((S, A, S))  # P[s, a, s']; the missing mass is termination
P[0, 0, 2] = P[0, 1, 1] = P[2, 0, 2] = 1.0
P[1, :, 1] = 0.8


def occupancy_counts(pi: np.ndarray, episodes: int) -> np.ndarray:
    """Expected (s, a) row counts (S, A) of `episodes` episodes of pi (S, A) from s0, H steps."""
    counts, ds = np.zeros((S, A)), np.zeros(S)
    ds[0] = episodes
    for _ in range(H):
        sa = ds[:, None] * pi
        counts += sa
        ds = np.einsum("sa,sat->t", sa, P)
    return counts


def make_problem() -> dict:
    expert, random_pi = np.array([[1.0, 0.0]] * S), np.array([[0.1, 0.9]] * S)
    expert_rows = occupancy_counts(expert, 2)
    rows = occupancy_counts(random_pi, 1000) + expert_rows
    rho_o = rows / rows.sum()
    rho_e = occupancy_counts(expert, 1)
    rho_e /= rho_e.sum()
    d = np.clip(rho_e / (rho_e + rho_o), 0.1, 0.9)
    return {"rho_o": rho_o, "R": np.log(d / (1 - d)), "expert_share": expert_rows / rows}


@pytest.fixture(scope="module")
def problem():
    return make_problem()


def exact_y(rho_o: np.ndarray, R: np.ndarray) -> np.ndarray:
    def dual(nu):
        delta = R + GAMMA * P @ nu - nu[:, None]
        return (rho_o * np.exp(delta - 1)).sum() + (1 - GAMMA) * nu[0]

    nu = minimize(dual, np.zeros(S), method="BFGS", options={"gtol": 1e-12}).x
    return np.exp(R + GAMMA * P @ nu - nu[:, None] - 1)


def summary(problem, y: np.ndarray) -> tuple[float, float]:
    """(π(a0 | s0), share of y's mass on expert rows) of the occupancy ρ = ρ_o y."""
    rho = problem["rho_o"] * y
    return rho[0, 0] / rho[0].sum(), (rho * problem["expert_share"]).sum() / rho.sum()


def shifted(problem, mode: str) -> np.ndarray:
    return shift_reward(torch.tensor(problem["R"]), mode, 0.1).numpy()


@pytest.mark.parametrize("mode", ["none", "minmax"])
def test_unshifted_or_rescaled_reward_makes_the_optimum_fall(problem, mode):
    """'none' (≈ 0.55, 0.62) and the official min-max scaling (≈ 0.10, 0.21): the latter keeps
    R̃ ≥ 0 but shrinks its range to 1, so the KL term dominates."""
    pi_s0, mass = summary(problem, exact_y(problem["rho_o"], shifted(problem, mode)))
    assert pi_s0 < 0.6
    assert mass < 0.7


def test_shifted_reward_concentrates_y_on_expert_rows(problem):
    rows = problem["expert_share"] * problem["rho_o"]
    pi_s0, mass = summary(problem, exact_y(problem["rho_o"], shifted(problem, "min")))
    assert pi_s0 > 0.9
    assert mass > 0.85 > 10 * rows.sum()  # expert rows are < 8.5% of D_o


def test_stochastic_saddle_point_reaches_the_concentrated_optimum(problem):
    """The package's minibatch objective with tabular ν, log y on sampled transitions."""
    R = torch.tensor(shifted(problem, "min").ravel(), dtype=torch.float32)
    rho_o = torch.tensor(problem["rho_o"].ravel(), dtype=torch.float32)
    # next state or termination (index S) for each (s, a)
    P_t = torch.tensor(np.concatenate([P, 1 - P.sum(2, keepdims=True)], 2).reshape(S * A, S + 1),
                       dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    nu = torch.zeros(S + 1, requires_grad=True)  # the last entry is never used (terminations)
    log_y = torch.zeros(S * A, requires_grad=True)
    opts = [torch.optim.Adam([p], lr=0.2, betas=(0.5, 0.999)) for p in (nu, log_y)]
    B = 1024
    for it in range(6000):
        if it in (3000, 5000):
            for o in opts:
                o.param_groups[0]["lr"] *= 0.1
        sa = torch.multinomial(rho_o, B, True, generator=gen)
        nxt = torch.multinomial(P_t[sa], 1, generator=gen).squeeze(1)
        not_done = (nxt < S).float()
        obj = saddle_objective(log_y[sa], R[sa], nu[sa // A], nu[nxt.clamp(max=S - 1)],
                               not_done, nu[torch.zeros(B, dtype=torch.long)], GAMMA)
        saddle_step(obj, [nu], [log_y], *opts)
    y = log_y.detach().exp().numpy().reshape(S, A)
    y_ref = exact_y(problem["rho_o"], shifted(problem, "min"))
    pi_s0, mass = summary(problem, y)
    assert pi_s0 > 0.9 and mass > 0.85
    assert mass == pytest.approx(summary(problem, y_ref)[1], abs=0.03)
    # the rows the optimum uses (ρ* > 1% of the mass) get their y within 10%
    used = problem["rho_o"] * y_ref > 0.01
    np.testing.assert_allclose(y[used], y_ref[used], rtol=0.1)


def test_shift_modes():
    r = torch.tensor([-2.0, 0.0, 1.0])
    assert torch.equal(shift_reward(r, "none"), r)
    lo = float(np.log(0.1 / 0.9))
    np.testing.assert_allclose(shift_reward(r, "min", 0.1).numpy(), (r - lo).numpy(), rtol=1e-6)
    np.testing.assert_allclose(shift_reward(r, "minmax").numpy(), [0.0, 2 / 3, 1.0], rtol=1e-6)
    with pytest.raises(ValueError):
        shift_reward(r, "max")
