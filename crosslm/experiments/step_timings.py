"""Count the steps of a bench config and project the device bench's wall time on one GPU.

`python -m crosslm.experiments.step_timings --config configs/crosslm/device.yaml [--rate
update=0.25] [--cpu]`

- `arm_counts`: per arm of one (task, seed) job, the SLM optimiser steps, KV-cached decoding
  steps and LoRA update steps that the code performs (the synthetic pool assumed full:
  `keep_top x per_label` kept per label and round); `count` sums them over the arms.
- `project`: those counts times per-step GPU latencies. The defaults are fitted to the lent
  H200's partial run of the old device config (results/crosslm/h200_partial: six (task, seed)
  processes at once on one GPU; standalone, KD binary and KD topics arm times against their
  step counts, see results/crosslm/NOTES.md): an SLM step 26 ms, a decoding step 12.5 ms, with
  six processes sharing the GPU. The LoRA update step never finished there; 150 ms is assumed.
  The job timeline is projected two ways: at those six-way rates throughout (an upper bound),
  and with the GPU shared evenly by the jobs still running (rates 6 / active x faster).
- `--cpu` also measures this machine's CPU time per step (one thread) for reference.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from crosslm.bench import KD_ARMS, LLM_ARMS, BenchConfig
from crosslm.models import build_slm, build_tiny_llm, byte_features, with_lora
from crosslm.slm import train_slm
from shared.config import load_config

# seconds per step with six jobs on one H200 (fitted; see the module docstring)
H200_SIX_JOBS = {"slm": 0.026, "decode": 0.0125, "update": 0.15, "setup": 30.0,
                 "llm_eval": 4.0, "slm_eval": 2.0}


def _kinds(cfg: BenchConfig) -> list[str]:
    k = cfg.slm.kinds
    return k if len(k) == cfg.data.num_clients else k * cfg.data.num_clients


def arm_counts(cfg: BenchConfig, task: str, arm: str) -> dict[str, int]:
    """{"slm", "decode", "update"} steps of one arm ("before": the pretrained LLM's metrics;
    "centralised": the ceiling) of one (task, seed) job."""
    C = 5 if task == "topics" else 2
    R, g, s, n0 = cfg.fl.rounds, cfg.gen, cfg.slm, cfg.data.private_per_client
    K = cfg.data.num_clients
    gen = g.max_new_tokens * (1 if g.batch_labels else C)  # decoding steps per sample set
    if arm == "before":
        return {"slm": 0, "decode": gen, "update": 0}
    if arm == "centralised":
        steps = s.epochs * R * math.ceil(n0 * K / s.batch)
        return {"slm": len(set(_kinds(cfg))) * steps, "decode": 0, "update": 0}
    if arm not in LLM_ARMS:  # standalone
        return {"slm": K * R * s.epochs * math.ceil(n0 / s.batch), "decode": 0, "update": 0}
    kept = int(round(g.keep_top * g.per_label)) * C  # joins the pool each round
    slm = K * s.epochs * sum(math.ceil((n0 + kept * r) / s.batch) for r in range(R))
    # R query sets (none after the last round) + the fidelity samples after
    return {"slm": slm, "decode": (R + 1) * gen,
            "update": 0 if arm in KD_ARMS else R * cfg.llm.steps}


def count(cfg: BenchConfig, task: str) -> dict[str, float]:
    """Step counts of one (task, seed) job of the bench (all of cfg.arms): SLM
    example-epochs per kind, decoding and update steps."""
    C = 5 if task == "topics" else 2
    R, g, s = cfg.fl.rounds, cfg.gen, cfg.slm
    llm_arms = [a for a in cfg.arms if a in LLM_ARMS]
    syn = [sum(int(round(g.keep_top * g.per_label)) * C for _ in range(r)) for r in range(R)]
    per_client = s.epochs * sum(cfg.data.private_per_client + n for n in syn)
    kinds = _kinds(cfg)
    slm_ex = {k: 0.0 for k in set(kinds)}
    for arm in cfg.arms:
        for k in kinds:
            slm_ex[k] += per_client if arm in LLM_ARMS else s.epochs * R * \
                cfg.data.private_per_client
    for k in set(s.kinds):  # the centralised ceiling
        slm_ex[k] += s.epochs * R * cfg.data.private_per_client * cfg.data.num_clients
    arms = ["before", *llm_arms] if llm_arms else []
    return {"slm_example_epochs": slm_ex,
            "decode_steps": sum(arm_counts(cfg, task, a)["decode"] for a in arms),
            "update_steps": sum(arm_counts(cfg, task, a)["update"] for a in arms)}


def arm_seconds(cfg: BenchConfig, task: str, arm: str, lat: dict[str, float]) -> float:
    c = arm_counts(cfg, task, arm)
    secs = c["slm"] * lat["slm"] + c["decode"] * lat["decode"] + c["update"] * lat["update"]
    if arm in LLM_ARMS:
        secs += lat["llm_eval"]
    elif arm == "standalone":
        secs += lat["slm_eval"]
    return secs


def job_plan(cfg: BenchConfig, task: str, lat: dict[str, float]) -> list[tuple[str, float]]:
    """(arm, seconds at `lat`) in the order a device-bench worker runs them; the job's setup
    and the pretrained LLM's metrics are charged to its first arm."""
    arms = list(cfg.arms)
    arms.insert(arms.index("standalone") + 1 if "standalone" in arms else len(arms),
                "centralised")
    plan, first_llm = [], True
    for i, arm in enumerate(arms):
        secs = arm_seconds(cfg, task, arm, lat) + (lat["setup"] if i == 0 else 0.0)
        if arm in LLM_ARMS and first_llm:
            secs += arm_seconds(cfg, task, "before", lat) + lat["llm_eval"]
            first_llm = False
        plan.append((arm, secs))
    return plan


def project(cfg: BenchConfig, lat: dict[str, float], shared: bool) -> dict:
    """Finish time (s after the workers start) of every arm of every job, all jobs at once.
    `lat` holds six-way rates; `shared`: the jobs still running split the GPU evenly (rates
    scale by 6 / active), else the six-way rates hold throughout (an upper bound)."""
    jobs = {(t, s): job_plan(cfg, t, lat) for s in cfg.seeds for t in cfg.tasks}
    left = {j: [list(x) for x in plan] for j, plan in jobs.items()}
    done: dict = {}
    now = 0.0
    while left:
        speed = 6 / len(left) if shared else 1.0
        dt = min(p[0][1] for p in left.values()) / speed  # until the next arm ends
        now += dt
        for j in list(left):
            left[j][0][1] -= dt * speed
            if left[j][0][1] <= 1e-9:
                done[(*j, left[j][0][0])] = now
                left[j].pop(0)
                if not left[j]:
                    del left[j]
    return done


def slm_rate(kind: str, max_bytes: int, n: int = 256) -> float:
    """Example-epochs per second of train_slm on random byte text of `max_bytes` (CPU)."""
    texts = ["".join(chr(97 + (i * 7 + j) % 26) for j in range(max_bytes)) for i in range(n)]
    x, y = byte_features(texts, max_bytes), torch.eye(5)[torch.arange(n) % 5]
    model = build_slm(kind, 5)
    train_slm(model, x, y, torch.ones(n), 1, 3e-3, 64, 0)
    t0 = time.perf_counter()
    train_slm(model, x, y, torch.ones(n), 1, 3e-3, 64, 0)
    return n / (time.perf_counter() - t0)


def decode_step_secs(cfg: BenchConfig, rows: int = 64) -> float:
    """CPU seconds of one KV-cached decoding step of `rows` samples (LoRA on)."""
    L = cfg.llm
    lora = with_lora(build_tiny_llm(L.hidden, L.layers, L.heads, L.intermediate),
                     L.lora_rank, L.lora_alpha).eval()
    x = torch.randint(0, 256, (rows, 16))
    with torch.no_grad():
        out = lora(input_ids=x, use_cache=True)
        t0 = time.perf_counter()
        lora(input_ids=x[:, :1], past_key_values=out.past_key_values, use_cache=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="configs/crosslm/device.yaml")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--rate", action="append", default=[],
                    help="override a six-way rate, e.g. update=0.25 (seconds; keys: "
                         + ", ".join(H200_SIX_JOBS) + ")")
    ap.add_argument("--cpu", action="store_true", help="also time CPU steps (one thread)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = load_config(args.config, BenchConfig, args.sets)
    lat = dict(H200_SIX_JOBS)
    for kv in args.rate:
        key, _, val = kv.partition("=")
        if key not in lat:
            raise SystemExit(f"--rate: unknown key '{key}' ({', '.join(lat)})")
        lat[key] = float(val)
    for task in cfg.tasks:
        plan = job_plan(cfg, task, lat)
        steps = {a: arm_counts(cfg, task, a) for a, _ in plan}
        print(f"{task}, one job: " + "; ".join(
            f"{a} {s:.0f} s ({steps[a]['slm']} SLM / {steps[a]['decode']} decode / "
            f"{steps[a]['update']} update steps)" for a, s in plan))
    for shared in (False, True):
        done = project(cfg, lat, shared)
        print(f"\nprojected finish (s after the workers start; "
              f"{'GPU shared by the jobs left' if shared else 'six-way rates throughout'}):")
        for arm in dict.fromkeys(a for _, _, a in done):
            ends = [v for (t, s, a), v in done.items() if a == arm]
            print(f"  {arm:20s} last job done at {max(ends):4.0f} s")
    if args.cpu:
        rates = {k: slm_rate(k, cfg.slm.max_bytes) for k in sorted(set(cfg.slm.kinds))}
        print("\nCPU, one thread: SLM example-epochs / s",
              {k: round(v) for k, v in rates.items()},
              f"; decoding step of 64 rows {decode_step_secs(cfg):.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
