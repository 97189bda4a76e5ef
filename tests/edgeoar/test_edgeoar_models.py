"""The recogniser: streaming output equals batched output, weights round-trip through
safetensors, foreign files are refused, and the MAC count matches a hand count."""

import pytest
import torch
from torch import nn

from edgeoar.config import ModelConfig
from edgeoar.models import build_model, count_macs, load_model, save_model
from shared.errors import DataError
from shared.io import save_weights


@pytest.mark.parametrize("cfg", [ModelConfig(width=12, feat_dim=16),
                                 ModelConfig(width=12, feat_dim=16, aggregation="mean",
                                             shift_offsets=[1, 3], shift_div=6),
                                 ModelConfig(width=12, feat_dim=16, motion_source="diff",
                                             partition_guidance=False)])
def test_streaming_equals_batched(cfg):
    torch.manual_seed(0)
    m = build_model(cfg, classes=5, steps=4, image_size=32, cell=4).eval()
    with torch.no_grad():
        for p in m.parameters():  # non-trivial MSEM gammas and BN statistics
            p.add_(0.1 * torch.randn_like(p))
    b, t = 2, 6  # longer than the classifiers' steps: the last one is reused
    rgb = torch.randint(0, 256, (b, t, 32, 32, 3), dtype=torch.uint8)
    mot = torch.randn(b, t, m.motion_channels, 8, 8)
    part = torch.rand(b, t, 1, 8, 8)
    with torch.no_grad():
        full = m(rgb, mot, part)
        st, outs = m.init_state(), []
        for i in range(t):
            o, st = m.step(rgb[:, i], mot[:, i], part[:, i], st)
            outs.append(o)
    for k in ("rgb", "motion", "gate", "z"):
        assert (full[k] - torch.cat([o[k] for o in outs], 1)).abs().max() < 1e-5, k
    assert full["rgb"].shape == (b, t, 5) and full["gate"].shape == (b, t)


def test_prefix_outputs_do_not_depend_on_the_future():
    m = build_model(ModelConfig(width=12, feat_dim=16), 3, 6, 32, 4).eval()
    rgb = torch.randint(0, 256, (1, 6, 32, 32, 3), dtype=torch.uint8)
    mot, part = torch.randn(1, 6, 2, 8, 8), torch.rand(1, 6, 1, 8, 8)
    rgb2, mot2 = rgb.clone(), mot.clone()
    rgb2[:, 3:] = 0
    mot2[:, 3:] = 5
    with torch.no_grad():
        a, b = m(rgb, mot, part), m(rgb2, mot2, part)
    assert torch.allclose(a["rgb"][:, :3], b["rgb"][:, :3], atol=1e-6)
    assert not torch.allclose(a["rgb"][:, 3:], b["rgb"][:, 3:])


def test_save_load_roundtrip_and_foreign_files(tmp_path):
    m = build_model(ModelConfig(width=12, feat_dim=16), 3, 4, 32, 4).eval()
    save_model(m, tmp_path / "m.safetensors", ["a", "b", "c"], {"exit": {"tau_conf": 0.5,
                                                                        "tau_mc": 0.1}})
    m2, info = load_model(tmp_path / "m.safetensors")
    assert info["classes"] == ["a", "b", "c"] and info["exit"]["tau_mc"] == 0.1
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k])
    save_weights(tmp_path / "other.safetensors", {"w": torch.zeros(2)}, {"kind": "other"})
    with pytest.raises(DataError, match="not a edgeoar-recognizer model|holds 'other'"):
        load_model(tmp_path / "other.safetensors")
    (tmp_path / "pickle.safetensors").write_bytes(b"\x80\x04junk")
    with pytest.raises(DataError, match="pickle.safetensors"):
        load_model(tmp_path / "pickle.safetensors")
    sd = {k: v for k, v in m.state_dict().items() if "gate" not in k}
    save_weights(tmp_path / "partial.safetensors", sd,
                 {"kind": "edgeoar-recognizer", "model": {"width": 12, "feat_dim": 16},
                  "classes": ["a", "b", "c"], "steps": 4, "image_size": 32, "cell": 4})
    with pytest.raises(DataError, match="partial.safetensors"):
        load_model(tmp_path / "partial.safetensors")


def test_mac_count_matches_a_hand_count():
    cfg = ModelConfig(width=12, feat_dim=16)
    m = build_model(cfg, 3, 4, 32, 4)
    macs = count_macs(m)
    w1, w2, w3 = 12, 16, 24
    g = 32 // 4
    enc_rgb = (w1 * 3 * 16 * g * g + w2 * w1 * 9 * (g // 2) ** 2 + w2 * w2 * 9 * (g // 2) ** 2
               + w3 * w2 * 9 * (g // 4) ** 2 + w3 * w3 * 9 * (g // 4) ** 2 + w3 * 16)
    msem = 9 * g * g
    assert macs["rgb"] == enc_rgb + msem
    assert macs["total"] == macs["rgb"] + macs["motion"] + macs["heads"]
    assert isinstance(m.gate.net[0], nn.Linear)
