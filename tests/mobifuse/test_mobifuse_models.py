"""The two-stage fusion net: shapes, gating, the no-DEI ablation, loss, a short training run."""

import numpy as np
import pytest
import torch

from mobifuse.config import NetConfig
from mobifuse.models import N_ERR, TwoStageFusionNet, fusion_loss


def _inputs(b=2, h=32, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    geom = torch.rand(b, 4, h, w, generator=g) * 3 + 0.5
    geom[:, 1] = geom[:, 3] = 1.0
    return geom, torch.rand(b, N_ERR, h, w, generator=g)


def test_forward_shapes_and_gates_are_a_convex_mix():
    torch.manual_seed(0)
    net = TwoStageFusionNet(NetConfig(widths=(4, 8, 8)))
    geom, err = _inputs()
    out = net(geom, err)
    assert out["depth"].shape == (2, 1, 32, 48) and out["coarse"].shape == (2, 1, 32, 48)
    gates = out["gates"]
    assert torch.allclose(gates.sum(1), torch.ones(2, 32, 48), atol=1e-5)
    assert gates.min() >= 0


def test_no_dei_ablation_ignores_dei_channels_but_full_net_uses_them():
    torch.manual_seed(0)
    geom, err = _inputs()
    err2 = err.clone()
    err2[:, 1:] = torch.randn_like(err2[:, 1:])  # change the DEI, keep the grey image
    ablated = TwoStageFusionNet(NetConfig(widths=(4, 8, 8), use_dei=False))
    torch.testing.assert_close(ablated(geom, err)["depth"], ablated(geom, err2)["depth"])
    full = TwoStageFusionNet(NetConfig(widths=(4, 8, 8), use_dei=True))
    assert not torch.allclose(full(geom, err)["depth"], full(geom, err2)["depth"])


def test_fusion_loss_zero_at_truth_and_masked():
    gt = torch.rand(1, 1, 8, 8) + 1
    out = {"depth": gt.clone(), "coarse": gt.clone()}
    assert fusion_loss(out, gt, torch.ones_like(gt)).item() == pytest.approx(0.0)
    bad = {"depth": gt + 1.0, "coarse": gt.clone()}
    assert fusion_loss(bad, gt, torch.ones_like(gt)).item() == pytest.approx(1.0)
    assert fusion_loss(bad, gt, torch.zeros_like(gt)).item() == pytest.approx(0.0)


def test_short_training_run_reduces_loss():
    torch.manual_seed(0)
    net = TwoStageFusionNet(NetConfig(widths=(4, 8, 8)))
    geom, err = _inputs(b=4, h=32, w=32)
    gt = (0.5 * geom[:, :1] + 0.5 * geom[:, 2:3]).detach()  # learnable: the mean of inputs
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = fusion_loss(net(geom, err), gt, torch.ones_like(gt))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_bad_width_config_rejected():
    with pytest.raises(ValueError, match="widths"):
        TwoStageFusionNet(NetConfig(widths=(4, 8)))
