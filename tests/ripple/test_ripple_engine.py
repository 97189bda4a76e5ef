"""End to end: an FFN computed from neurons read through the layout file equals the dense FFN."""

import numpy as np
import pytest
import torch

from ripple.config import ModelConfig, OnlineConfig
from ripple.engine import ARMS, ArmSpec, FlashFFN, replay
from ripple.layout import FlashLayout, make_bundles, write_layout
from ripple.models import build_model, ffn_layers, ffn_weights
from ripple.placement import GreedyEdgePlacement
from ripple.storage import UFSModel
from shared.errors import DataError

TINY = ModelConfig(d_model=16, ffn_dim=64, layers=2, heads=2, max_positions=32)


@pytest.fixture(scope="module")
def tiny():
    """A tiny random OPT, its FFN inputs/outputs on real bytes, and masks from its ReLU."""
    model = build_model(TINY, seed=0).eval()
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, size=(4, 32)))
    ins, outs = {}, {}
    hooks = []
    for li, layer in enumerate(ffn_layers(model)):
        hooks.append(layer.fc1.register_forward_hook(
            lambda m, i, o, li=li: ins.__setitem__(li, i[0].reshape(-1, 16).numpy())))
        hooks.append(layer.fc2.register_forward_hook(
            lambda m, i, o, li=li: outs.__setitem__(li, o.reshape(-1, 16).numpy())))
    with torch.no_grad():
        model(input_ids=x)
    for h in hooks:
        h.remove()
    return model, ins, outs


@pytest.mark.parametrize("spec", ARMS, ids=[a.name for a in ARMS])
def test_flash_ffn_equals_dense_ffn_on_the_activated_set(tiny, tmp_path, spec):
    model, ins, outs = tiny
    w = ffn_weights(model)
    masks = np.stack([(ins[li] @ w[li]["up"].T + w[li]["b1"]) > 0 for li in range(2)])
    orders = [GreedyEdgePlacement(top_k=8).fit(m) for m in masks] if spec.placement == "ripple" \
        else [np.arange(64)] * 2
    lay = FlashLayout(write_layout(tmp_path / "ffn.bin",
                                   [make_bundles(x["up"], x["down"]) for x in w], orders))
    online = OnlineConfig(cache_ratio=0.2, segment_admit=0.3, retune_every=2)
    for li in range(2):
        ffn = FlashFFN(lay, li, orders[li], w[li]["b1"], w[li]["b2"], spec, online,
                       UFSModel(), seed=0)
        for t in range(ins[li].shape[0]):
            y = ffn.forward(ins[li][t], np.flatnonzero(masks[li, t]))
            np.testing.assert_allclose(y, outs[li][t], rtol=1e-5, atol=1e-5)
        assert ffn.reads > 0
        # on a strict subset of the active set the sparse FFN is the masked dense FFN
        sub = np.flatnonzero(masks[li, 0])[::2]
        h = np.zeros(64, np.float32)
        h[sub] = np.maximum(ins[li][0] @ w[li]["up"][sub].T + w[li]["b1"][sub], 0)
        np.testing.assert_allclose(ffn.forward(ins[li][0], sub), h @ w[li]["down"] + w[li]["b2"],
                                   rtol=1e-5, atol=1e-5)


def test_flash_ffn_rejects_a_mismatched_permutation(tiny, tmp_path):
    model, _, _ = tiny
    w = ffn_weights(model)
    order = np.random.default_rng(0).permutation(64)
    lay = FlashLayout(write_layout(tmp_path / "f.bin", [make_bundles(w[0]["up"], w[0]["down"])],
                                   [order]))
    with pytest.raises(DataError, match="does not match"):
        FlashFFN(lay, 0, np.arange(64), w[0]["b1"], w[0]["b2"], ARMS[0], OnlineConfig(),
                 UFSModel())


def test_replay_accounting():
    rng = np.random.default_rng(0)
    masks = rng.random((2, 40, 100)) < 0.1
    orders = [np.arange(100)] * 2
    online = OnlineConfig(cache_ratio=0.01)  # one neuron cached per layer
    per_neuron = replay(masks, orders, ArmSpec("n", "identity", reads="neuron"), online,
                        UFSModel(), 1024)
    runs = replay(masks, orders, ArmSpec("r", "identity"), online, UFSModel(), 1024, record=3)
    assert per_neuron["mean_run"] == 1.0 and per_neuron["read_amp"] == 1.0
    assert runs["ios_per_token"] <= per_neuron["ios_per_token"]
    assert per_neuron["ios_per_token"] == pytest.approx(
        masks.sum() / 40 * (1 - per_neuron["hit_rate"]))
    assert len(runs["extents"]) == 3 and len(runs["extents"][0]) == 2
    with pytest.raises(DataError, match="placements"):
        replay(masks, orders[:1], ARMS[0], online, UFSModel(), 1024)
    with pytest.raises(DataError, match="3-D"):
        replay(masks[0], orders, ARMS[0], online, UFSModel(), 1024)


def test_gated_relu_llama_checkpoint_end_to_end(tmp_path):
    """A Llama-style ReLU checkpoint by path: masks from gate_proj, [gate, up, down] bundles,
    and the flash FFN equals the model's MLP on real forward-pass inputs."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ripple.models import collect_masks, load_model

    torch.manual_seed(0)
    conf = LlamaConfig(vocab_size=256, hidden_size=16, intermediate_size=48, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=2, hidden_act="relu",
                       max_position_embeddings=64)
    LlamaForCausalLM(conf).save_pretrained(tmp_path / "llama")
    model = load_model(tmp_path / "llama")
    tokens = np.random.default_rng(0).integers(0, 256, size=100).astype(np.uint8)
    masks = collect_masks(model, tokens, 64, 32)
    assert masks.shape == (2, 64, 48) and 0 < masks.mean() < 1
    w = ffn_weights(model)
    assert w[0]["bundles"].shape == (48, 3, 16)
    ins, outs = {}, {}
    mlp = ffn_layers(model)[1].mlp

    def grab(m, i, o):
        ins[0], outs[0] = i[0].reshape(-1, 16).numpy(), o.reshape(-1, 16).numpy()

    mlp.register_forward_hook(grab)
    with torch.no_grad():
        model(input_ids=torch.from_numpy(tokens[:64].astype(np.int64).reshape(2, 32)))
    order = GreedyEdgePlacement(top_k=8).fit(masks[1])
    lay = FlashLayout(write_layout(tmp_path / "l.bin", [x["bundles"] for x in w],
                                   [np.arange(48), order]))
    assert lay.parts == 3
    ffn = FlashFFN(lay, 1, order, w[1]["b1"], w[1]["b2"], ARMS[-1], OnlineConfig(), UFSModel())
    for t in range(64):
        np.testing.assert_allclose(ffn.forward(ins[0][t], np.flatnonzero(masks[1, t])),
                                   outs[0][t], rtol=1e-5, atol=1e-5)
    conf.hidden_act = "silu"
    LlamaForCausalLM(conf).save_pretrained(tmp_path / "silu")
    with pytest.raises(DataError, match="needs 'relu'"):
        load_model(tmp_path / "silu")
