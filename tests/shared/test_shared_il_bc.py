"""shared.il.bc: the BC losses and the plain BC arm against direct computations."""

import torch

from shared.il.bc import PlainBC, bc_loss, importance_weight
from shared.il.models import TanhGaussianPolicy


def test_bc_loss_is_the_weighted_mean_negative_log_likelihood():
    torch.manual_seed(0)
    pol = TanhGaussianPolicy(3, 2, 8)
    s, a, w = torch.randn(5, 3), torch.rand(5, 2) * 1.8 - 0.9, torch.rand(5)
    logp = pol.log_prob(s, a)
    torch.testing.assert_close(bc_loss(pol, s, a), -logp.mean())
    torch.testing.assert_close(bc_loss(pol, s, a, w), -(w * logp).mean())
    torch.testing.assert_close(importance_weight(torch.tensor([0.5, 0.9])),
                               torch.tensor([1.0, 9.0]))


def test_plain_bc_draws_its_rows_uniformly_with_the_generator():
    torch.manual_seed(1)
    pol = TanhGaussianPolicy(3, 2, 8)
    s, a = torch.randn(40, 3), torch.rand(40, 2) * 1.8 - 0.9
    arm = PlainBC(s, a, 16, "bc_expert")
    loss = arm.loss(pol, torch.Generator().manual_seed(7))
    i = torch.randint(40, (16,), generator=torch.Generator().manual_seed(7))  # the same draws
    torch.testing.assert_close(loss, bc_loss(pol, s[i], a[i]))
    assert arm.state_dict() == {} and arm.name == "bc_expert"
    arm.load_state_dict({})
