"""The accuracy bench's memory axis without a GPU: saved bytes / LoRA's at 16K on the GPU
bench's 16-layer model, over keep ratio x MLP pruning, on fake CPU tensors.

usage: python -m lemo.experiments.saved_16k OUT.json [--keeps 0.4 0.6] [--prunes 0 0.3] \\
           [--compare results/lemo/h200_accuracy_b/results.json ...]

`lemo.experiments.accuracy_bench.saved_ratios` runs one real training step per config on the
device (a 16K step of a 1B-parameter model: 25 GB saved by LoRA, out of a CPU's reach). Saved
bytes depend only on shapes, dtypes and the kept counts, so `lemo.finetune.saved_step_mib_shapes`
runs the same step on fake tensors (no data, no memory; ~7 s a config on one core) with the
bench's settings (`AccuracyBenchConfig`: `saved_model`, `saved_seq_len`, `saved_dense_first`,
LoRA r/alpha, the arms' LeMo configs). Top-k policies keep the same count, so one policy
("unbiased") stands for all; the threshold rule's count depends on the data and is not covered.
`--compare` reads accuracy-bench records measured on a GPU and stores, per arm they share, the
device's ratio beside this one.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

from lemo.experiments.accuracy_bench import AccuracyBenchConfig, arm_config
from lemo.finetune import saved_step_mib_shapes
from lemo.gpu_bench import build_model
from shared.config import to_dict
from shared.io import atomic_write_json


def shape_ratios(cfg: AccuracyBenchConfig, arms: list[str]) -> dict:
    """arm -> saved bytes / dense LoRA's, on fake tensors, with the accuracy bench's settings."""
    model = build_model(cfg.saved_model, cfg.saved_seq_len, "meta", cfg.lora.r, cfg.lora.alpha)
    lcs = {a: arm_config(a, cfg.block_size, cfg.saved_dense_first) for a in ["lora", *arms]}
    mib = saved_step_mib_shapes(model, cfg.saved_seq_len, cfg.saved_model.vocab_size, lcs)
    return {"lora_MB": mib["lora"], "ratio": {a: mib[a] / mib["lora"] for a in arms}}


def _topk_name(arm: str) -> str:
    """The grid's name for an arm that keeps as many blocks (every top-k policy does)."""
    parts = arm.split(":")
    if len(parts) == 4 and parts[1] != "threshold":
        parts[1] = "unbiased"
    return ":".join(parts)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--keeps", type=float, nargs="+", default=[0.3, 0.4, 0.5, 0.6, 0.8])
    p.add_argument("--prunes", type=float, nargs="+", default=[0.0, 0.2, 0.3, 0.4, 0.5, 0.8])
    p.add_argument("--compare", nargs="*", default=[], metavar="RESULTS_JSON")
    args = p.parse_args(argv)
    cfg = AccuracyBenchConfig()
    arms = [f"lemo:unbiased:k{k}:p{q}" for k, q in itertools.product(args.keeps, args.prunes)]
    arms.append("longlora_s2")
    t0 = time.perf_counter()
    out = {"method": "fake CPU tensors (lemo.finetune.saved_step_mib_shapes)",
           "seq_len": cfg.saved_seq_len, "model": to_dict(cfg.saved_model),
           "dense_first": cfg.saved_dense_first, **shape_ratios(cfg, arms)}
    out["seconds"] = time.perf_counter() - t0
    out["device_check"] = {}
    for path in args.compare:
        with open(path) as f:
            rec = json.load(f)
        dev = rec.get("saved", {}).get("ratio", {})
        out["device_check"][path] = {
            "device": rec.get("device"), "lora_MB": rec.get("saved", {}).get("lora_MB"),
            "ratio": {a: {"device": r, "shapes": out["ratio"][_topk_name(a)]}
                      for a, r in dev.items() if _topk_name(a) in out["ratio"]}}
    atomic_write_json(args.out, out)
    for a, r in out["ratio"].items():
        print(f"{a}: {r:.4f}", flush=True)


if __name__ == "__main__":
    main()
