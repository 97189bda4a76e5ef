"""The shipped embedded LM, its local-pretraining fallback, linear RoPE scaling (position
interpolation) and LongLoRA's trainable embeddings and norms."""

import json

import pytest
import torch

from lemo import models
from lemo.config import LemoConfig, LoraConfig, ModelConfig
from lemo.loss import causal_lm_loss
from lemo.models import (
    WEIGHTS_DIR,
    add_lora,
    build_model,
    embedded_key,
    embedded_model_file,
    load_model,
)
from lemo.patch import apply_lemo
from lemo.pretrain import main as pretrain_main
from shared.cli import run
from shared.config import from_dict
from shared.errors import ConfigError

torch.set_num_threads(1)
TINY = dict(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64)


def _no_pretraining(*a, **k):
    raise AssertionError("pretrained locally although the weights are shipped")


def test_shipped_weights_match_the_default_config_and_load(monkeypatch):
    cfg = ModelConfig()
    key = embedded_key(cfg)
    assert (WEIGHTS_DIR / f"{key}.pt").is_file(), f"no shipped weights for the default key {key}"
    record = json.loads((WEIGHTS_DIR / f"{key}.json").read_text())
    assert record["key"] == key
    assert from_dict(ModelConfig, record["model"]) == cfg  # the recipe that made them
    monkeypatch.setattr("lemo.pretrain.pretrain_embedded", _no_pretraining)
    assert embedded_model_file(cfg) == WEIGHTS_DIR / f"{key}.pt"
    model = load_model(cfg)
    assert next(model.parameters()).dtype == torch.float32
    # RoPE scaling is a fine-tuning-time choice: same key, same shipped weights
    scaled = ModelConfig(rope_scaling_factor=4.0)
    assert embedded_key(scaled) == key
    sd = load_model(scaled).state_dict()
    assert all(torch.equal(v, sd[k]) for k, v in model.state_dict().items())


def test_mismatched_key_pretrains_locally_and_caches(monkeypatch, tmp_path):
    monkeypatch.setenv("PAPERBENCH_CACHE", str(tmp_path))
    cfg = ModelConfig(**TINY, pretrain_steps=3, pretrain_batch=2, pretrain_seq_len=256,
                      pretrain_corpus_bytes=100_000, pretrain_passkey_mix=0.5)
    assert not (WEIGHTS_DIR / f"{embedded_key(cfg)}.pt").exists()
    calls = []
    real = models_pretrain = __import__("lemo.pretrain", fromlist=["x"]).pretrain_embedded

    def counting(model, c, device, **kw):
        calls.append(c)
        return real(model, c, device, **kw)

    monkeypatch.setattr("lemo.pretrain.pretrain_embedded", counting)
    path = embedded_model_file(cfg)
    assert path.parent == tmp_path and path.name == f"{embedded_key(cfg)}.pt" and len(calls) == 1
    random_init = build_model(cfg, cfg.pretrain_seed).state_dict()
    trained = load_model(cfg).state_dict()
    assert any(not torch.equal(trained[k], v) for k, v in random_init.items())
    load_model(cfg)  # second load: from the cache, no pretraining
    assert len(calls) == 1 and models_pretrain is real


def test_pretrain_recipe_writes_keyed_weights_and_record(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(models, "WEIGHTS_DIR", tmp_path / "weights")
    out = tmp_path / "run"
    argv = ["--device", "cpu", "--out", str(out), "--install", "--set", "passkey_trials=2",
            "--set", "eval_windows=1", "--set", "model.pretrain_steps=2",
            "--set", "model.pretrain_batch=2", "--set", "model.pretrain_seq_len=256",
            "--set", "model.pretrain_corpus_bytes=100000"]
    argv += [a for k, v in TINY.items() for a in ("--set", f"model.{k}={v}")]
    with pytest.raises(SystemExit) as e:
        run(pretrain_main, argv)
    assert e.value.code == 0
    key = json.loads(next(out.glob("*.json")).read_text())["key"]
    assert (out / f"{key}.pt").is_file() and (tmp_path / "weights" / f"{key}.pt").is_file()
    sd = torch.load(out / f"{key}.pt")
    assert all(v.dtype == torch.float16 for v in sd.values() if v.is_floating_point())
    # a rerun resumes under the same recipe only (evaluation settings may change)
    saved = (out / "config.yaml").read_text()
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run(pretrain_main, argv + ["--set", "model.pretrain_lr=0.01"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "model.pretrain_lr=" in err and len(err.splitlines()) == 1
    assert (out / "config.yaml").read_text() == saved
    with pytest.raises(SystemExit) as e:
        run(pretrain_main, argv + ["--set", "passkey_trials=1"])
    assert e.value.code == 0 and "passkey_trials: 1" in (out / "config.yaml").read_text()


def test_pretrain_rejects_rope_scaling(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        run(pretrain_main, ["--out", str(tmp_path), "--set", "model.rope_scaling_factor=2"])
    assert e.value.code == 2 and "rope_scaling_factor" in capsys.readouterr().err


def _cos_sin(model, positions):
    rot = model.model.rotary_emb
    x = torch.zeros(1, len(positions), model.config.hidden_size)
    return rot(x, torch.as_tensor(positions, dtype=torch.float32)[None])


@pytest.mark.parametrize("factor", [2.0, 4.0])
def test_linear_rope_scaling_is_position_interpolation(factor, tmp_path):
    """cos/sin at position p with factor f equal the unscaled ones at p / f (embedded model and
    a save_pretrained checkpoint loaded with model.rope_scaling_factor)."""
    p = torch.arange(0, 64, dtype=torch.float32) * 3
    plain = build_model(ModelConfig(**TINY))
    scaled = build_model(ModelConfig(**TINY, rope_scaling_factor=factor))
    cos_s, sin_s = _cos_sin(scaled, p)
    cos_p, sin_p = _cos_sin(plain, p / factor)
    torch.testing.assert_close(cos_s, cos_p)
    torch.testing.assert_close(sin_s, sin_p)
    assert not torch.allclose(cos_s, _cos_sin(plain, p)[0])
    plain.save_pretrained(str(tmp_path))
    loaded = load_model(ModelConfig(path=str(tmp_path), rope_scaling_factor=factor))
    assert loaded.config.rope_parameters["rope_type"] == "linear"
    torch.testing.assert_close(_cos_sin(loaded, p)[0], cos_p)


def test_rope_scaling_bad_input(tmp_path):
    with pytest.raises(ConfigError, match="rope_scaling_factor"):
        from_dict(ModelConfig, {"rope_scaling_factor": 0.5})
    build_model(ModelConfig(arch="opt", **TINY)).save_pretrained(str(tmp_path))
    with pytest.raises(ConfigError, match="no RoPE"):
        load_model(ModelConfig(path=str(tmp_path), rope_scaling_factor=2.0))


@pytest.mark.parametrize("train_embed_norm", [False, True])
def test_longlora_trainable_embed_and_norms_get_exactly_those_gradients(train_embed_norm):
    model = build_model(ModelConfig(**TINY)).train()
    apply_lemo(model, LemoConfig(block_size=16, keep_ratio=0.5, dense_first=0.0,
                                 dense_last=False, segment_size=0))
    model = add_lora(model, LoraConfig(train_embed_norm=train_embed_norm))
    x = torch.randint(0, 256, (1, 64), generator=torch.Generator().manual_seed(0))
    causal_lm_loss(model, x, segment=0).backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert with_grad == trainable
    lora = {n for n in with_grad if "lora_" in n}
    assert len(lora) == 4 * 2 * TINY["num_layers"]  # A and B of q/k/v/o per layer
    rest = with_grad - lora
    if not train_embed_norm:
        assert rest == set()
        return
    # every norm (2 per layer + final) and the embedding, as peft's trainable copies
    assert all("modules_to_save" in n for n in rest)
    assert sum("layernorm" in n for n in rest) == 2 * TINY["num_layers"]
    assert sum("model.norm" in n for n in rest) == 1
    assert sum("embed_tokens" in n for n in rest) == 1
    assert not any(k in n for n in rest for k in ("mlp", "q_proj", "o_proj"))


def test_recent_block_eliminator_keeps_the_last_blocks_within_the_budget():
    """The diagnostic probe keeps the last `recent` blocks plus the best earlier ones; the
    paper's rule on the same (causally biased, decreasing) scores keeps a pure prefix."""
    from lemo.experiments.probes import RecentBlockEliminator
    from lemo.scoring import TokenEliminator

    scores = torch.linspace(10, 1, 10).repeat(3, 1) + torch.rand(3, 10) * 0.1
    paper = TokenEliminator(16, 0.4).select_blocks(scores)
    assert paper.tolist() == [[0, 1, 2, 3]] * 3
    probe = RecentBlockEliminator(16, 0.4, recent=2).select_blocks(scores)
    assert probe.tolist() == [[0, 1, 8, 9]] * 3  # same count k = 4, sorted
    assert RecentBlockEliminator(16, 1.0, recent=2).select_blocks(scores).shape == (3, 10)
