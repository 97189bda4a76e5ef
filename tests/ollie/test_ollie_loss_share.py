"""ollie.experiments.loss_share: row groups, loss shares and AUC on hand-computed cases."""

import numpy as np
import pytest
import torch

from ollie.experiments.loss_share import (
    auc,
    extraction_row_weights,
    group_shares,
    row_groups,
)


def test_row_groups_put_d_e_first_and_d_s_expert_last():
    # D_s: three episodes of 2, 3, 2 rows (timeouts close them); the last one is expert
    imperfect = {"actions": np.zeros((7, 1)), "observations": np.zeros((7, 1)),
                 "terminals": np.zeros(7, bool),
                 "timeouts": np.array([0, 1, 0, 0, 1, 0, 1], bool)}
    g = row_groups(2, imperfect, 1)
    assert g.tolist() == [0, 0, 2, 2, 2, 2, 2, 1, 1]


def test_group_shares_by_hand():
    # |w| = 1, 3 on D_e, 2 on D_s expert, 4 on D_s other (one negative): total 10
    w = np.array([1.0, -3.0, 2.0, 4.0])
    s = group_shares(w, np.array([0, 0, 1, 2]))
    assert s == pytest.approx({"D_e": 0.4, "D_s_expert": 0.2, "D_s_other": 0.4})


def test_resampled_extraction_weights_are_y_over_its_sum():
    y = torch.tensor([3.0, 1.0, 0.5, 0.5])
    w = extraction_row_weights(y, "resample", 256, 1, torch.Generator().manual_seed(0))
    assert w == pytest.approx([0.6, 0.2, 0.1, 0.1])
    assert group_shares(w, np.array([0, 1, 2, 2])) == pytest.approx(
        {"D_e": 0.6, "D_s_expert": 0.2, "D_s_other": 0.2})


def test_uniform_batches_of_one_row_erase_y():
    # a batch of one row weighs it y / y = 1 whatever y: each of the 2 rows gets 1/2 in
    # expectation, the batch-mean normalisation's extreme case
    y = torch.tensor([100.0, 1.0])
    w = extraction_row_weights(y, "uniform", 1, 4000, torch.Generator().manual_seed(0))
    assert w.sum() == pytest.approx(1.0)
    assert w == pytest.approx([0.5, 0.5], abs=0.03)


def test_uniform_batches_of_two_rows_by_hand():
    # rows y = (3, 1); batches of 2 drawn with replacement: (0,0) and (1,1) weigh 1 each row,
    # (0,1) and (1,0) weigh 3/2 and 1/2; per row the expected Σ_batch w / B is
    # row 0: (1/4)(2/2) + (2/4)(1.5/2) = 0.625, row 1: (1/4)(2/2) + (2/4)(0.5/2) = 0.375
    y = torch.tensor([3.0, 1.0])
    w = extraction_row_weights(y, "uniform", 2, 20000, torch.Generator().manual_seed(0))
    assert w == pytest.approx([0.625, 0.375], abs=0.01)


def test_auc_counts_ties_half():
    assert auc(np.array([2.0, 3.0]), np.array([1.0, 0.0])) == 1.0
    assert auc(np.array([0.0]), np.array([1.0])) == 0.0
    # pairs: (1 vs 1) tie 0.5, (1 vs 0) win, (2 vs 1) win, (2 vs 0) win -> 3.5 / 4
    assert auc(np.array([1.0, 2.0]), np.array([1.0, 0.0])) == pytest.approx(0.875)


def test_group_grad_norms_are_the_norms_of_each_groups_weighted_gradient():
    from ollie.experiments.loss_share import group_grad_norms
    from shared.il.models import Normalizer, TanhGaussianPolicy

    torch.manual_seed(0)
    pol = TanhGaussianPolicy(3, 2, 8, Normalizer(torch.zeros(3), torch.ones(3)))
    s, a = torch.randn(5, 3), torch.rand(5, 2) * 1.8 - 0.9
    groups = np.array([0, 0, 1, 2, 2])
    w = np.array([1.0, 1.0, 2.0, 0.0, 0.0])  # Σ|w| = 4; group 2 carries no weight
    g = group_grad_norms(pol, s, a, w, groups)
    params = list(pol.parameters())
    ref = torch.autograd.grad(-(torch.tensor([0.25, 0.25]) * pol.log_prob(s[:2], a[:2])).sum(),
                              params, allow_unused=True)
    ref = torch.cat([r.flatten() for r in ref if r is not None]).norm()
    assert g["D_e"] == pytest.approx(float(ref), rel=1e-5)
    assert g["D_s_other"] == 0.0
    assert g["all"] <= g["D_e"] + g["D_s_expert"] + 1e-6


@pytest.mark.parametrize("args, needle", [
    (["--y-cut", "0.1,x"], "--y-cut"), (["--y-cut", "0"], "--y-cut"),
    (["--y-cut", "0.1", "--arms", "dwbc"], "--y-cut needs the ollie arm"),
])
def test_bad_y_cut_is_refused_before_any_work(tmp_path, args, needle):
    from ollie.experiments.loss_share import main
    from shared.errors import ConfigError

    with pytest.raises(ConfigError, match=needle):
        main([*args, "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()
