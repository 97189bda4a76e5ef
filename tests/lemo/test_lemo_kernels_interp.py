"""LeMo's Triton kernels on the CPU, under Triton's interpreter, against independent references.

`TRITON_INTERPRET=1` must be set before a kernel is decorated, and it would turn every kernel of
the process into interpreted code (GPU tests included), so the cases run in a child pytest
process: `test_triton_interpreter_suite` starts it with the variables set and the cases below
exist only inside it. Shapes are tiny and odd on purpose (rows not a multiple of any tile, kept
sets in random order, GQA groups), so masking and indexing are exercised.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = os.environ.get("LEMO_INTERP_CHILD") == "1"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(CHILD, reason="the parent of the interpreter cases")
def test_triton_interpreter_suite():
    pytest.importorskip("triton")
    env = {**os.environ, "LEMO_INTERP_CHILD": "1", "TRITON_INTERPRET": "1",
           "LEMO_KERNELS": "triton", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(Path(__file__)), "-k", "interp"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert " passed" in r.stdout and "failed" not in r.stdout, r.stdout[-3000:]


if CHILD:
    import torch
    import torch.nn.functional as F

    import lemo.kernels as K
    from lemo.kernels.block_scores import block_tile_scores_triton

    torch.set_num_threads(1)

    def _rel(a, b):
        a, b = a.double(), b.double()
        return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()

    def _brute_block_scores(q, k, block, causal):
        """Materialise all s×s logits in float64: the obviously-correct version."""
        b, h, s, d = q.shape
        kk = k.double().repeat_interleave(h // k.shape[1], dim=1)
        logits = torch.einsum("bhqd,bhkd->bhqk", q.double(), kk) / d ** 0.5
        pos = logits.clamp_min(0).sum(1) / h
        if causal:
            pos = pos.masked_fill(torch.ones(s, s, dtype=torch.bool).triu(1), 0.0)
        nb = s // block
        return pos.view(b, nb, block, nb, block).amax(dim=(2, 4))

    @pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
    @pytest.mark.parametrize("causal", [True, False])
    def test_interp_block_scores_match_brute_force(dtype, causal):
        g = torch.Generator().manual_seed(1)
        # q from a (b, s, h, d) layout transposed: the kernel must honour strides.
        q = torch.randn(2, 64, 4, 24, generator=g).to(dtype).transpose(1, 2)
        k = torch.randn(2, 2, 64, 24, generator=g).to(dtype)
        got = block_tile_scores_triton(q, k, 16, causal)
        ref = _brute_block_scores(q, k, 16, causal)
        assert got.shape == (2, 4, 4) and got.dtype == torch.float32
        assert _rel(got, ref) < 1e-5
        if causal:
            assert (got.triu(1) == 0).all()
        assert _rel(K.block_tile_scores(q, k, 16, causal), ref) < 1e-5  # dispatcher -> kernel

    def test_interp_block_scores_bad_shapes():
        q = torch.randn(1, 3, 32, 8)
        with pytest.raises(ValueError, match="multiple of block_size"):
            block_tile_scores_triton(q, torch.randn(1, 3, 32, 8), 24)
        with pytest.raises(ValueError, match="do not match"):
            block_tile_scores_triton(q, torch.randn(1, 2, 32, 8), 16)

    def _ragged_idx(b, s, k, seed):
        g = torch.Generator().manual_seed(seed)
        return torch.stack([torch.randperm(s, generator=g)[:k] for _ in range(b)])

    @pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
    def test_interp_gather_rows_and_grad(dtype):
        x = torch.randn(2, 37, 20, dtype=dtype, requires_grad=True)
        idx = _ragged_idx(2, 37, 13, 2)
        idx[1, 3] = idx[1, 5]  # a repeated row accumulates its gradient, like torch.gather
        y = K.gather_rows(x, idx)
        assert "GatherRows" in type(y.grad_fn).__name__
        ref = torch.stack([x[i, idx[i]] for i in range(2)])
        assert torch.equal(y, ref)
        w = torch.randn_like(y)
        (gx,) = torch.autograd.grad((y * w).sum(), x)
        (gr,) = torch.autograd.grad((ref * w).sum(), x)
        assert torch.allclose(gx.float(), gr.float(), atol=1e-2 if dtype == torch.bfloat16 else 0)

    def _lora_linear(dtype, bias, r=4, seed=0):
        from peft import LoraConfig, get_peft_model

        class Holder(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.q_proj = torch.nn.Linear(40, 36, bias=bias)

        torch.manual_seed(seed)
        m = get_peft_model(Holder().to(dtype), LoraConfig(r=r, lora_alpha=2 * r,
                                                           target_modules=["q_proj"]))
        with torch.no_grad():  # lora_B starts at zero; make the adapter path count
            m.base_model.model.q_proj.lora_B["default"].weight.normal_(0, 0.3)
        return m.base_model.model.q_proj

    def _project_grads(lin, x0, idx, mode, monkeypatch):
        monkeypatch.setenv("LEMO_KERNELS", mode)
        x = x0.clone().requires_grad_()
        params = [p for p in lin.parameters() if p.requires_grad]
        y = K.project_rows(lin, x, idx)
        w = torch.linspace(-1, 1, y.numel()).view_as(y)
        grads = torch.autograd.grad((y.float() * w).sum(), [x, *params])
        return y.detach(), grads, y.grad_fn

    @pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
    def test_interp_project_rows_lora_matches_fallback(dtype, monkeypatch):
        lin = _lora_linear(dtype, bias=True)
        # peft keeps fp32 adapters on a bf16 model (autocast_adapter_dtype): a mixed case.
        assert lin.lora_A["default"].weight.dtype == torch.float32
        x0 = torch.randn(2, 45, 40, dtype=dtype)
        idx = _ragged_idx(2, 45, 19, 3)
        yk, gk, fn = _project_grads(lin, x0, idx, "triton", monkeypatch)
        yt, gt, _ = _project_grads(lin, x0, idx, "torch", monkeypatch)
        assert "ProjectRows" in type(fn).__name__
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        assert yk.dtype == yt.dtype == dtype
        assert _rel(yk, yt) < tol
        for a, b in zip(gk, gt):
            assert a.shape == b.shape and a.dtype == b.dtype
            assert _rel(a, b) < tol
        # rows not kept get exactly zero input-gradient
        dropped = torch.ones(2, 45, dtype=torch.bool)
        dropped[torch.arange(2)[:, None], idx] = False
        assert (gk[0][dropped] == 0).all()

    def test_interp_project_rows_trainable_linear(monkeypatch):
        lin = torch.nn.Linear(40, 24, bias=True)
        x0 = torch.randn(1, 30, 40)
        idx = _ragged_idx(1, 30, 7, 4)
        yk, gk, fn = _project_grads(lin, x0, idx, "triton", monkeypatch)
        yt, gt, _ = _project_grads(lin, x0, idx, "torch", monkeypatch)
        assert "ProjectRows" in type(fn).__name__
        assert _rel(yk, yt) < 1e-5 and all(_rel(a, b) < 1e-5 for a, b in zip(gk, gt))

    def test_interp_project_rows_unsupported_falls_back(monkeypatch):
        lin = _lora_linear(torch.float32, bias=False)
        lin.lora_dropout["default"] = torch.nn.Dropout(0.5)  # active dropout: module forward
        lin.train()
        _, _, fn = _project_grads(lin, torch.randn(1, 20, 40), _ragged_idx(1, 20, 5, 5),
                                  "triton", monkeypatch)
        assert "ProjectRows" not in type(fn).__name__

    @pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
    def test_interp_scatter_add_rows(dtype):
        res0 = torch.randn(2, 33, 24, dtype=dtype)
        src0 = torch.randn(2, 9, 24, dtype=torch.float32)  # src wider than residual: rounded
        idx = _ragged_idx(2, 33, 9, 6)
        res, src = res0.clone().requires_grad_(), src0.clone().requires_grad_()
        out = K.scatter_add_rows(res, idx, src)
        ref = res0.clone()
        for i in range(2):
            ref[i, idx[i]] += src0[i].to(dtype)
        ulp = 0 if dtype == torch.float32 else 2 ** -5  # interpreter rounds by truncation
        assert (out.detach().float() - ref.float()).abs().max() <= ulp * ref.abs().max()
        w = torch.randn(2, 33, 24)
        gres, gsrc = torch.autograd.grad((out.float() * w).sum(), [res, src])
        assert torch.equal(gres.float(), w.to(dtype).float())
        assert gsrc.dtype == torch.float32
        assert torch.equal(gsrc, torch.stack([w[i, idx[i]] for i in range(2)]).to(dtype).float())

    def test_interp_scatter_add_rows_inplace():
        res = torch.randn(1, 20, 8)
        keep = res.clone()
        src = torch.randn(1, 4, 8)
        idx = _ragged_idx(1, 20, 4, 7)
        out = K.scatter_add_rows(res, idx, src, inplace=True)
        assert out.data_ptr() == res.data_ptr()
        assert torch.allclose(out, keep.scatter_add(1, idx[..., None].expand(-1, -1, 8), src))
        # A residual already saved for backward cannot be silently overwritten.
        leaf = torch.randn(1, 20, 8, requires_grad=True)
        mid = leaf * 2.0
        square = (mid * mid).sum()  # mul saves `mid` for backward
        K.scatter_add_rows(mid, idx, src, inplace=True)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            square.backward()

    @pytest.mark.parametrize("softcap", [None, 2.0])
    @pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
    def test_interp_segmented_loss_matches_full_ce(dtype, softcap):
        g = torch.Generator().manual_seed(8)
        h0 = torch.randn(2, 29, 32, generator=g).to(dtype)
        w0 = (torch.randn(300, 32, generator=g) * 0.3).to(dtype)
        labels = torch.randint(0, 300, (2, 29), generator=g)
        labels[0, :6] = -100
        h, w = h0.clone().requires_grad_(), w0.clone().requires_grad_()
        loss = K.segmented_lm_loss(h, w, labels, segment=16, softcap=softcap)
        assert "SegmentedLMLoss" in type(loss.grad_fn).__name__
        gh, gw = torch.autograd.grad(loss, [h, w])
        # Independent reference: full logits at once in float64 (soft-capped as HF's Gemma 2).
        hr, wr = h0.double().requires_grad_(), w0.double().requires_grad_()
        logits = hr @ wr.t()
        if softcap:  # logits reach |x| ~ 5: a cap of 2 bends them
            assert float(logits.detach().abs().max()) > 2 * softcap
            logits = torch.tanh(logits / softcap) * softcap
        ref = F.cross_entropy(logits.view(-1, 300), labels.view(-1), ignore_index=-100)
        rh, rw = torch.autograd.grad(ref, [hr, wr])
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        assert abs(loss.item() - ref.item()) < tol * ref.item()
        assert gh.dtype == dtype and gw.dtype == dtype
        assert _rel(gh, rh) < tol and _rel(gw, rw) < tol
        assert (gh[0, :6] == 0).all()  # ignored rows get no gradient

    @pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
    def test_interp_gated_sq_sums_match_a_float64_reference(dtype):
        """Channel scores of the pruned SwiGLU: Σ silu(gate)², Σ up² per channel (SiLU rounded
        to the input dtype, as F.silu returns it), against float64 sums; 300 rows and 150
        channels (neither a multiple of the kernel's tiles), blocks of 64 rows, accumulated onto
        non-zero buffers."""
        from lemo.kernels.channel_scores import gated_sq_sums_triton

        g = torch.Generator().manual_seed(11)
        gate = (torch.randn(300, 150, generator=g) * 2).to(dtype)
        up = torch.randn(300, 150, generator=g).to(dtype)
        sq_a, sq_u = torch.full((150,), 0.5), torch.full((150,), 0.25)
        gated_sq_sums_triton(gate, up, sq_a, sq_u, rows=64)
        ref_a = 0.5 + (F.silu(gate).double() ** 2).sum(0)
        ref_u = 0.25 + (up.double() ** 2).sum(0)
        # the interpreter casts fp32 -> bf16 by truncation (the GPU rounds to nearest: the GPU
        # suite compares the kernel with the fallback there to 1e-5), ~0.4 % low on squares
        tol_a = 1e-6 if dtype == torch.float32 else 1e-2
        assert _rel(sq_a, ref_a) < tol_a and _rel(sq_u, ref_u) < 1e-6
        # the dispatcher takes the kernel here and agrees with the PyTorch blocks
        from lemo.mlp import column_sq_sums

        da, du = torch.zeros(150), torch.zeros(150)
        K.gated_sq_sums(gate, up, F.silu, da, du, 64, silu=True)
        assert _rel(da, column_sq_sums(gate, rows=64, fn=F.silu)) < tol_a
        assert _rel(du, column_sq_sums(up, rows=64)) < 1e-6

    def test_interp_gated_sq_sums_chunked_equals_whole():
        """Accumulating chunk by chunk (chunks a multiple of the block) adds the same blocks in
        the same order as one call: bit-equal sums."""
        from lemo.kernels.channel_scores import gated_sq_sums_triton

        g = torch.Generator().manual_seed(12)
        gate, up = torch.randn(256, 40, generator=g), torch.randn(256, 40, generator=g)
        whole = torch.zeros(40), torch.zeros(40)
        gated_sq_sums_triton(gate, up, *whole, rows=32)
        parts = torch.zeros(40), torch.zeros(40)
        for s0 in range(0, 256, 96):  # chunks of 96 rows = 3 blocks of 32 (the last 64)
            gated_sq_sums_triton(gate[s0:s0 + 96], up[s0:s0 + 96], *parts, rows=32)
        assert torch.equal(whole[0], parts[0]) and torch.equal(whole[1], parts[1])

    def test_interp_pruned_swiglu_keeps_the_fallbacks_channels():
        """The pruned SwiGLU with the kernel's scores keeps the channels the PyTorch scores keep
        and gives the same output and input gradient."""
        from lemo.mlp import PrunedSwiGLUFunction

        g = torch.Generator().manual_seed(13)
        ws = [torch.randn(60, 24, generator=g) * 0.3, torch.randn(60, 24, generator=g) * 0.3,
              torch.randn(24, 60, generator=g) * 0.3]
        x0 = torch.randn(1, 70, 24, generator=g)
        outs = []
        for mode in ("triton", "torch"):
            os.environ["LEMO_KERNELS"] = mode
            try:
                x = x0.clone().requires_grad_()
                y = PrunedSwiGLUFunction.apply(x, *ws, None, None, None, 20)
                ch = y.grad_fn.saved_tensors[2].clone()
                (gx,) = torch.autograd.grad(y.sum(), [x])
                outs.append((ch, y.detach(), gx))
            finally:
                os.environ["LEMO_KERNELS"] = "triton"
        (ch_k, y_k, g_k), (ch_t, y_t, g_t) = outs
        assert torch.equal(ch_k, ch_t)
        assert torch.equal(y_k, y_t) and torch.allclose(g_k, g_t, atol=1e-6)

    def test_interp_segmented_loss_bad_labels():
        with pytest.raises(ValueError, match="labels"):
            K.segmented_lm_loss(torch.randn(1, 8, 4), torch.randn(10, 4),
                                torch.zeros(1, 7, dtype=torch.long))


def test_fallback_selected_on_cpu(monkeypatch):
    """Without CUDA the dispatchers run the PyTorch fallbacks; LEMO_KERNELS=torch forces them."""
    import lemo.kernels as K

    monkeypatch.setenv("LEMO_KERNELS", "torch")
    assert K.backend() == "torch"
    monkeypatch.delenv("LEMO_KERNELS")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    import torch

    if not torch.cuda.is_available():
        assert K.backend() == "torch"
    lin = torch.nn.Linear(8, 4)
    y = K.project_rows(lin, torch.randn(1, 10, 8, requires_grad=True),
                       torch.tensor([[1, 4, 7]]))
    assert torch.cuda.is_available() or "ProjectRows" not in type(y.grad_fn).__name__
    # the fallback honours inplace= like the kernel: same buffer, same values
    res, src, idx = torch.randn(1, 6, 3), torch.randn(1, 2, 3), torch.tensor([[4, 1]])
    ref = res.clone()
    ref[0, [4, 1]] += src[0]
    monkeypatch.setenv("LEMO_KERNELS", "torch")
    out = K.scatter_add_rows(res, idx, src, inplace=True)
    assert out.data_ptr() == res.data_ptr() and torch.equal(out, ref)
