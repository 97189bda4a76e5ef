"""`lemo.kernels.lora_linear` against peft's own LoRA Linear forward: same outputs and gradients
(x, A, B), and on a bf16 model it saves x once instead of one fp32 copy per projection."""

import pytest
import torch
from torch import nn

from lemo import kernels
from shared.memory import SavedTensorMeter

torch.set_num_threads(1)


def _lora_qkv(dtype, lora_bias=False):
    from peft import LoraConfig, get_peft_model

    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj, self.k_proj, self.v_proj = (nn.Linear(32, n, bias=b) for n, b in
                                                     ((48, False), (16, True), (16, False)))

        def forward(self, x):
            return self.q_proj(x)

    torch.manual_seed(0)
    model = Attn().to(dtype)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj",
                                                                                 "v_proj"],
                                             lora_bias=lora_bias))
    inner = model.base_model.model
    for name, p in model.named_parameters():  # peft initialises B = 0: make the test non-trivial
        if "lora_B" in name:
            nn.init.normal_(p, std=0.5)
    return model, [inner.q_proj, inner.k_proj, inner.v_proj]


def _group(mods, x):
    return kernels.lora_linear_group(mods, x)


def _single(mods, x):
    return [kernels.lora_linear(m, x) for m in mods]


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("lora_bias", [False, True])
@pytest.mark.parametrize("lean", [_single, _group])
def test_lora_linear_equals_peft(dtype, tol, lora_bias, lean):
    model, mods = _lora_qkv(dtype, lora_bias)
    assert mods[0].lora_A["default"].weight.dtype == torch.float32  # peft's default: fp32 adapters
    x0 = torch.randn(2, 10, 32).to(dtype)
    params = [p for p in model.parameters() if p.requires_grad]
    res = []
    for fn in (lambda ms, x: [m(x) for m in ms], lean):
        x = x0.clone().requires_grad_()
        ys = fn(mods, x)
        loss = sum((y.float() * torch.linspace(-1, 1, y.shape[-1])).sum() for y in ys)
        grads = torch.autograd.grad(loss, [x, *params])
        res.append((ys, grads))
    (y_p, g_p), (y_l, g_l) = res
    for a, b in zip(y_p, y_l):
        assert a.dtype == b.dtype == dtype
        torch.testing.assert_close(b, a, rtol=tol, atol=tol)
    for a, b in zip(g_p, g_l):
        assert a.dtype == b.dtype
        torch.testing.assert_close(b.float(), a.float(), rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("lean", [_single, _group])
def test_lora_linear_saves_the_input_once_in_bf16(lean):
    model, mods = _lora_qkv(torch.bfloat16)
    weights = [p for p in model.parameters()]
    x = torch.randn(1, 64, 32, dtype=torch.bfloat16, requires_grad=True)
    sizes = {}
    for name, fn in (("peft", lambda ms, t: [m(t) for m in ms]), ("lean", lean)):
        with SavedTensorMeter(exclude=weights) as meter:
            fn(mods, x)
        sizes[name] = meter.bytes
    x_bytes, r_bytes = 64 * 32 * 2, 64 * 4 * 4
    # x once + three (64, r) fp32 activations; the group also saves its concatenated A (3r, 32),
    # a parameter-sized tensor that does not grow with tokens
    a_cat = 3 * 4 * 32 * 4 if lean is _group else 0
    assert sizes["lean"] == x_bytes + 3 * r_bytes + a_cat
    assert sizes["peft"] >= 3 * 64 * 32 * 4  # three fp32 copies of x
    assert sizes["lean"] < sizes["peft"] / 3


def test_lora_linear_falls_back_for_dropout_and_plain_modules():
    from peft import LoraConfig, get_peft_model

    lin = nn.Linear(8, 8)
    x = torch.randn(3, 8, requires_grad=True)
    torch.testing.assert_close(kernels.lora_linear(lin, x), lin(x))  # plain Linear
    m = get_peft_model(nn.Sequential(nn.Linear(8, 8)),
                       LoraConfig(r=2, target_modules=["0"], lora_dropout=0.5))
    m.train()
    mod = m.base_model.model[0]
    torch.manual_seed(0)
    y = kernels.lora_linear(mod, x)  # active dropout: peft's own forward (same mask per seed)
    torch.manual_seed(0)
    torch.testing.assert_close(y, mod(x))
    mod.eval()  # dropout off: the lean path (an AdapterInput node in the graph)
    y = kernels.lora_linear(mod, x)

    def nodes(fn, seen=()):
        out = [type(fn).__name__]
        for nxt, _ in fn.next_functions:
            if nxt is not None:
                out += nodes(nxt)
        return out

    assert any("AdapterInput" in n for n in nodes(y.grad_fn))


@pytest.mark.parametrize("b", [1, 3])
def test_gather_rows_fallback_saves_only_the_index(b, monkeypatch):
    """The PyTorch gather keeps no copy of x for backward (torch.gather would save all of x)."""
    monkeypatch.setenv("LEMO_KERNELS", "torch")
    g = torch.Generator().manual_seed(b)
    x = torch.randn(b, 64, 32, generator=g, requires_grad=True)
    idx = torch.stack([torch.randperm(64, generator=g)[:20].sort().values for _ in range(b)])
    with SavedTensorMeter() as meter:
        y = kernels.gather_rows(x, idx)
    assert meter.bytes <= idx.numel() * 8  # the (flattened) index only
    ref = torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, 32))
    assert torch.equal(y, ref)
    w = torch.randn(y.shape, generator=g)
    (gx,) = torch.autograd.grad((y * w).sum(), x)
    (rx,) = torch.autograd.grad((ref * w).sum(), x)
    assert torch.equal(gx, rx)
