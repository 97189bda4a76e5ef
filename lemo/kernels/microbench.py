"""Micro-benchmarks of each Triton kernel against its PyTorch fallback (CUDA only).

Each case builds inputs at a Llama-shaped setting (D = 2048, 32/4 heads of 128, vocab 32000,
keep ratio 0.4), runs the kernel path and the fallback on the same inputs, checks they agree
(relative error of outputs and gradients) and times both with `triton.testing.do_bench` (CUDA
events, median). Memory rows report the peak allocated during one fwd+bwd and, for the
projection, the bytes autograd saves (`shared.memory.SavedTensorMeter`).

    >>> rows = run_microbench(seq_lens=(4096, 16384))   # list of dicts, one per kernel × length
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import torch

from shared.memory import SavedTensorMeter

__all__ = ["run_microbench", "kernels_mode"]


@contextlib.contextmanager
def kernels_mode(mode: str) -> Iterator[None]:
    """Temporarily set LEMO_KERNELS ('triton' or 'torch')."""
    old = os.environ.get("LEMO_KERNELS")
    os.environ["LEMO_KERNELS"] = "auto" if mode == "triton" else mode
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("LEMO_KERNELS", None)
        else:
            os.environ["LEMO_KERNELS"] = old


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _time_ms(fn: Callable[[], object]) -> float:
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=10, rep=60, return_mode="median"))


def _peak_mib(fn: Callable[[], object]) -> float:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def _compare(name: str, setting: str, make: Callable[..., Callable[[], list[torch.Tensor]]]
             ) -> dict:
    """make(mode) -> run(): list of result tensors (output, grads...); same inputs for both
    modes ('triton': the kernel path, 'torch': the fallback, also set in LEMO_KERNELS)."""
    out = {"kernel": name, "setting": setting}
    results = {}
    for mode in ("triton", "torch"):
        with kernels_mode(mode):
            run = make(mode)
            results[mode] = [t.detach().clone() for t in run()]
            out[f"{mode}_ms"] = _time_ms(run)
            out[f"{mode}_peak_mib"] = _peak_mib(run)
            del run
        torch.cuda.empty_cache()
    out["speedup"] = out["torch_ms"] / out["triton_ms"]
    out["max_rel_err"] = max(_rel(a, b) for a, b in zip(results["triton"], results["torch"]))
    return out


def _case_block_scores(s: int, g: torch.Generator):
    from lemo import kernels

    q = torch.randn(1, 32, s, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    k = torch.randn(1, 4, s, 128, device="cuda", dtype=torch.bfloat16, generator=g)

    def make(mode=None):
        return lambda: [kernels.block_tile_scores(q, k, 64, True)]
    return make


def _case_project(s: int, g: torch.Generator, keep: float):
    """q/k/v LoRA projections of one eliminating layer (fwd + bwd)."""
    from peft import LoraConfig, get_peft_model

    from lemo import kernels

    class Attn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = torch.nn.Linear(2048, 2048, bias=False)
            self.k_proj = torch.nn.Linear(2048, 512, bias=False)
            self.v_proj = torch.nn.Linear(2048, 512, bias=False)

    torch.manual_seed(0)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj"])
    m = get_peft_model(Attn().to("cuda", torch.bfloat16), lora)
    for p in m.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.02)
    mods = [m.base_model.model.q_proj, m.base_model.model.k_proj, m.base_model.model.v_proj]
    x0 = torch.randn(1, s, 2048, device="cuda", dtype=torch.bfloat16, generator=g)
    kept = int(keep * s)
    idx = torch.randperm(s, device="cuda", generator=g)[:kept].sort().values[None]
    params = [p for p in m.parameters() if p.requires_grad]

    def make(mode=None):
        def run():
            x = x0.detach().requires_grad_()
            ys = [kernels.project_rows(mod, x, idx) for mod in mods]
            loss = sum((y.float() ** 2).mean() for y in ys)
            grads = torch.autograd.grad(loss, [x, *params])
            return [*ys, *grads]
        return run

    def saved_bytes(mode: str) -> int:
        with kernels_mode(mode):
            x = x0.detach().requires_grad_()
            # x's storage counts: the kernel path saves the whole (s, D) input once (shared by
            # q, k, v); the fallback saves peft's fp32 casts of three gathered (k, D) copies.
            with SavedTensorMeter(exclude=list(m.parameters())) as meter:
                ys = [kernels.project_rows(mod, x, idx) for mod in mods]
            del ys
            return meter.bytes
    return make, saved_bytes


def _case_scatter(s: int, g: torch.Generator, keep: float):
    from lemo import kernels

    kept = int(keep * s)
    res0 = torch.randn(1, s, 2048, device="cuda", dtype=torch.bfloat16, generator=g)
    src0 = torch.randn(1, kept, 2048, device="cuda", dtype=torch.bfloat16, generator=g)
    idx = torch.randperm(s, device="cuda", generator=g)[:kept].sort().values[None]
    w = torch.randn(1, s, 2048, device="cuda", dtype=torch.bfloat16, generator=g)

    def make(mode=None):
        def run():
            r, src = res0.detach().requires_grad_(), src0.detach().requires_grad_()
            out = kernels.scatter_add_rows(r, idx, src)
            gr, gs = torch.autograd.grad(out, [r, src], w)
            return [out, gr, gs]
        return run
    return make


def _case_loss(s: int, g: torch.Generator):
    from lemo import kernels

    h0 = torch.randn(1, s, 2048, device="cuda", dtype=torch.bfloat16, generator=g)
    w0 = torch.randn(32000, 2048, device="cuda", dtype=torch.bfloat16, generator=g) * 0.02
    y = torch.randint(0, 32000, (1, s), device="cuda", generator=g)

    def make(mode=None):
        def run():
            h = h0.detach().requires_grad_()
            loss = kernels.segmented_lm_loss(h, w0, y, 2048)
            (gh,) = torch.autograd.grad(loss, [h])
            return [loss, gh]
        return run
    return make


def _case_pruned_mlp(s: int, g: torch.Generator, n_keep: int = 1128):
    """MLP saved-channel pruning (Llama MLP 2048 -> 5632): the token-chunked forward
    (`kernels.pruned_swiglu`, 'triton' column) vs `lemo.mlp.PrunedSwiGLUFunction` ('torch')."""
    from lemo import kernels
    from lemo.mlp import PrunedSwiGLUFunction

    dev, bf = "cuda", torch.bfloat16
    ws = [torch.randn(5632, 2048, device=dev, dtype=bf, generator=g) * 0.02,
          torch.randn(5632, 2048, device=dev, dtype=bf, generator=g) * 0.02,
          torch.randn(2048, 5632, device=dev, dtype=bf, generator=g) * 0.02]
    x0 = torch.randn(1, s, 2048, device=dev, dtype=bf, generator=g)

    def forward(mode, x):
        if mode == "torch":
            return PrunedSwiGLUFunction.apply(x, *ws, None, None, None, n_keep)
        return kernels.pruned_swiglu(x, *ws, n_keep=n_keep)

    def make(mode=None):
        def run():
            x = x0.detach().requires_grad_()
            y = forward(mode, x)
            (gx,) = torch.autograd.grad((y.float() ** 2).mean(), [x])
            return [y, gx]
        return run

    def transient_mib(mode: str) -> float:
        """Peak during the forward minus what the forward leaves allocated (output + saved):
        the buffers that sit on top of all earlier layers' activations in a model."""
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        y = forward(mode, x0.detach().requires_grad_())
        torch.cuda.synchronize()
        out = (torch.cuda.max_memory_allocated() - torch.cuda.memory_allocated()) / 2**20
        del y
        return out
    return make, transient_mib


def run_microbench(seq_lens: tuple[int, ...] = (4096, 16384), keep: float = 0.4,
                   seed: int = 0) -> list[dict]:
    """One row per kernel × sequence length (see module docstring). Needs CUDA."""
    if not torch.cuda.is_available():
        raise RuntimeError("micro-benchmarks need a CUDA device")
    rows = []
    g = torch.Generator(device="cuda").manual_seed(seed)
    for s in seq_lens:
        setting = f"{s // 1024}K"
        rows.append(_compare("block_tile_scores", setting, _case_block_scores(s, g)))
        make, saved = _case_project(s, g, keep)
        row = _compare("project_rows(q,k,v)", setting, make)
        row["triton_saved_mib"] = saved("triton") / 2**20
        row["torch_saved_mib"] = saved("torch") / 2**20
        rows.append(row)
        rows.append(_compare("scatter_add_rows", setting, _case_scatter(s, g, keep)))
        rows.append(_compare("segmented_lm_loss", setting, _case_loss(s, g)))
        make, transient = _case_pruned_mlp(s, g)
        row = _compare("pruned_swiglu (chunked fwd)", setting, make)
        row["triton_fwd_transient_mib"] = transient("triton")
        row["torch_fwd_transient_mib"] = transient("torch")
        rows.append(row)
        torch.cuda.empty_cache()
    return rows
