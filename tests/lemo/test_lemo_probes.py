"""Passkey diagnostics: the oracle eliminator probe, passkey block flags, and the eliminating
layer's kept tokens checked against transformers' own dense decoder layer run on the kept rows."""

import copy

import numpy as np
import torch

from lemo.config import LemoConfig, LoraConfig, ModelConfig
from lemo.data import make_passkey_batch
from lemo.experiments.probes import OracleBlockEliminator, passkey_blocks
from lemo.models import add_lora, build_model
from lemo.patch import apply_lemo, lemo_layers
from lemo.scoring import TokenEliminator

torch.set_num_threads(1)


def test_oracle_eliminator_keeps_forced_blocks_within_the_budget():
    scores = torch.linspace(10, 1, 10).repeat(2, 1)
    oracle = OracleBlockEliminator(16, 0.4)
    assert torch.equal(oracle.select_blocks(scores), TokenEliminator(16, 0.4).select_blocks(scores))
    forced = torch.zeros(2, 10, dtype=torch.bool)
    forced[0, [5, 9]] = True  # row 1: nothing forced -> the paper's top-k
    oracle.forced = forced
    assert oracle.select_blocks(scores).tolist() == [[0, 1, 5, 9], [0, 1, 2, 3]]
    oracle.forced = torch.zeros(3, 10, dtype=torch.bool)  # another batch's flags: ignored
    assert oracle.select_blocks(scores).tolist() == [[0, 1, 2, 3]] * 2


def test_passkey_blocks_flag_needle_and_question():
    keys = make_passkey_batch(6, 1024, np.random.default_rng(0))
    x = torch.from_numpy(keys)
    f = passkey_blocks(x, 64)
    assert f.shape == (6, 16)
    for r in range(6):
        raw = bytes(keys[r].astype(np.uint8).tolist())
        pos = raw.find(b"The pass key is")
        assert f[r, pos // 64] and f[r, -1]  # needle's first block, question's (last) block
        assert 2 <= int(f[r].sum()) <= 4  # each span straddles at most two blocks
    text = torch.randint(97, 123, (2, 1024))  # lowercase letters: no passkey
    assert not passkey_blocks(text, 64).any()


def test_kept_tokens_equal_a_dense_hf_layer_on_the_kept_rows():
    """An eliminating layer's output at kept positions = transformers' own (dense) decoder layer
    applied to the kept rows alone, at their original RoPE positions; dropped rows = MLP only."""
    cfg = ModelConfig(hidden_size=32, num_layers=4, num_heads=4, num_kv_heads=2,
                      intermediate_size=64)
    torch.manual_seed(0)
    m = add_lora(build_model(cfg, seed=0).train(), LoraConfig())
    for n, p in m.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)
    base = m.get_base_model()
    dense_layer = copy.deepcopy(base.model.layers[2])  # HF LlamaDecoderLayer (peft LoRA inside)
    apply_lemo(m, LemoConfig(keep_ratio=0.5, block_size=16, score_reduce="mean"))
    layer = lemo_layers(m)[2]
    assert layer.eliminating
    h = torch.randn(1, 128, 32)
    pos = torch.arange(128)[None]
    with torch.no_grad():
        out = layer(h, position_embeddings=base.model.rotary_emb(h, pos))
        idx = layer.last_idx[0]
        assert not torch.equal(idx, torch.arange(64))
        sub = h[:, idx]
        ref = dense_layer(sub, attention_mask=None, position_ids=idx[None],
                          position_embeddings=base.model.rotary_emb(sub, idx[None]))
        ref = ref[0] if isinstance(ref, tuple) else ref
    assert torch.allclose(out[:, idx], ref, atol=1e-5)
    dropped = torch.ones(128, dtype=torch.bool)
    dropped[idx] = False
    mlp_only = h + layer.mlp(layer.post_attention_layernorm(h))
    assert torch.allclose(out[:, dropped], mlp_only[:, dropped], atol=1e-6)


def test_random_eliminator_keeps_k_sorted_blocks_anywhere():
    from lemo.experiments.probes import RandomBlockEliminator

    scores = torch.linspace(10, 1, 16).repeat(64, 1)  # the paper's rule: always blocks 0..6
    kept = RandomBlockEliminator(16, 0.4, seed=0).select_blocks(scores)
    assert kept.shape == (64, 7)
    assert torch.equal(kept, kept.sort(-1).values) and (kept.diff(dim=-1) > 0).all()
    hits = torch.zeros(16).index_add_(0, kept.flatten(), torch.ones(kept.numel()))
    assert (hits > 0).all()  # every block, the last included, is kept some of the time


def test_dense_eval_after_lemo_training_uses_the_trained_weights():
    """After LoRA steps under elimination, the (dense) eval forward equals a plain HF model that
    is given the same trained adapter: the eval path sees exactly the weights LeMo trained."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    from lemo.loss import causal_lm_loss

    cfg = ModelConfig(hidden_size=32, num_layers=4, num_heads=4, num_kv_heads=2,
                      intermediate_size=64)
    torch.manual_seed(0)
    m = build_model(cfg, seed=0).train()
    apply_lemo(m, LemoConfig(keep_ratio=0.5, block_size=16, mlp_prune_ratio=0.5))
    m = add_lora(m, LoraConfig())
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    x = torch.randint(0, 256, (1, 128))
    for _ in range(3):
        opt.zero_grad()
        causal_lm_loss(m, x, segment=64).backward()
        opt.step()
    assert any(layer.last_idx is not None and layer.last_idx.shape[1] < 128
               for layer in lemo_layers(m))
    plain = add_lora(build_model(cfg, seed=0), LoraConfig())  # no LeMo layers at all
    set_peft_model_state_dict(plain, get_peft_model_state_dict(m))
    m.eval()
    plain.eval()
    with torch.no_grad():
        assert torch.allclose(m(input_ids=x).logits, plain(input_ids=x).logits, atol=1e-5)


def test_sweep_routes_probe_overrides_to_the_probe():
    from lemo.bench import BenchConfig
    from lemo.experiments.passkey_sweep import job_configs, settings
    from lemo.experiments.probes import ProbeConfig
    from shared.config import to_dict

    (combo,) = settings(["probe.keep_recent=1 & ft_steps=7"])
    bc, probe = job_configs(to_dict(BenchConfig()), ProbeConfig(), combo)
    assert bc.ft_steps == 7 and probe == ProbeConfig(keep_recent=1)
    assert not any(f.startswith("probe") for f in to_dict(BenchConfig()))
