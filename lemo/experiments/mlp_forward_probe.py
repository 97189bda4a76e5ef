"""Transient memory and time of the pruned SwiGLU MLP's forward variants on one GPU.

    python -m lemo.experiments.mlp_forward_probe --out FILE.json [--seqs 8192 32768]

The MLP of the GPU bench's model (D 2048, I 5632, bf16, 50 % of channels kept) on random
inputs: for each variant, the peak memory allocated above the inputs during one forward (the
transient on top of every earlier layer's activations), what the forward leaves allocated
(output + saved), the median forward and forward + backward times (CUDA events, 10 repeats)
and whether the output, the kept channels and the input gradient equal `before`'s.
Variants: `before` (the forward before 2026-12-06: whole-matrix `a.norm(dim=0)` column norms,
advanced-index gathers, the product out of place), `norm_fp32` (column norms by one fused fp32
reduction each, gathers by index_select, the product in place), `blocks` (column sums of
squares in 1,024-row blocks with the activation recomputed per block, applied in place after the
gathers), `hybrid` (the activation once over the full buffer, then 1,024-row block sums), `current`
(`lemo.mlp` as it is: `blocks` with `SCORE_ROWS`-token blocks). Equality is against `before`.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
import torch.nn.functional as F

from lemo.mlp import PrunedSwiGLUFunction, channel_scores, column_sq_sums, top_channels
from shared.io import atomic_write_json


def _gate_up(x, wg, wu, bg, bu):
    """The two full-width projections every variant starts from."""
    x2 = x.reshape(-1, x.shape[-1])
    return F.linear(x2, wg, bg), F.linear(x2, wu, bu)


def _finish(ctx, x, y, g_kept, u_kept, ch, wg, wu, wd):
    """What every variant saves and returns (the backward is `PrunedSwiGLUFunction`'s)."""
    ctx.x_shape = x.shape
    ctx.save_for_backward(g_kept, u_kept, ch, wg, wu, wd)
    return y.view(*x.shape[:-1], -1)


class Before(PrunedSwiGLUFunction):
    @staticmethod
    def forward(ctx, x, wg, wu, wd, bg, bu, bd, n_keep: int):
        g, u = _gate_up(x, wg, wu, bg, bu)
        a = F.silu(g)
        y = F.linear(a * u, wd, bd)
        ch = top_channels(a.norm(dim=0) + u.norm(dim=0), n_keep)
        return _finish(ctx, x, y, g[:, ch], u[:, ch], ch, wg, wu, wd)


class NormFp32(PrunedSwiGLUFunction):
    @staticmethod
    def forward(ctx, x, wg, wu, wd, bg, bu, bd, n_keep: int):
        g, u = _gate_up(x, wg, wu, bg, bu)
        a = F.silu(g)
        score = (torch.linalg.vector_norm(a, dim=0, dtype=torch.float32).to(x.dtype)
                 + torch.linalg.vector_norm(u, dim=0, dtype=torch.float32).to(x.dtype))
        ch = top_channels(score, n_keep)
        gk = g.index_select(1, ch)
        del g
        uk = u.index_select(1, ch)
        a.mul_(u)
        del u
        return _finish(ctx, x, F.linear(a, wd, bd), gk, uk, ch, wg, wu, wd)


class Blocks(PrunedSwiGLUFunction):
    ROWS = 1024

    @staticmethod
    def forward(ctx, x, wg, wu, wd, bg, bu, bd, n_keep: int):
        g, u = _gate_up(x, wg, wu, bg, bu)
        sa = column_sq_sums(g, rows=Blocks.ROWS, fn=F.silu)
        su = column_sq_sums(u, rows=Blocks.ROWS)
        ch = top_channels(sa.sqrt().to(x.dtype) + su.sqrt().to(x.dtype), n_keep)
        gk = g.index_select(1, ch)
        uk = u.index_select(1, ch)
        F.silu(g, inplace=True)
        g.mul_(u)
        del u
        return _finish(ctx, x, F.linear(g, wd, bd), gk, uk, ch, wg, wu, wd)


class Hybrid(PrunedSwiGLUFunction):
    @staticmethod
    def forward(ctx, x, wg, wu, wd, bg, bu, bd, n_keep: int):
        g, u = _gate_up(x, wg, wu, bg, bu)
        a = F.silu(g)
        ch = top_channels(channel_scores(column_sq_sums(a, rows=1024),
                                         column_sq_sums(u, rows=1024), a.dtype), n_keep)
        gk, uk = g.index_select(1, ch), u.index_select(1, ch)
        del g
        y = F.linear(a.mul_(u), wd, bd)
        return _finish(ctx, x, y, gk, uk, ch, wg, wu, wd)


VARIANTS = {"before": Before, "norm_fp32": NormFp32, "blocks": Blocks, "hybrid": Hybrid,
            "current": PrunedSwiGLUFunction}


def _time(fn, n: int = 10) -> float:
    ts = []
    for _ in range(n):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    return statistics.median(ts)


def probe(s: int, d: int = 2048, inter: int = 5632, keep: float = 0.5) -> dict:
    g = torch.Generator(device="cuda").manual_seed(0)
    ws = [torch.randn(inter, d, device="cuda", generator=g, dtype=torch.bfloat16) * 0.02,
          torch.randn(inter, d, device="cuda", generator=g, dtype=torch.bfloat16) * 0.02,
          torch.randn(d, inter, device="cuda", generator=g, dtype=torch.bfloat16) * 0.02]
    x0 = torch.randn(1, s, d, device="cuda", generator=g, dtype=torch.bfloat16)
    gy = torch.randn(1, s, d, device="cuda", generator=g, dtype=torch.bfloat16)
    n_keep = round((1 - keep) * inter)
    out, ref = {}, None
    for name, fn in VARIANTS.items():
        x = x0.clone().requires_grad_()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        y = fn.apply(x, *ws, None, None, None, n_keep)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
        held = torch.cuda.memory_allocated() - before  # y + saved
        ch = y.grad_fn.saved_tensors[2]
        (gx,) = torch.autograd.grad(y, x, gy)
        row = {"peak_mib": peak / 2**20, "held_mib": held / 2**20}
        if ref is None:
            ref = (y.detach(), ch, gx)
        row["y_equal"] = bool(torch.equal(y.detach(), ref[0]))
        row["channels_equal"] = bool(torch.equal(ch, ref[1]))
        row["channels_differ"] = int(len(set(ch.tolist()) ^ set(ref[1].tolist())) // 2)
        row["grad_max_abs_diff"] = float((gx.float() - ref[2].float()).abs().max())
        del y, gx

        def fwd(fn=fn, x=x):
            return fn.apply(x, *ws, None, None, None, n_keep)

        row["fwd_ms"] = _time(fwd)
        row["fwd_bwd_ms"] = _time(lambda fwd=fwd, x=x: torch.autograd.grad(fwd(), x, gy))
        out[name] = row
        torch.cuda.empty_cache()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seqs", type=int, nargs="+", default=[8192, 32768])
    args = ap.parse_args()
    res = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
           "by_seq": {str(s): probe(s) for s in args.seqs}}
    atomic_write_json(args.out, res)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
