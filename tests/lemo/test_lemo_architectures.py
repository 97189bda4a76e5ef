"""Today's architectures: at keep ratio 1 every LeMo layer (eliminating, with its own RoPE,
q/k norms, fused projections, sandwich norms, soft-capping and sliding windows) must reproduce
the dense peft model's loss and LoRA gradients (fp32, <= 1e-5 relative); with elimination on,
a Gemma layer equals a slow full-length masked reference. Tiny random configs built from
transformers classes."""

import pytest
import torch

from lemo.config import LemoConfig, LoraConfig, ModelConfig
from lemo.loss import causal_lm_loss
from lemo.mlp import channel_pruned_mlp
from lemo.models import add_lora, build_model, tiny_config
from lemo.patch import apply_lemo, lemo_layers

torch.set_num_threads(1)
B = 16
SHAPE = dict(hidden_size=32, num_layers=3, num_heads=4, num_kv_heads=2, intermediate_size=64)


def llama3_model():
    """Llama 3.x RoPE ("llama3" rope_type: low frequencies scaled by `factor`, a smooth band);
    original_max_position_embeddings small enough that 64 tokens reach the scaled band."""
    from transformers import AutoModelForCausalLM

    hc = tiny_config(ModelConfig(**SHAPE))
    hc.rope_parameters = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                          "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 16}
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(hc, attn_implementation="sdpa").train()


def phi3_partial_model():
    """Phi-3 with partial RoPE (Phi-4-mini's layout): half of each head is rotated."""
    from transformers import AutoModelForCausalLM

    hc = tiny_config(ModelConfig(arch="phi3", **SHAPE))
    hc.rope_parameters = {**hc.rope_parameters, "partial_rotary_factor": 0.5}
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(hc, attn_implementation="sdpa").train()


WINDOW = 24  # shorter than the 64-token inputs: a query sees 24 tokens, itself included


def hf_model(arch: str, **overrides):
    """A tiny random model of `arch` with HF config fields overridden before it is built."""
    from transformers import AutoModelForCausalLM

    from lemo.models import attn_implementation

    hc = tiny_config(ModelConfig(arch=arch, **SHAPE))
    for k, v in overrides.items():
        setattr(hc, k, v)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(
        hc, attn_implementation=attn_implementation(hc.model_type)).train()


# Gemma 2: soft-capping at 1.0 (attention and final logits) on weights drawn with std 0.3, so
# that tanh bends these tiny models' logits (the family's 50 / 30 on std-0.02 weights would be
# inert here); sliding / full layers alternate.
GEMMA2 = dict(attn_logit_softcapping=1.0, final_logit_softcapping=1.0, sliding_window=WINDOW,
              initializer_range=0.3)
# Gemma 3: q/k norms, sliding layers 0-1, full layer 2, a RoPE per layer type.
GEMMA3 = dict(sliding_window=WINDOW, layer_types=["sliding_attention", "sliding_attention",
                                                  "full_attention"])

MODELS = {
    "llama3_rope": llama3_model,
    "qwen3": lambda: build_model(ModelConfig(arch="qwen3", **SHAPE)).train(),
    "phi3": lambda: build_model(ModelConfig(arch="phi3", **SHAPE)).train(),
    "phi3_partial_rope": phi3_partial_model,
    "gemma2": lambda: hf_model("gemma2", **GEMMA2),
    "gemma3": lambda: hf_model("gemma3", **GEMMA3),
    # sliding windows shorter than the input, applied on original positions
    "mistral_window": lambda: hf_model("mistral", sliding_window=WINDOW),
    "phi3_window": lambda: hf_model("phi3", sliding_window=WINDOW),
    "qwen2_window": lambda: hf_model("qwen2", use_sliding_window=True, sliding_window=WINDOW,
                                     max_window_layers=1,
                                     layer_types=["full_attention", "sliding_attention",
                                                  "sliding_attention"]),
}


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def close(a, b, rel=1e-5):
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max()) <= rel * max(float(b.abs().max()), 1e-12)


@pytest.mark.parametrize("name", list(MODELS))
def test_keep_ratio_one_reproduces_dense(name):
    torch.manual_seed(1)
    x = torch.randint(0, 256, (2, 64))
    model = add_lora(MODELS[name](), LoraConfig())
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)
    l0 = causal_lm_loss(model, x, segment=0)
    l0.backward()
    g0 = grads(model)
    model.zero_grad()
    apply_lemo(model, LemoConfig(keep_ratio=1.0, block_size=B, dense_first=0.0,
                                 dense_last=False, mlp_prune_ratio=0.0))
    l1 = causal_lm_loss(model, x, segment=32)
    l1.backward()
    g1 = grads(model)
    assert all(layer.eliminating and layer.last_idx.shape[1] == 64
               for layer in lemo_layers(model))
    assert close(l1, l0)
    assert g0.keys() == g1.keys() and len(g0) == 2 * SHAPE["num_layers"] * (
        2 if name.startswith("phi3") else 4)  # A and B of every adapter
    for n in g0:
        assert close(g1[n], g0[n]), n


def test_each_architecture_exercises_what_it_adds():
    """The equality above would prove nothing if the feature were inert in these configs."""
    pos = torch.arange(64)[None]
    h = torch.zeros(1, 64, 32)
    plain = build_model(ModelConfig(**SHAPE))
    c_plain, _ = plain.model.rotary_emb(h, pos)
    c_l3, _ = llama3_model().model.rotary_emb(h, pos)
    assert not torch.allclose(c_plain, c_l3, atol=1e-3)
    assert phi3_partial_model().model.rotary_emb(h, pos)[0].shape[-1] == 4  # of head_dim 8
    attn = MODELS["qwen3"]().model.layers[0].self_attn
    assert hasattr(attn, "q_norm") and hasattr(attn, "k_norm")
    phi = MODELS["phi3"]().model.layers[0]
    assert hasattr(phi.self_attn, "qkv_proj") and hasattr(phi.mlp, "gate_up_proj")


def test_phi3_fused_mlp_pruning_equals_the_split_swiglu():
    """Phi-3's gate_up_proj = [gate | up]: pruning it equals pruning a gate/up-split MLP."""
    from lemo.mlp import PrunedSwiGLUFunction

    mlp = MODELS["phi3"]().model.layers[0].mlp.requires_grad_(False)
    x = torch.randn(2, 32, 32, requires_grad=True)
    y = channel_pruned_mlp(mlp, x, 0.5)
    assert torch.allclose(y, mlp(x), atol=1e-6)  # forward is dense
    y.square().sum().backward()
    wg, wu = mlp.gate_up_proj.weight.chunk(2)
    x2 = x.detach().clone().requires_grad_()
    PrunedSwiGLUFunction.apply(x2, wg, wu, mlp.down_proj.weight, None, None, None,
                               32).square().sum().backward()
    assert torch.allclose(x.grad, x2.grad, atol=1e-6)


def _dense_loss(model, x):
    with torch.no_grad():
        return float(model(input_ids=x, labels=x, use_cache=False).loss)


@pytest.mark.parametrize("name", ["gemma2", "gemma3", "mistral_window", "phi3_window",
                                  "qwen2_window"])
def test_windows_and_softcaps_change_the_dense_model(name):
    """The keep-ratio-1 equality covers sliding windows and soft-capping only if they act here:
    the same weights without them give another loss."""
    torch.manual_seed(2)
    x = torch.randint(0, 256, (2, 64))
    model = MODELS[name]()
    layers = apply_lemo(model, LemoConfig(block_size=B, dense_first=0.0, dense_last=False))
    assert any(m.window(64) == WINDOW for m in layers)
    plain = MODELS[name]()  # same seed, same weights, a window longer than the input
    plain.config.sliding_window = 4096
    for layer in plain.model.layers:
        if getattr(layer.self_attn, "sliding_window", None):
            layer.self_attn.sliding_window = 4096
    full = _dense_loss(MODELS[name](), x)
    assert abs(_dense_loss(plain, x) - full) > 3e-5
    if name == "gemma2":
        assert [m.softcap() for m in layers] == [1.0] * 3
        no_attn_cap, no_final_cap = MODELS[name](), MODELS[name]()
        for layer in no_attn_cap.model.layers:
            layer.self_attn.attn_logit_softcapping = None
        no_final_cap.config.final_logit_softcapping = None
        assert abs(_dense_loss(no_attn_cap, x) - full) > 1e-2
        assert abs(_dense_loss(no_final_cap, x) - full) > 1e-2


def slow_gemma_layer(layer, h, cos, sin, idx, window, softcap):
    """Reference for an eliminating Gemma layer: full-length q/k/v (+ q/k norms), eager attention
    with soft-capped logits, masked to kept→kept causal pairs closer than `window`; the
    post-attention norm's output added at kept positions only; sandwich-normed MLP."""
    a = layer.self_attn
    b, s, _ = h.shape
    x = layer.input_layernorm(h)
    q, k, v = (p(x).view(b, s, -1, a.head_dim) for p in (a.q_proj, a.k_proj, a.v_proj))
    if hasattr(a, "q_norm"):
        q, k = a.q_norm(q), a.k_norm(k)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))

    def rot(t):
        t1, t2 = t.chunk(2, -1)
        return torch.cat([-t2, t1], -1)
    c, sn = cos.unsqueeze(1), sin.unsqueeze(1)
    q, k = q * c + rot(q) * sn, k * c + rot(k) * sn
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    kept = torch.zeros(b, s, dtype=torch.bool).scatter_(1, idx, True)
    i = torch.arange(s)
    near = (i[:, None] - i[None, :] < window) if window else torch.ones(s, s, dtype=torch.bool)
    allow = kept[:, :, None] & kept[:, None, :] & torch.ones(s, s, dtype=torch.bool).tril() & near
    allow = allow | torch.eye(s, dtype=torch.bool)  # dropped rows: any finite value
    logits = (q @ k.transpose(-1, -2)) * a.scaling
    if softcap:
        logits = softcap * torch.tanh(logits / softcap)
    o = logits.masked_fill(~allow[:, None], float("-inf")).softmax(-1) @ v
    o = a.o_proj(o.transpose(1, 2).reshape(b, s, -1))
    out = h + layer.post_attention_layernorm(o) * kept[..., None]
    return out + layer.post_feedforward_layernorm(layer.mlp(layer.pre_feedforward_layernorm(out)))


@pytest.mark.parametrize("name,layer_idx", [("gemma2", 0), ("gemma2", 1), ("gemma3", 0),
                                            ("gemma3", 2)])
def test_gemma_eliminating_layer_matches_slow_reference(name, layer_idx):
    """Elimination on (keep 0.5, not a prefix): output and gradients of a Gemma layer (sliding or
    full, soft-capped or q/k-normed) equal the slow full-length masked reference."""
    from lemo.layers import LemoGemmaDecoderLayer

    m = add_lora(MODELS[name](), LoraConfig())
    for n, p in m.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)
    apply_lemo(m, LemoConfig(keep_ratio=0.5, block_size=B, score_reduce="mean", local_blocks=1,
                             sink_blocks=0, dense_first=0.0, dense_last=False,
                             mlp_prune_ratio=0.0))
    layer = lemo_layers(m)[layer_idx]
    assert isinstance(layer, LemoGemmaDecoderLayer) and layer.eliminating
    torch.manual_seed(3)
    h = torch.randn(2, 64, 32, requires_grad=True)
    base = m.get_base_model().model
    pos = torch.arange(64)[None]
    if name == "gemma3":
        cos, sin = base.rotary_emb(h, pos, base.config.layer_types[layer_idx])
    else:
        cos, sin = base.rotary_emb(h, pos)
    out = layer(h, position_embeddings=(cos, sin))
    idx = layer.last_idx
    assert idx.shape == (2, 32) and not torch.equal(idx[0], torch.arange(32))
    window = layer.window(64)
    assert window == (WINDOW if base.config.layer_types[layer_idx] == "sliding_attention"
                      else None)
    w = torch.randn(2, 64, 32)
    (out * w).sum().backward()
    g = {n: p.grad.clone() for n, p in layer.named_parameters() if p.grad is not None}
    gh = h.grad.clone()
    layer.zero_grad()
    h.grad = None
    ref = slow_gemma_layer(layer, h, cos, sin, idx, window, layer.softcap())
    (ref * w).sum().backward()
    assert close(out, ref) and close(gh, h.grad)
    assert len(g) == 8  # A and B of q/k/v/o LoRA
    for n, p in layer.named_parameters():
        if n in g:
            assert close(g[n], p.grad), n


def test_window_tile_mask_equals_a_per_token_check():
    from lemo.scoring import window_tile_mask

    for nb, blk, win in [(6, 4, 1), (6, 4, 5), (6, 4, 9), (5, 3, 7)]:
        s = nb * blk
        i = torch.arange(s)
        near = ((i[:, None] - i[None, :]).abs() < win).view(nb, blk, nb, blk)
        assert torch.equal(window_tile_mask(nb, blk, win), near.any(3).any(1)), (nb, blk, win)


def test_sliding_window_scores_count_only_visible_tiles():
    """Under a window key block j is scored by the query tiles that can see it; with uniform
    tiles and mean reduction every block scores the same."""
    from lemo.scoring import key_block_scores, window_tile_mask

    nb = 8
    vis = window_tile_mask(nb, 16, 24)  # block i sees blocks i, i-1, i-2
    tiles = torch.rand(1, nb, nb)
    col = key_block_scores(tiles, "sum", True, vis)
    brute = torch.tensor([sum(float(tiles[0, i, j]) for i in range(j, min(nb, j + 3)))
                          for j in range(nb)])
    assert torch.allclose(col[0], brute, atol=1e-6)
    flat = key_block_scores(torch.ones(1, nb, nb), "mean", True, vis)
    assert torch.allclose(flat, torch.ones(1, nb))


def test_segment_loss_applies_final_logit_softcapping():
    """causal_lm_loss(segment > 0) = the stock Gemma 2 loss (soft-capped logits) and gradients."""
    m = add_lora(MODELS["gemma2"](), LoraConfig())
    for n, p in m.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)
    x = torch.randint(0, 256, (2, 64))
    l0 = causal_lm_loss(m, x, segment=0)
    g0 = torch.autograd.grad(l0, [p for p in m.parameters() if p.requires_grad])
    l1 = causal_lm_loss(m, x, segment=16)
    g1 = torch.autograd.grad(l1, [p for p in m.parameters() if p.requires_grad])
    assert close(l1, l0)
    for a, b in zip(g1, g0):
        assert close(a, b)


def test_gemma_geglu_pruning_is_dispatched_by_activation():
    """Gemma's MLP is GeGLU (gelu_pytorch_tanh): the pruned MLP's forward equals the module's and,
    keeping every channel, its input gradient is the exact one (a SwiGLU backward would not be);
    an activation without a pruned backward is refused before any work."""
    from lemo.mlp import PrunedGeGLUFunction
    from shared.errors import ConfigError

    mlp = MODELS["gemma3"]().model.layers[0].mlp.requires_grad_(False)
    x = torch.randn(2, 16, 32, requires_grad=True)
    y = channel_pruned_mlp(mlp, x, 1e-9)  # keeps all 64 channels
    assert torch.allclose(y, mlp(x), atol=1e-6)
    assert y.grad_fn.name().startswith(PrunedGeGLUFunction.__name__)
    (g,) = torch.autograd.grad(y.square().sum(), x)
    (ref,) = torch.autograd.grad(mlp(x).square().sum(), x)
    assert torch.allclose(g, ref, atol=1e-5)
    apply_lemo(MODELS["gemma3"](), LemoConfig(block_size=B, mlp_prune_ratio=0.5, dense_first=0.0))
    m = MODELS["gemma3"]()
    m.config.hidden_activation = "gelu"  # exact erf GELU: no pruned backward for it
    with pytest.raises(ConfigError, match="activation is 'gelu'"):
        apply_lemo(m, LemoConfig(block_size=B, mlp_prune_ratio=0.5, dense_first=0.0))


def test_what_gemma_cannot_do_is_refused():
    from shared.errors import ConfigError

    with pytest.raises(ConfigError, match="S2-Attn does not implement"):
        apply_lemo(MODELS["gemma2"](), LemoConfig(block_size=B, attention="s2"))


def test_gemma2_checkpoint_dir_loads_with_eager_attention(tmp_path):
    """A save_pretrained Gemma 2 directory loads through `model.path` with HF's eager attention
    (its sdpa path has no soft-capping) and trains under LeMo."""
    from lemo.models import load_model

    MODELS["gemma2"]().save_pretrained(tmp_path)
    m = load_model(ModelConfig(path=str(tmp_path)))
    assert m.config.model_type == "gemma2" and m.config._attn_implementation == "eager"
    layers = apply_lemo(m, LemoConfig(block_size=B, keep_ratio=0.5, dense_first=0.0,
                                      mlp_prune_ratio=0.0))
    causal_lm_loss(m, torch.randint(0, 256, (1, 64)), segment=32).backward()
    assert layers[0].last_idx.shape == (1, 32)
