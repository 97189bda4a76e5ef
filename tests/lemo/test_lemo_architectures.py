"""Today's architectures: at keep ratio 1 every LeMo layer (eliminating, with its own RoPE,
q/k norms and fused projections) must reproduce the dense peft model's loss and LoRA gradients
(fp32, <= 1e-5 relative). Tiny random configs built from transformers classes."""

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


MODELS = {
    "llama3_rope": llama3_model,
    "qwen3": lambda: build_model(ModelConfig(arch="qwen3", **SHAPE)).train(),
    "phi3": lambda: build_model(ModelConfig(arch="phi3", **SHAPE)).train(),
    "phi3_partial_rope": phi3_partial_model,
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
                                 dense_last=False))
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


def test_phi3_sliding_window_is_refused():
    from shared.errors import ConfigError

    m = MODELS["phi3"]()
    m.config.sliding_window = 16
    with pytest.raises(ConfigError, match="sliding-window attention \\(sliding_window=16\\)"):
        apply_lemo(m, LemoConfig(block_size=B))
