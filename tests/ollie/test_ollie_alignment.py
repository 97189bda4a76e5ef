"""D⁰ (alignment.py): at step 0 the online discriminator equals [1 + (d/(1-d))/y]⁻¹ exactly,
and finetuning it leaves the offline networks untouched."""

import torch

from ollie.alignment import AlignedDiscriminator, d0_formula
from ollie.dice import YNet
from shared.il.models import Discriminator


def _nets(in_dim=5):
    torch.manual_seed(0)
    d, y = Discriminator(in_dim, 16), YNet(in_dim, 16)
    with torch.no_grad():  # spread the outputs so the clip and the y range are exercised
        d.net[-1].weight.mul_(20)
        y.net[-1].weight.mul_(20)
    return d, y


def test_d0_equals_the_formula_at_step_0():
    d, y = _nets()
    x = torch.randn(512, 5)
    D0 = torch.sigmoid(AlignedDiscriminator(d, y)(x))
    ref = d0_formula(d(x), y(x).exp())
    torch.testing.assert_close(D0, ref, rtol=1e-5, atol=1e-6)
    assert (d(x) == 0.1).any() and (d(x) == 0.9).any()  # the clip was in play
    assert D0.std() > 0.1


def test_d0_convention_policy_is_one():
    """Where y is large (the policy visits often) and d small (unlike the expert) D⁰ -> 1."""
    assert d0_formula(torch.tensor([0.1]), torch.tensor([100.0])).item() > 0.99
    assert d0_formula(torch.tensor([0.9]), torch.tensor([0.01])).item() < 0.01


def test_finetuning_copies_the_offline_networks():
    d, y = _nets()
    disc = AlignedDiscriminator(d, y)
    before = [p.clone() for p in d.parameters()]
    opt = torch.optim.SGD(disc.parameters(), lr=0.1)
    disc(torch.randn(8, 5)).sum().backward()
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, d.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before, disc.d.parameters()))
