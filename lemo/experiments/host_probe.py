"""Host-side cost of one training step (the GPU bench's 4K step): step time, host enqueue time,
syncs, and CPU time per LeMo component (torch.profiler + record_function labels).

    python -m lemo.experiments.host_probe --out DIR [--arms lora,lemo_full] [--seq 4096]
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time

import torch


def _label(obj, name: str, label: str) -> None:
    fn = getattr(obj, name)

    @functools.wraps(fn)
    def wrapped(*a, **k):
        with torch.profiler.record_function(label):
            return fn(*a, **k)

    setattr(obj, name, wrapped)


def instrument() -> None:
    import lemo.layers as L
    from lemo import kernels
    from lemo.predictor import PatternPredictor
    from lemo.scoring import TokenEliminator

    _label(PatternPredictor, "key_scores", "lemo:predictor")
    _label(TokenEliminator, "select", "lemo:select")
    _label(L.LemoLlamaDecoderLayer, "_eliminating_attention", "lemo:elim_attention")
    _label(L.LemoLlamaDecoderLayer, "_qkv", "lemo:qkv")
    _label(L, "channel_pruned_mlp", "lemo:mlp")
    _label(L, "_sdpa", "lemo:sdpa")
    for n in ("gather_rows", "scatter_add_rows", "lora_linear"):
        _label(kernels, n, f"lemo:{n}")


def gap_report(path: str) -> dict:
    """GPU idle time inside the step, attributed to the innermost CPU-side op (python function
    or aten op) running at the middle of each idle gap."""
    import bisect
    import collections
    tr = json.load(open(path))["traceEvents"]
    kern = sorted((e["ts"], e["ts"] + e["dur"]) for e in tr if e.get("ph") == "X"
                  and e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset"))
    cpu = [e for e in tr if e.get("ph") == "X" and e.get("cat") in ("cpu_op", "python_function",
                                                                   "user_annotation")]
    cpu.sort(key=lambda e: e["ts"])
    starts = [e["ts"] for e in cpu]
    busy, gaps, end = 0.0, [], kern[0][0]
    for a, b in kern:
        if a > end:
            gaps.append((end, a))
        busy += max(0.0, b - max(a, end))
        end = max(end, b)
    agg = collections.defaultdict(lambda: [0.0, 0])
    for a, b in gaps:
        mid = (a + b) / 2
        i = bisect.bisect_right(starts, mid)
        best = None
        for e in cpu[max(0, i - 4000):i]:
            if e["ts"] <= mid <= e["ts"] + e["dur"] and (best is None or e["dur"] < best["dur"]):
                best = e
        name = "?" if best is None else best["name"][:90]
        agg[name][0] += (b - a) / 1e3
        agg[name][1] += 1
    rows = sorted(([k, v[0], v[1]] for k, v in agg.items()), key=lambda r: -r[1])
    walls = collections.defaultdict(lambda: [0.0, 0])
    for e in cpu:
        n = e["name"]
        if n.startswith("lemo:") or n.endswith("Backward") or "Function" in n or n.startswith(
                ("GatherRows", "ScatterAddRows", "LoraLinear", "Optimizer.step")):
            walls[n][0] += e["dur"] / 1e3
            walls[n][1] += 1
    return {"cpu_wall": {k: [round(v[0], 3), v[1]] for k, v in sorted(walls.items())},
            "busy_ms": busy / 1e3, "span_ms": (end - kern[0][0]) / 1e3,
            "idle_ms": sum(b - a for a, b in gaps) / 1e3, "by_op": rows[:60]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--arms", default="lora,lemo_full")
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--config", default="configs/lemo/gpu_llama.yaml")
    args = ap.parse_args()
    import yaml

    from lemo.gpu_bench import GpuBenchConfig, Runner, attach_predictors, build_model
    from shared.config import from_dict
    from shared.io import atomic_write_json

    cfg = from_dict(GpuBenchConfig, yaml.safe_load(open(args.config)))
    dev = "cuda"
    model = build_model(cfg.model, args.seq, dev, 8, 16)
    attach_predictors(model, cfg, dev)
    instrument()
    r = Runner(model, cfg, dev)
    out = {}
    for arm in args.arms.split(","):
        seg = r.configure(arm)
        ids = r.tokens(args.seq)
        for _ in range(3):
            r.step(ids, seg)
        r.sync()
        # syncs inside one step: the first one's Python stack
        syncs = []
        torch.cuda.set_sync_debug_mode("error")
        try:
            r.step(ids, seg)
        except RuntimeError:
            import traceback
            syncs = [ln.strip() for ln in traceback.format_exc().splitlines()
                     if "File" in ln][-8:]
        finally:
            torch.cuda.set_sync_debug_mode(0)
        r.opt.zero_grad(set_to_none=True)
        r.sync()
        phases = []
        from lemo.loss import causal_lm_loss
        for _ in range(10):
            r.sync()
            t0 = time.perf_counter()
            loss = causal_lm_loss(r.model, ids, segment=seg)
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            r.opt.step()
            t3 = time.perf_counter()
            r.opt.zero_grad(set_to_none=True)
            r.sync()
            t4 = time.perf_counter()
            phases.append((t1 - t0, t2 - t1, t3 - t2, t4 - t3))
        ph = [statistics.median(p[i] for p in phases) * 1e3 for i in range(4)]
        print(f"   host phases ms: forward {ph[0]:.1f} backward {ph[1]:.1f} adamw {ph[2]:.1f}"
              f" wait {ph[3]:.1f}", flush=True)
        enq, tot, gpu = [], [], []
        for _ in range(10):
            r.sync()
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0 = time.perf_counter()
            e0.record()
            r.step(ids, seg)
            e1.record()
            t1 = time.perf_counter()
            e1.synchronize()
            t2 = time.perf_counter()
            enq.append(t1 - t0)
            tot.append(t2 - t0)
            gpu.append(e0.elapsed_time(e1) / 1e3)
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU, ProfilerActivity.CUDA]
        with profile(activities=acts, with_stack=True) as prof:
            r.step(ids, seg)
            r.sync()
        prof.export_chrome_trace(f"{args.out}/trace_{arm}.json")
        gaps = gap_report(f"{args.out}/trace_{arm}.json")
        ev = prof.key_averages()
        labels = {e.key: {"cpu_total_ms": e.cpu_time_total / 1e3, "count": e.count,
                          "cuda_ms": e.device_time_total / 1e3}
                  for e in ev if e.key.startswith("lemo:")}
        cpu_ops = sorted(ev, key=lambda e: -e.self_cpu_time_total)[:40]
        out[arm] = {
            "enqueue_ms": statistics.median(enq) * 1e3, "wall_ms": statistics.median(tot) * 1e3,
            "event_ms": statistics.median(gpu) * 1e3, "syncs": syncs[:20], "n_syncs": len(syncs),
            "phases_ms": ph,
            "labels": labels,
            "cpu_self_top": [{"op": e.key[:80], "self_cpu_ms": e.self_cpu_time_total / 1e3,
                              "count": e.count, "cuda_ms": e.device_time_total / 1e3}
                             for e in cpu_ops],
            "cpu_self_total_ms": sum(e.self_cpu_time_total for e in ev) / 1e3,
            "n_cpu_ops": sum(e.count for e in ev), "gaps": gaps,
        }
        print(arm, {k: out[arm][k] for k in ("enqueue_ms", "wall_ms", "event_ms", "n_syncs")},
              flush=True)
        for s in syncs[:5]:
            print("   sync:", s, flush=True)
        print(f"   gpu busy {gaps['busy_ms']:.1f} ms of {gaps['span_ms']:.1f} ms span")
        for k, v in gaps["cpu_wall"].items():
            print(f"   cpu wall {v[0]:8.2f} ms n={v[1]:4d} {k}", flush=True)
        for g in gaps["by_op"][:12]:
            print(f"   idle {g[1]:7.2f} ms  n={g[2]:4d}  {g[0]}", flush=True)
        r.free()
    atomic_write_json(f"{args.out}/host_probe.json", out)


if __name__ == "__main__":
    main()
