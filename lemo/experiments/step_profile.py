"""Where one training step's device time goes, by operator and by LeMo component.

    python -m lemo.experiments.step_profile --out DIR [--arms lora_ckpt,lemo_full_ckpt]
        [--seq 32768] [--config configs/lemo/gpu_llama.yaml] [--set key=value ...]

For each arm of `lemo.gpu_bench` (built and configured as the bench does: same model, LoRA,
predictors, checkpointing), after warm-up steps, one step under `torch.profiler` with the
LeMo components labelled (`host_probe.instrument`: predictor, selection, eliminating attention,
q/k/v, SDPA, MLP, gathers, scatters, LoRA projections). Writes `DIR/step_profile.json`:
per arm the step's summed kernel time, each label's device time (kernels launched inside it,
recomputation under checkpointing included) and the operators with the most self device time
(`self_device_time_total`: each kernel counted once, under the operator that launched it) and
the kernels with the most time; the total sums the kernels.
On a CPU the same fields hold CPU time (a smoke test; the figures mean something on a GPU).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from shared.errors import ConfigError
from shared.log import get_logger

log = get_logger("lemo.experiments.step_profile")


def profile_arm(runner, arm: str, seq: int, top: int) -> dict:
    """One profiled step of `arm` at `seq` tokens after two warm-up steps."""
    from torch.profiler import ProfilerActivity, profile

    segment = runner.configure(arm)
    ids = runner.tokens(seq)
    for _ in range(2):
        runner.step(ids, segment)
    runner.sync()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if runner.cuda else [])
    with profile(activities=acts) as prof:
        runner.step(ids, segment)
        runner.sync()
    runner.free()
    events = prof.key_averages()
    self_key = "self_device_time_total" if runner.cuda else "self_cpu_time_total"
    total_key = "device_time_total" if runner.cuda else "cpu_time_total"
    # the labels' GPU ranges (user annotations) are device events too, not kernels
    kernels = [e for e in events if _on_device(e) and not e.key.startswith("lemo:")]
    ops = [e for e in events if not _on_device(e) and not e.key.startswith("lemo:")]
    # each kernel's time is listed twice: as the kernel, and as its launching operator's self
    # device time; the step's total counts kernels (on a CPU: operators' self CPU time)
    total = sum(getattr(e, self_key) for e in (kernels if runner.cuda else ops)) / 1e3
    labels = {e.key: {"ms": getattr(e, total_key) / 1e3, "calls": e.count}
              for e in events if e.key.startswith("lemo:")}

    def top_of(rows):
        return [{"name": e.key[:100], "self_ms": getattr(e, self_key) / 1e3, "calls": e.count}
                for e in sorted(rows, key=lambda e: -getattr(e, self_key))[:top]]

    return {"total_ms": total, "labels": labels, "ops": top_of(ops), "kernels": top_of(kernels)}


def _on_device(event) -> bool:
    """A GPU kernel (or memcpy / memset) event, not a host-side operator."""
    return str(getattr(event, "device_type", "")).endswith(("CUDA", "PrivateUse1"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lemo.experiments.step_profile",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for step_profile.json")
    ap.add_argument("--arms", default="lora_ckpt,lemo_full_ckpt",
                    help="comma-separated arms of lemo.gpu_bench")
    ap.add_argument("--seq", type=int, default=32768, help="tokens per step")
    ap.add_argument("--config", default="configs/lemo/gpu_llama.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config field (as lemo.gpu_bench --set)")
    ap.add_argument("--top", type=int, default=40, help="operators listed per arm")
    args = ap.parse_args(argv)

    from lemo.experiments.host_probe import instrument
    from lemo.gpu_bench import ARMS, GpuBenchConfig, Runner, attach_predictors, build_model
    from shared.config import load_config
    from shared.io import atomic_write_json
    from shared.runtime import pick_device

    cfg = load_config(args.config, GpuBenchConfig, overrides=args.set)
    arms = args.arms.split(",")
    bad = [a for a in arms if a not in ARMS]
    if bad:
        raise ConfigError(f"--arms: unknown arm(s) {bad} (known: {', '.join(ARMS)})")
    if args.seq < 1 or args.seq % 64:
        raise ConfigError(f"--seq must be a positive multiple of 64, got {args.seq}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.device)
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True  # as lemo.gpu_bench
    model = build_model(cfg.model, args.seq, device, cfg.lora_r, cfg.lora_alpha)
    if cfg.scorer == "predictor":
        attach_predictors(model, cfg, device)
    instrument()
    runner = Runner(model, cfg, device)
    res = {"command": "python -m lemo.experiments.step_profile " + " ".join(
        sys.argv[1:] if argv is None else argv), "device": device, "seq": args.seq,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "arms": {}}
    for arm in arms:
        res["arms"][arm] = profile_arm(runner, arm, args.seq, args.top)
        atomic_write_json(out / "step_profile.json", res)
        r = res["arms"][arm]
        lines = [f"{arm}: {r['total_ms']:.1f} ms of kernels"]
        lines += [f"  {k}: {v['ms']:.1f} ms ({v['calls']} calls)"
                  for k, v in sorted(r["labels"].items())]
        lines += [f"  {o['self_ms']:9.2f} ms {o['calls']:6d}  {o['name']}" for o in r["ops"][:25]]
        log.info("\n".join(lines))
    return 0


if __name__ == "__main__":
    from shared.cli import run

    run(main, sys.argv[1:])
