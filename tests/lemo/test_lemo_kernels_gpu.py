"""LeMo's Triton kernels on the GPU against their PyTorch fallbacks (random shapes, ragged kept
sets, bf16 and fp32), plus a smoke run of the micro-benchmarks. Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch

from lemo import kernels
from lemo.kernels.microbench import kernels_mode

pytestmark = pytest.mark.gpu

DTYPES = [torch.float32, torch.bfloat16]


def _rel(a, b):
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _tol(dtype):
    return 1e-5 if dtype == torch.float32 else 1e-2


def _shapes(seed, n=4):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        b = int(torch.randint(1, 3, (1,), generator=g))
        s = 64 * int(torch.randint(2, 12, (1,), generator=g))
        d = int(torch.randint(8, 200, (1,), generator=g))
        kept = int(torch.randint(1, s, (1,), generator=g))  # not a multiple of any tile
        yield b, s, d, kept


def _idx(b, s, kept, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    return torch.stack([torch.randperm(s, device="cuda", generator=g)[:kept] for _ in range(b)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [True, False])
def test_gpu_block_scores_equal_fallback(dtype, causal):
    for i, (hk, rep, d, s) in enumerate([(4, 8, 128, 1024), (2, 2, 64, 640), (1, 3, 96, 320)]):
        q = torch.randn(2, s, hk * rep, d, device="cuda").to(dtype).transpose(1, 2)
        k = torch.randn(2, hk, s, d, device="cuda").to(dtype)
        with kernels_mode("triton"):
            got = kernels.block_tile_scores(q, k, 64, causal)
        ref = kernels.block_tile_scores_torch(q, k, 64, causal)
        assert _rel(got, ref) < 1e-5, (i, _rel(got, ref))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_gather_and_scatter_equal_fallback(dtype):
    for i, (b, s, d, kept) in enumerate(_shapes(1)):
        idx = _idx(b, s, kept, i)
        x0 = torch.randn(b, s, d, device="cuda", dtype=dtype)
        src0 = torch.randn(b, kept, d, device="cuda", dtype=dtype)
        w = torch.randn(b, s, d, device="cuda", dtype=dtype)
        outs = {}
        for mode in ("triton", "torch"):
            with kernels_mode(mode):
                x, src = x0.clone().requires_grad_(), src0.clone().requires_grad_()
                gathered = kernels.gather_rows(x, idx)
                out = kernels.scatter_add_rows(x, idx, src * 1.0)
                gx, gs = torch.autograd.grad((out * w).sum() + (gathered ** 2).sum(), [x, src])
                outs[mode] = (gathered, out, gx, gs)
        for a, r in zip(outs["triton"], outs["torch"]):
            assert torch.equal(a, r) or _rel(a, r) < _tol(dtype), i


def _lora_layer(dtype, n_out, bias):
    from peft import LoraConfig, get_peft_model

    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(256, n_out, bias=bias)

    m = get_peft_model(Holder().to("cuda", dtype),
                       LoraConfig(r=8, lora_alpha=16, target_modules=["proj"]))
    for p in m.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.05)
    return m.base_model.model.proj, [p for p in m.parameters() if p.requires_grad]


@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_project_rows_equal_fallback(dtype):
    for i, (b, s, _, kept) in enumerate(_shapes(2)):
        lin, params = _lora_layer(dtype, n_out=[512, 200, 64, 130][i], bias=i % 2 == 1)
        idx = _idx(b, s, kept, 10 + i)
        x0 = torch.randn(b, s, 256, device="cuda", dtype=dtype)
        outs = {}
        for mode in ("triton", "torch"):
            with kernels_mode(mode):
                x = x0.clone().requires_grad_()
                y = kernels.project_rows(lin, x, idx)
                assert ("ProjectRows" in type(y.grad_fn).__name__) == (mode == "triton")
                w = torch.randn(y.shape, device="cuda", dtype=dtype,
                                generator=torch.Generator("cuda").manual_seed(i))
                outs[mode] = (y, *torch.autograd.grad((y * w).sum(), [x, *params]))
        for a, r in zip(outs["triton"], outs["torch"]):
            assert a.dtype == r.dtype and _rel(a, r) < _tol(dtype), (i, _rel(a, r))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_segmented_loss_equal_fallback(dtype):
    g = torch.Generator(device="cuda").manual_seed(3)
    for n, v, seg in [(1000, 5000, 256), (4096, 32000, 2048), (333, 777, 100)]:
        h0 = torch.randn(1, n, 256, device="cuda", generator=g).to(dtype)
        w0 = (torch.randn(v, 256, device="cuda", generator=g) * 0.05).to(dtype)
        y = torch.randint(0, v, (1, n), device="cuda", generator=g)
        y[0, :17] = -100
        outs = {}
        for mode in ("triton", "torch"):
            with kernels_mode(mode):
                h, w = h0.clone().requires_grad_(), w0.clone().requires_grad_()
                loss = kernels.segmented_lm_loss(h, w, y, seg)
                outs[mode] = (loss, *torch.autograd.grad(loss, [h, w]))
        for a, r in zip(outs["triton"], outs["torch"]):
            assert _rel(a, r) < _tol(dtype), (n, v, _rel(a, r))


def test_gpu_microbench_agrees_and_times():
    from lemo.kernels.microbench import run_microbench

    rows = run_microbench(seq_lens=(2048,))
    assert {r["kernel"] for r in rows} == {"block_tile_scores", "project_rows(q,k,v)",
                                           "scatter_add_rows", "segmented_lm_loss",
                                           "pruned_swiglu (chunked fwd)"}
    for r in rows:
        assert r["max_rel_err"] < 1e-2, r
        assert r["triton_ms"] > 0 and r["torch_ms"] > 0


def test_gpu_pruned_swiglu_matches_unchunked():
    from lemo.mlp import PrunedSwiGLUFunction

    g = torch.Generator(device="cuda").manual_seed(5)
    ws = [torch.randn(*shape, device="cuda", generator=g) * 0.05
          for shape in ((704, 256), (704, 256), (256, 704))]
    x0 = torch.randn(1, 3000, 256, device="cuda", generator=g)
    outs = []
    for chunked in (False, True):
        x = x0.clone().requires_grad_()
        y = (kernels.pruned_swiglu(x, *ws, n_keep=136, chunk=1024) if chunked
             else PrunedSwiGLUFunction.apply(x, *ws, None, None, None, 136))
        outs.append((y, *torch.autograd.grad((y ** 2).sum(), [x])))
    for a, r in zip(*outs):
        assert _rel(a, r) < 1e-5


@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_gated_sq_sums_match_the_fallback(dtype):
    """The fused channel-score kernel against the PyTorch blocks (`lemo.mlp.column_sq_sums`),
    on a ragged shape; the kept channels of a top-k over the scores agree."""
    from lemo.kernels.channel_scores import gated_sq_sums_triton
    from lemo.mlp import channel_scores, column_sq_sums, top_channels

    g = torch.Generator(device="cuda").manual_seed(21)
    # channel scales from 0.2 to 5, so the scores are far apart (random columns of one scale
    # give scores that tie once rounded to bf16, and a top-k among ties is arbitrary)
    scale = torch.logspace(-0.7, 0.7, 1003, device="cuda")[torch.randperm(1003, device="cuda",
                                                                           generator=g)]
    gate = (torch.randn(5000, 1003, device="cuda", generator=g) * 2 * scale).to(dtype)
    up = (torch.randn(5000, 1003, device="cuda", generator=g) * scale).to(dtype)
    ka, ku = torch.zeros(1003, device="cuda"), torch.zeros(1003, device="cuda")
    gated_sq_sums_triton(gate, up, ka, ku, rows=2048)
    ra = column_sq_sums(gate, rows=2048, fn=torch.nn.functional.silu)
    ru = column_sq_sums(up, rows=2048)
    # bf16: SiLU rounded to bf16 as F.silu returns it; without that rounding the sums move by
    # ~2e-4 relative, so 1e-4 catches it (the fp32 sums differ only in addition order)
    tol = 1e-5 if dtype == torch.float32 else 1e-4
    assert _rel(ka, ra) < tol and _rel(ku, ru) < 1e-5
    if dtype == torch.float32:  # well-separated scores: the same channels kept
        kept_k = top_channels(channel_scores(ka, ku, dtype), 500)
        kept_r = top_channels(channel_scores(ra, ru, dtype), 500)
        assert torch.equal(kept_k, kept_r)
