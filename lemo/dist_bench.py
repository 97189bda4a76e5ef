"""LoRA vs LeMo under FSDP2 on several GPUs: memory per GPU and throughput.

    torchrun --nproc_per_node 2 -m lemo.dist_bench --out results/lemo_dist/n2   # FSDP2, 2 GPUs
    python -m lemo.dist_bench --out results/lemo_dist/n1                        # 1 GPU, no FSDP

A Llama-2-7B-shaped model (32 layers, d 4096, 32 heads, SwiGLU 11008, vocabulary 32000; bf16,
random weights: with a fixed keep ratio, memory and time do not depend on weight values) with
peft LoRA r 8 on q/k/v/o. Under torchrun every decoder layer and the root are `fully_shard`ed
(FSDP2, bf16 parameters for compute, fp32 gradient reduction); each rank trains its own sequence
of `seq_len` tokens (global batch = N sequences), so N GPUs against one is weak scaling:
efficiency = tokens/s on N GPUs / (N x tokens/s on one). The arms and LeMo settings are those of
`lemo.gpu_bench` (`arm_setup`). Peak memory is the largest `max_memory_allocated` over ranks.
"""

from __future__ import annotations

import logging
import os
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field

import torch

from lemo.gpu_bench import (
    ARMS,
    GpuBenchConfig,
    GpuModelConfig,
    arm_setup,
    attach_predictors,
)
from lemo.models import set_checkpointing
from shared.bench import BenchReport
from shared.cli import build_parser, parse_args, run
from shared.io import make_run_dir
from shared.runtime import set_seed

log = logging.getLogger("lemo.dist_bench")


def _llama7b() -> GpuModelConfig:
    return GpuModelConfig(hidden_size=4096, num_layers=32, num_heads=32, num_kv_heads=32,
                          intermediate_size=11008, vocab_size=32000)


@dataclass
class DistBenchConfig(GpuBenchConfig):
    """`lemo.gpu_bench`'s settings, with a 7B-shaped model and the arms that fit it."""

    model: GpuModelConfig = field(default_factory=_llama7b)
    seq_lens: list[int] = field(default_factory=lambda: [16384, 32768])
    arms: list[str] = field(default_factory=lambda: ["lora_ckpt", "lemo_full_ckpt", "lemo_full"])
    warmup: int = 1
    repeats: int = 2
    dense_first: float = 0.5  # Llama-2-7B in the AE: layers 16-30 of 32 eliminate
    micro: bool = False
    time_budget_s: float = 200.0

    def validate(self) -> None:
        bad = [a for a in self.arms if a not in ARMS]
        if bad:
            raise ValueError(f"unknown arm(s) {bad}; choose from {list(ARMS)}")
        if not self.seq_lens or any(s <= 0 or s % 128 for s in self.seq_lens):
            raise ValueError(f"seq_lens must be positive multiples of 128, got {self.seq_lens}")
        if self.repeats < 1 or self.warmup < 0:
            raise ValueError("repeats must be >= 1 and warmup >= 0")
        self.validate_lemo()


def _build(cfg: DistBenchConfig, device: str, world: int):
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    from lemo.distributed import LossModule, decoder_layers
    from lemo.gpu_bench import build_model

    model = build_model(cfg.model, max(cfg.seq_lens), device, cfg.lora_r, cfg.lora_alpha)
    attach_predictors(model, cfg, device)
    loss_module = LossModule(model, cfg.segment)
    if world > 1:
        # bf16 base weights and fp32 LoRA adapters in one unit: FSDP2 needs one compute dtype
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        for layer in decoder_layers(model):
            fully_shard(layer, mp_policy=mp)
        fully_shard(loss_module, mp_policy=mp)
    return model, loss_module


def _max_over_ranks(x: float, world: int, device: str) -> float:
    if world == 1:
        return x
    import torch.distributed as dist

    t = torch.tensor([x], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t)


def measure(cfg, model, loss_module, arm: str, s: int, world: int, rank: int, device: str
            ) -> dict:
    from lemo.patch import configure_lemo

    lemo_cfg, segment, ckpt = arm_setup(arm, cfg)
    configure_lemo(model, lemo_cfg)
    loss_module.segment = segment
    set_checkpointing(model, ckpt)
    model.train()
    params = [p for p in loss_module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-5, betas=(0.9, 0.95), weight_decay=0.0)
    g = torch.Generator(device=device).manual_seed(cfg.seed + 1000 * rank + s)
    ids = torch.randint(0, cfg.model.vocab_size, (1, s), device=device, generator=g)

    def step():
        loss_module(ids).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(cfg.warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(cfg.repeats):
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**30
    step_s = _max_over_ranks(statistics.median(times), world, device)
    torch.cuda.empty_cache()
    return {"status": "ok", "gpus": world, "peak_gib_per_gpu": _max_over_ranks(peak, world, device),
            "step_s": step_s, "tokens_per_s": world * s / step_s}


def main(argv: list[str] | None = None) -> int:
    from lemo.distributed import cleanup, init_distributed

    parser = build_parser(
        "lemo.dist_bench",
        "LoRA vs LeMo on a 7B-shaped model under FSDP2 (torchrun) or on one GPU: peak memory per "
        "GPU, step time and tokens/s per arm and sequence length.",
        default_config=None,
        epilog="examples:\n  torchrun --nproc_per_node 2 -m lemo.dist_bench --out runs/dist/n2\n"
               "  python -m lemo.dist_bench --out runs/dist/n1 --set 'seq_lens=[16384]'")
    args, cfg = parse_args(argv, DistBenchConfig, prog="lemo.dist_bench", description="",
                           parser=parser)
    if not torch.cuda.is_available():
        from shared.errors import ConfigError

        raise ConfigError("lemo.dist_bench needs CUDA GPUs")
    env = init_distributed("fsdp", "cuda")
    world, rank, device = env.world_size, env.rank, env.device
    if world == 1:
        device = "cuda"
    set_seed(cfg.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    run_dir = make_run_dir(args.out, "lemo", "dist_bench") if env.is_main else None
    command = (f"torchrun --nproc_per_node {world} -m lemo.dist_bench " if world > 1
               else "python -m lemo.dist_bench ") + shlex.join(
        sys.argv[1:] if argv is None else argv)
    rep = BenchReport("lemo", baseline="lora_ckpt", command=command)
    rep.extra["config"] = asdict(cfg)
    rep.extra["world_size"] = world
    rep.extra["nccl_nvls_enable"] = os.environ.get("NCCL_NVLS_ENABLE")
    model, loss_module = _build(cfg, device, world)
    deadline = time.monotonic() + cfg.time_budget_s
    for s in cfg.seq_lens:
        for arm in cfg.arms:
            setting = f"{s // 1024}K"
            if time.monotonic() > deadline:
                rep.add(arm, setting, seq_len=s, status="skipped (time budget)")
                continue
            try:
                row = measure(cfg, model, loss_module, arm, s, world, rank, device)
            except torch.OutOfMemoryError:
                row = {"status": "oom"}
                torch.cuda.empty_cache()
            rep.add(arm, setting, seq_len=s, **row)
            if env.is_main:
                log.info("%-15s %6d  %s", arm, s, row)
                rep.write(run_dir, plot_metrics=["peak_gib_per_gpu", "tokens_per_s"])
    cleanup(env, barrier=True)  # every rank gets here
    return 0


if __name__ == "__main__":
    run(main)
