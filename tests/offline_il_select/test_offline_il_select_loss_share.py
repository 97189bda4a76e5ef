"""The loss-share probe (`experiments/loss_share.py`) against the losses it describes: the
per-row weights it computes must be what ILID's and DWBC's own `loss` put on each row (ILID: the
mean of many sampled losses; DWBC: the loss of one step, exactly, on the same draws)."""

import numpy as np
import pytest
import torch

from offline_il_select.config import PolicyConfig
from offline_il_select.experiments.loss_share import (
    expert_only,
    ilid_row_weights,
    main,
    shares,
)
from offline_il_select.ilid import ILID
from offline_il_select.models import Normalizer, TanhGaussianPolicy
from shared.errors import ConfigError
from shared.il.dwbc import DWBC


class _CostPolicy:
    """-log pi(a | s) = s[:, 0]: a batch's loss is then the weighted mean of its rows' costs."""

    def log_prob(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return -s[:, 0]


def test_ilid_row_weights_are_the_expected_loss_weights():
    """E[ILID.loss] = sum_i w_i c_i over D_e ∪ D_b for row costs c: checked against the mean of
    4,000 sampled losses (alpha, beta and the selection arbitrary)."""
    rng = np.random.default_rng(0)
    n_e, n_b = 3, 12
    cost_e, cost_b = rng.uniform(0, 1, n_e), rng.uniform(0, 1, n_b)
    selected = np.zeros(n_b, bool)
    selected[[1, 4, 5, 9, 11]] = True
    sel = np.flatnonzero(selected)
    alpha = rng.uniform(0.1, 9, n_e + len(sel))
    beta = np.array([1, 0, 1, 1, 0], np.float32)
    ilid = ILID.__new__(ILID)
    ilid.pcfg = PolicyConfig(batch_size=64)
    s_u = torch.as_tensor(np.r_[cost_e, cost_b[sel]], dtype=torch.float32)[:, None]
    ilid.artifacts = {"s_u": s_u, "a_u": torch.zeros(len(s_u), 1),
                      "alpha": torch.as_tensor(alpha, dtype=torch.float32),
                      "s_s": torch.as_tensor(cost_b[sel], dtype=torch.float32)[:, None],
                      "a_s": torch.zeros(len(sel), 1), "beta": torch.as_tensor(beta)}
    g = torch.Generator().manual_seed(0)
    mc = np.mean([float(ilid.loss(_CostPolicy(), g)) for _ in range(4000)])
    w_e, w_b = ilid_row_weights(n_e, selected, alpha, beta)
    assert (w_b[~selected] == 0).all()
    assert float(w_e @ cost_e + w_b @ cost_b) == pytest.approx(mc, rel=0.02)


def test_dwbc_row_weights_reproduce_one_dwbc_loss_exactly():
    """On the indices DWBC.loss draws, sum_b |D| w(row_b) (-log pi) / B equals its loss (the
    weights taken at the discriminator before the step the loss makes)."""
    rng = np.random.default_rng(1)

    def part(n):
        return {"observations": rng.normal(size=(n, 3)).astype(np.float32),
                "actions": rng.uniform(-0.9, 0.9, (n, 2)).astype(np.float32)}

    e, b = part(20), part(200)
    s = np.concatenate([e["observations"], b["observations"]])
    norm = Normalizer(torch.as_tensor(s.mean(0)), torch.as_tensor(s.std(0)))
    torch.manual_seed(0)
    dw = DWBC(e, b, norm, 32, 1e-2, 0.0, alpha=7.5, eta=0.5)
    pol = TanhGaussianPolicy(3, 2, 16, norm)
    g = torch.Generator().manual_seed(3)
    for _ in range(30):  # move the discriminator off its initial outputs
        dw.loss(pol, g)
    w_e, w_o = dw.row_weights(pol)
    assert (w_o >= 0).all() and (w_o > 0).any() and (w_o == 0).any()  # d_o < 0.5 rows are 0
    state = g.get_state()
    loss = float(dw.loss(pol, g).detach())
    g2 = torch.Generator()
    g2.set_state(state)
    ie, io = torch.randint(20, (32,), generator=g2), torch.randint(200, (32,), generator=g2)
    with torch.no_grad():
        nl_e = -pol.log_prob(dw.s_e[ie], dw.a_e[ie]).numpy()
        nl_o = -pol.log_prob(dw.s_o[io], dw.a_o[io]).numpy()
    ref = (20 * w_e[ie.numpy()] * nl_e).mean() + (200 * w_o[io.numpy()] * nl_o).mean()
    assert loss == pytest.approx(ref, rel=1e-4, abs=1e-5)


def test_shares_and_the_expert_rows_only_variant():
    """Shares of |w| sum to 1 and split by the labels; the oracle keeps exactly D_e and D_s's
    expert rows, with their own alpha and beta."""
    is_exp = np.array([False, False, True, True])
    sh = shares(np.array([1.0, 1.0]), np.array([0.0, 2.0, 1.0, 0.0]), is_exp, 10.0,
                np.array([0.0, 0.0, 8.0, 8.0]))
    assert sh["share_D_e"] + sh["share_D_b_expert"] + sh["share_D_b_other"] == pytest.approx(1)
    assert (sh["share_D_e"], sh["share_D_b_other"]) == pytest.approx((0.4, 0.4))
    assert sh["imitated_return"] == pytest.approx((2 * 10 + 8) / 5)
    n_e, selected = 2, np.array([True, False, True, True])
    arts = {"s_s": torch.arange(3.0)[:, None], "a_s": torch.zeros(3, 1),
            "beta": torch.tensor([1.0, 0.0, 0.0]), "d_state": torch.zeros(3),
            "s_u": torch.arange(5.0)[:, None], "a_u": torch.zeros(5, 1),
            "alpha": torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]),
            "selected": torch.as_tensor(selected)}
    out = expert_only(arts, n_e, is_exp)
    assert out["s_s"].squeeze(1).tolist() == [1.0, 2.0]  # D_b rows 2, 3
    assert out["alpha"].tolist() == [1.0, 2.0, 4.0, 5.0]
    assert out["selected"].tolist() == [False, False, True, True]


def test_loss_share_refuses_bad_flags(tmp_path):
    with pytest.raises(ConfigError, match="--setting"):
        main(["--setting", "nope", "--out", str(tmp_path / "a")])
    with pytest.raises(ConfigError, match="--fit-steps"):
        main(["--fit-steps", "1", "--out", str(tmp_path / "b")])
    with pytest.raises(ConfigError, match="--n-s"):
        main(["--n-s", "-1", "--out", str(tmp_path / "d")])
    with pytest.raises(ConfigError, match="no config"):
        main(["--set", "seed=1", "--out", str(tmp_path / "c")])
    assert not any(tmp_path.iterdir())
