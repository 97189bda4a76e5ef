"""ShotVL-lite: the frozen MiniLM tower against sentence-transformers' mean pooling, CLIP-style
checkpoints through `from_pretrained` (a tiny saved CLIPModel), save/load round trips, the
motion channels and the LoRA option."""

import numpy as np
import pytest
import torch

from bestshot.config import ModelConfig
from bestshot.models import (
    ShotVL,
    TextTower,
    from_pretrained,
    load_model,
    minilm_path,
    prepare_frames,
    save_model,
)
from shared.errors import DataError

TINY = ModelConfig(image_size=32, hidden=32, embed_dim=16)


def _frames(n=5, size=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_text_tower_is_mean_pooled_minilm():
    from transformers import AutoModel, AutoTokenizer

    tower = TextTower()
    texts = ["a person squats", "both knees are bent at a right angle and the hands are close"]
    got = tower.embed(texts)
    tok = AutoTokenizer.from_pretrained(minilm_path())
    enc = AutoModel.from_pretrained(minilm_path()).eval()
    for i, t in enumerate(texts):  # one at a time: no padding, a plain mean over tokens
        with torch.no_grad():
            h = enc(**tok([t], return_tensors="pt")).last_hidden_state[0]
        np.testing.assert_allclose(got[i], h.mean(0).numpy(), atol=1e-5)
    assert not any(p.requires_grad for p in tower.parameters())


def test_prepare_frames_shapes_and_motion_channels():
    f = _frames(4)
    x = prepare_frames(f, TINY)
    assert x.shape == (4, 6, 32, 32) and x.dtype == np.float32
    assert np.abs(x[0, 3:]).max() == 0  # the first frame has no predecessor: zero motion
    np.testing.assert_allclose(x[2, 3:], x[2, :3] - x[1, :3], atol=1e-6)
    assert prepare_frames(f, ModelConfig(image_size=32, motion_channels=False)).shape[1] == 3
    with pytest.raises(DataError, match=r"expected shape \(T, H, W, 3\)"):
        prepare_frames(np.zeros((4, 32, 32)), TINY)


@pytest.mark.parametrize("kind", ["resnet", "vit"])
def test_shotvl_save_load_round_trip(tmp_path, kind):
    torch.manual_seed(0)
    cfg = ModelConfig(kind=kind, image_size=32, hidden=32, heads=2, embed_dim=16)
    m = ShotVL(cfg).eval()
    f = _frames()
    e = m.encode_frames(f)
    assert e.shape == (5, 16)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    save_model(m, tmp_path / "m.safetensors")
    m2 = from_pretrained(tmp_path / "m.safetensors")
    np.testing.assert_allclose(m2.encode_frames(f), e, atol=1e-6)
    t = m.encode_texts(["the top of the jump"])
    np.testing.assert_allclose(m2.encode_texts(["the top of the jump"]), t, atol=1e-6)


def test_load_refuses_foreign_and_mis_shaped_files(tmp_path):
    from shared.io import save_weights

    (tmp_path / "x.safetensors").write_bytes(b"not a weights file")
    with pytest.raises(DataError, match="not a bestshot-shotvl weights file"):
        load_model(tmp_path / "x.safetensors")
    m = ShotVL(TINY)
    state = {k: v for k, v in m.state_dict().items()}
    state["img_proj.weight"] = torch.zeros(3, 3)
    save_weights(tmp_path / "bad.safetensors", state, {"kind": "bestshot-shotvl",
                                                       "config": TINY.__dict__})
    with pytest.raises(DataError, match="img_proj.weight"):
        load_model(tmp_path / "bad.safetensors")
    with pytest.raises(DataError, match="model not found"):
        from_pretrained(tmp_path / "nowhere")


def _tiny_clip(path):
    from transformers import AutoTokenizer, CLIPConfig, CLIPModel

    tok = AutoTokenizer.from_pretrained(minilm_path())
    cfg = CLIPConfig(
        text_config=dict(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=64, bos_token_id=101, eos_token_id=102,
                         pad_token_id=0),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, image_size=32, patch_size=8),
        projection_dim=16)
    torch.manual_seed(0)
    clip = CLIPModel(cfg).eval()
    clip.save_pretrained(path)
    tok.save_pretrained(path)
    return clip, tok


def test_from_pretrained_loads_a_clip_style_checkpoint(tmp_path):
    clip, tok = _tiny_clip(tmp_path / "clip")
    enc = from_pretrained(tmp_path / "clip")
    f = _frames(3, 32)
    got = enc.encode_frames(f)
    # reference: the CLIP image tower on the same normalisation, by hand
    x = ((f / 255.0 - enc.MEAN) / enc.STD).transpose(0, 3, 1, 2).astype(np.float32)
    with torch.no_grad():
        ref = clip.get_image_features(pixel_values=torch.from_numpy(x))
        ref = getattr(ref, "pooler_output", ref)
    ref = torch.nn.functional.normalize(ref, dim=-1).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert enc.encode_texts(["a person", "jumps"]).shape == (2, 16)


def test_from_pretrained_refuses_a_non_clip_checkpoint(tmp_path):
    import json

    d = tmp_path / "bert"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(DataError, match="not a CLIP-style"):
        from_pretrained(d)


def test_lora_trains_only_adapters_and_projections(tmp_path):
    cfg = ModelConfig(image_size=32, hidden=32, embed_dim=16, lora_r=2)
    m = ShotVL(cfg, TextTower(lora_r=2))
    tower = {n for n, p in m.named_parameters() if n.startswith("text_tower.") and p.requires_grad}
    assert tower and all("lora_" in n for n in tower)
    before = {n: p.detach().clone() for n, p in m.named_parameters() if n in tower}
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=1.0)
    loss = m.text_features(m.embed_texts_raw(["a squat", "a jump"])).sum()
    (loss * 0 + m.text_features(m.embed_texts_raw(["a squat"]))[0, 0]).backward()
    opt.step()
    assert any(not torch.equal(before[n], p) for n, p in m.named_parameters() if n in before)
    save_model(m, tmp_path / "lora.safetensors")
    m2 = load_model(tmp_path / "lora.safetensors")[0]
    np.testing.assert_allclose(m2.encode_texts(["a squat"]), m.eval().encode_texts(["a squat"]),
                               atol=1e-5)
