"""Model building/training cache, mask collection by hooks, mask files and checkpoint errors."""

import json

import numpy as np
import pytest
import torch

from ripple.config import ModelConfig, TrainConfig
from ripple.data import load_masks, save_masks, synthetic_masks
from ripple.models import (
    _L1Sparsified,
    build_model,
    collect_masks,
    ffn_layers,
    load_model,
    trained_model,
)
from shared.errors import DataError

TINY = ModelConfig(d_model=16, ffn_dim=64, layers=2, heads=2, max_positions=32)


def test_masks_are_exactly_the_neurons_that_matter():
    """Property: removing never-active neurons (their fc2 column) leaves the logits unchanged;
    removing one active neuron changes them."""
    model = build_model(TINY, seed=1).eval()
    with torch.no_grad():
        for layer in ffn_layers(model):
            layer.fc1.bias[:20] -= 100.0  # neurons 0..19 can never fire
    tokens = np.random.default_rng(0).integers(0, 256, size=200).astype(np.uint8)
    m = collect_masks(model, tokens, n_tokens=96, seq_len=32)
    assert m.shape == (2, 96, 64) and m.dtype == bool
    x = torch.from_numpy(tokens[:96].astype(np.int64).reshape(3, 32))
    with torch.no_grad():
        ref = model(input_ids=x).logits.clone()
        for li, layer in enumerate(ffn_layers(model)):
            dead = ~m[li].any(axis=0)
            assert dead[:20].all() and (~dead[20:]).any()
            layer.fc2.weight[:, torch.from_numpy(dead)] = 0.0
        torch.testing.assert_close(model(input_ids=x).logits, ref, rtol=0, atol=0)
        live = int(np.flatnonzero(m[1].any(axis=0))[0])
        ffn_layers(model)[1].fc2.weight[:, live] = 0.0
        assert not torch.allclose(model(input_ids=x).logits, ref)


def test_l1_penalty_is_added_to_the_loss():
    model = build_model(TINY, seed=0)
    x = torch.randint(0, 256, (2, 16))
    base = float(model(input_ids=x, labels=x).loss)
    wrapped = float(_L1Sparsified(model, l1=10.0)(input_ids=x, labels=x).loss)
    assert wrapped > base + 1e-3


def test_trained_model_is_cached_and_loadable(tmp_path):
    tcfg = TrainConfig(steps=3, batch_size=2, seq_len=16, train_bytes=20000)
    a = trained_model(TINY, tcfg, seed=0)
    b = trained_model(TINY, tcfg, seed=0)  # second call: from the cache, identical weights
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert a.config.activation_function == "relu"


def test_bad_checkpoints_are_rejected(tmp_path):
    with pytest.raises(DataError, match="no config.json"):
        load_model(tmp_path)
    model = build_model(TINY)
    model.config.activation_function = "gelu"
    model.save_pretrained(tmp_path / "gelu")
    with pytest.raises(DataError, match="needs 'relu'"):
        load_model(tmp_path / "gelu")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text(json.dumps({"model_type": "opt"}))
    (tmp_path / "broken" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot load"):
        load_model(tmp_path / "broken")


def test_mask_files_round_trip_and_reject_corruption(tmp_path):
    m = synthetic_masks(100, 30, layers=2, seed=0)
    save_masks(tmp_path / "m.npz", m)
    np.testing.assert_array_equal(load_masks(tmp_path / "m.npz", n=100), m)
    with pytest.raises(DataError, match="expected 99"):
        load_masks(tmp_path / "m.npz", n=99)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="corrupt"):
        load_masks(tmp_path / "bad.npz")
    np.savez(tmp_path / "nokey.npz", shape=np.array([1, 2, 3]))
    with pytest.raises(DataError, match="lacks key"):
        load_masks(tmp_path / "nokey.npz")
    with pytest.raises(DataError, match="not found"):
        load_masks(tmp_path / "missing.npz")
    with pytest.raises(DataError, match="3-D"):
        save_masks(tmp_path / "x.npz", m[0])
