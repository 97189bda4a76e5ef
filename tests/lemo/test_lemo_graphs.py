"""`lemo.cuda_graph_max_tokens`: eliminating attention replayed from CUDA graphs computes what the
eager layers compute (loss and LoRA gradients, over optimizer steps); ignored on the CPU."""

from __future__ import annotations

import pytest
import torch

from lemo.config import LemoConfig
from lemo.gpu_bench import GpuModelConfig, build_model
from lemo.layers import LemoLlamaDecoderLayer
from lemo.loss import causal_lm_loss
from lemo.patch import configure_lemo, lemo_layers


def _model(device: str, dtype: str):
    mc = GpuModelConfig(arch="llama", hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2,
                        intermediate_size=512, vocab_size=512, dtype=dtype)
    torch.manual_seed(0)
    return build_model(mc, 1024, device, 8, 16)


def _steps(model, cfg: LemoConfig, ids: torch.Tensor, n: int = 3):
    configure_lemo(model, cfg)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    start = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=1e-2)
    losses, grads = [], []
    for _ in range(n):
        loss = causal_lm_loss(model, ids, segment=256)
        loss.backward()
        losses.append(loss.detach().float())
        grads.append([p.grad.detach().float().clone() for p in params])
        opt.step()
        opt.zero_grad(set_to_none=True)
    with torch.no_grad():  # back to the start, for the next configuration
        for p, p0 in zip(params, start):
            p.copy_(p0)
    return losses, grads


def test_graph_option_is_ignored_on_cpu():
    model = _model("cpu", "float32")
    ids = torch.randint(0, 512, (1, 256))
    base = LemoConfig(enabled=True, keep_ratio=0.5, dense_first=0.5)
    l0, g0 = _steps(model, base, ids, 1)
    l1, g1 = _steps(model, LemoConfig(**{**base.__dict__, "cuda_graph_max_tokens": 4096}), ids, 1)
    assert torch.equal(l0[0], l1[0])
    assert all(not m._graphs for m in lemo_layers(model))


def test_bad_graph_limit():
    with pytest.raises(ValueError, match="cuda_graph_max_tokens"):
        LemoConfig(cuda_graph_max_tokens=-1).validate()


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
# the capture's warm-up must not leak autograd's stream-mismatch warning to users (`_capture`)
@pytest.mark.filterwarnings("error:The AccumulateGrad node:UserWarning")
def test_graphed_attention_equals_eager(dtype):
    model = _model("cuda", dtype)
    ids = torch.randint(0, 512, (1, 512), device="cuda")
    base = LemoConfig(enabled=True, keep_ratio=0.4, dense_first=0.5, mlp_prune_ratio=0.5,
                      segment_size=256)
    l_eager, g_eager = _steps(model, base, ids)
    graphed = LemoConfig(**{**base.__dict__, "cuda_graph_max_tokens": 512})
    l_graph, g_graph = _steps(model, graphed, ids)
    layers = [m for m in lemo_layers(model) if isinstance(m, LemoLlamaDecoderLayer)]
    assert sum(len(m._graphs) for m in layers) == sum(m.eliminating for m in layers) > 0
    tol = 1e-5 if dtype == "float32" else 2e-2
    for a, b in zip(l_eager, l_graph):
        torch.testing.assert_close(b, a, rtol=tol, atol=tol)
    for ga, gb in zip(g_eager, g_graph):
        for a, b in zip(ga, gb):
            torch.testing.assert_close(b, a, rtol=tol, atol=tol * 10)
    # longer than the limit: eager again, no new capture
    configure_lemo(model, graphed)
    loss = causal_lm_loss(model, torch.randint(0, 512, (1, 1024), device="cuda"), segment=256)
    loss.backward()
    assert all(not m._graphs for m in layers)


def test_one_capture_for_all_eliminating_layers(monkeypatch):
    """The first graphable call captures every eliminating layer at once, in layer order (one
    warm-up stream and pool); later steps replay; reconfiguring drops every capture. On the
    CPU, with a stand-in for `torch.cuda.make_graphed_callables` that records its calls."""
    calls = []

    def fake(callables, samples):
        calls.append([m.layer().layer_idx for m in callables])
        assert all(s[0].requires_grad and s[0].shape == (1, 256, 256) for s in samples)
        return callables  # eager: the modules themselves

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", fake)
    monkeypatch.setattr(LemoLlamaDecoderLayer, "_graphable",
                        lambda self, h, cos: self.cfg.cuda_graph_max_tokens >= h.shape[1])
    model = _model("cpu", "float32")
    ids = torch.randint(0, 512, (1, 256))
    cfg = LemoConfig(enabled=True, keep_ratio=0.5, dense_first=0.25, dense_last=True,
                     cuda_graph_max_tokens=256)
    l_graph, _ = _steps(model, cfg, ids, 2)
    layers = lemo_layers(model)
    assert calls == [[m.layer_idx for m in layers if m.eliminating]] == [[1, 2]]
    assert all(bool(m._graphs) == m.eliminating for m in layers)
    l_eager, _ = _steps(model, LemoConfig(**{**cfg.__dict__, "cuda_graph_max_tokens": 0}), ids, 2)
    assert all(not m._graphs for m in layers)  # reconfigured: captures dropped
    torch.testing.assert_close(l_graph, l_eager)
    _steps(model, cfg, ids, 1)
    assert len(calls) == 2  # captured again after reconfiguring
