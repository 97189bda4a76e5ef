"""Time the steps of a bench config on this machine and extrapolate one (task, seed) process.

`python -m crosslm.experiments.step_timings --config configs/crosslm/device.yaml`

Measures, with the config's sizes: SLM training throughput (example-epochs per second) of each
byte SLM kind; one LLM pretraining step, one LoRA update step and one KV-cached decoding step
(at a reduced batch on CPU, scaled linearly). Then it counts how many of each step one
(task, seed) process of `crosslm.bench` performs and prints the CPU estimate, and a GPU
estimate from assumed per-step latencies (`--gpu-*-ms`; not measured here: no GPU). SLMs and
the LLM both run on the config's device.
"""

from __future__ import annotations

import argparse
import time

import torch

from crosslm.bench import LLM_ARMS, BenchConfig
from crosslm.models import build_slm, build_tiny_llm, byte_features, with_lora
from crosslm.slm import train_slm
from shared.config import load_config


def _time(fn, reps: int = 2) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def slm_rate(kind: str, max_bytes: int, n: int = 256) -> float:
    """Example-epochs per second of train_slm on random byte text of `max_bytes`."""
    texts = ["".join(chr(97 + (i * 7 + j) % 26) for j in range(max_bytes)) for i in range(n)]
    x, y = byte_features(texts, max_bytes), torch.eye(5)[torch.arange(n) % 5]
    model = build_slm(kind, 5)
    secs = _time(lambda: train_slm(model, x, y, torch.ones(n), 1, 3e-3, 32, 0), reps=1)
    return n / secs


def llm_steps(cfg: BenchConfig, cpu_batch: int = 8) -> dict[str, float]:
    """Seconds per step at the config's batch (measured at `cpu_batch`, scaled linearly)."""
    L, g = cfg.llm, cfg.gen
    model = build_tiny_llm(L.hidden, L.layers, L.heads, L.intermediate)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randint(0, 256, (cpu_batch, L.pretrain_seq))

    def train_step():
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()

    pre = _time(train_step, 1) * L.pretrain_batch / cpu_batch
    lora = with_lora(model, L.lora_rank, L.lora_alpha)
    upd = _time(lambda: lora(input_ids=x[:, :192], labels=x[:, :192]).loss.backward(), 1)
    upd *= 2 * L.batch / cpu_batch  # samples + guard windows
    with torch.no_grad():
        out = lora(input_ids=x[:, :16], use_cache=True)
        tok = x[:, :1]
        dec = _time(lambda: lora(input_ids=tok, past_key_values=out.past_key_values,
                                 use_cache=True), 3) * g.per_label / cpu_batch
    return {"pretrain_step": pre, "update_step": upd, "decode_step_per_label": dec}


def count(cfg: BenchConfig, task: str) -> dict[str, float]:
    """Step counts of one (task, seed) process of the bench (all of cfg.arms)."""
    C = 5 if task == "topics" else 2
    R, g, s = cfg.fl.rounds, cfg.gen, cfg.slm
    llm_arms = [a for a in cfg.arms if a in LLM_ARMS]
    syn = [sum(int(round(g.keep_top * g.per_label)) * C for _ in range(r)) for r in range(R)]
    per_client = s.epochs * sum(cfg.data.private_per_client + n for n in syn)
    kinds = s.kinds if len(s.kinds) == cfg.data.num_clients else s.kinds * cfg.data.num_clients
    slm_ex = {k: 0.0 for k in set(kinds)}
    for arm in cfg.arms:
        for k in kinds:
            slm_ex[k] += per_client if arm in LLM_ARMS else s.epochs * R * \
                cfg.data.private_per_client
    for k in set(s.kinds):  # the centralised ceiling
        slm_ex[k] += s.epochs * R * cfg.data.private_per_client * cfg.data.num_clients
    gens = len(llm_arms) * (R + 1) + 1  # a query set per round + metrics before / after
    decode = gens * (1 if g.batch_labels else C) * g.max_new_tokens
    return {"slm_example_epochs": slm_ex, "decode_steps": decode,
            "slm_steps": {k: v / s.batch for k, v in slm_ex.items()},
            "update_steps": sum(a != "kd" for a in llm_arms) * R * cfg.llm.steps}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="configs/crosslm/device.yaml")
    ap.add_argument("--gpu-decode-ms", type=float, default=8.0,
                    help="assumed GPU latency of one KV-cached decoding step (launch-bound)")
    ap.add_argument("--gpu-update-ms", type=float, default=60.0,
                    help="assumed GPU latency of one LoRA update step (fp32)")
    args = ap.parse_args(argv)
    args.gpu_slm_ms = {"cnn": 1.5, "bilstm": 3.0, "minilm": 1.0}  # assumed, per SLM step
    torch.set_num_threads(1)
    cfg = load_config(args.config, BenchConfig)
    rates = {k: slm_rate(k, cfg.slm.max_bytes) for k in sorted(set(cfg.slm.kinds))}
    steps = llm_steps(cfg)
    print("SLM example-epochs / s (1 thread):", {k: round(v) for k, v in rates.items()})
    print("LLM seconds per step (CPU, 1 thread):", {k: round(v, 3) for k, v in steps.items()})
    print(f"pretraining: {cfg.llm.pretrain_steps} steps = "
          f"{cfg.llm.pretrain_steps * steps['pretrain_step']:.0f} CPU-s (once per machine)")
    for task in cfg.tasks:
        c = count(cfg, task)
        slm = sum(n / rates[k] for k, n in c["slm_example_epochs"].items())
        dec = c["decode_steps"] * steps["decode_step_per_label"] * (
            (5 if task == "topics" else 2) if cfg.gen.batch_labels else 1)
        upd = c["update_steps"] * steps["update_step"]
        print(f"{task}, one seed: SLM {slm:.0f} CPU-s; LLM decoding {c['decode_steps']} steps "
              f"= {dec:.0f} CPU-s; LLM updates {c['update_steps']} steps = {upd:.0f} CPU-s")
        slm_steps = {k: round(v) for k, v in c["slm_steps"].items()}
        gpu = (sum(n * args.gpu_slm_ms.get(k, 3.0) for k, n in c["slm_steps"].items())
               + c["decode_steps"] * args.gpu_decode_ms
               + c["update_steps"] * args.gpu_update_ms) / 1000
        print(f"  SLM optimiser steps {slm_steps}; GPU estimate at the assumed latencies: "
              f"{gpu:.0f} s for this process alone")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
