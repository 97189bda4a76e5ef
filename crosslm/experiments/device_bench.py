"""The full bench in one GPU command that always leaves results: pretrain the LLM once, run
the (task, seed) jobs in worker processes, write every arm's row the moment it finishes, and
keep a summary and a bench report of whatever has finished.

`python -m crosslm.experiments.device_bench --out <dir> --timeout 450` (default config:
configs/crosslm/device.yaml; `--set key=value` as in the recipes). Writes:

- `<dir>/<task>-s<seed>.jsonl`: one line per finished arm of that job (its metrics row, the
  LLM arms with the `_before` metrics of the pretrained LLM), appended as it finishes;
- `<dir>/<task>-s<seed>.log`: the worker's log;
- `<dir>/summary.md`, rewritten every few seconds and at the end: per-seed mean client
  accuracy of every arm, the CrossLM - standalone / - KD margins, the LLM-side metrics and
  what has not finished;
- `<dir>/bench.json` / `bench.md` at the end: `crosslm.bench`'s report and checks over the
  seeds that finished (each arm's mean over the seeds it finished on).

Scheduling: `--workers` processes (default: one per job); a worker given several jobs runs
them arm by arm (every job's first arm, then every job's second, ...), so that the arms first
in `arms` (the config lists them by priority) finish on every job before any later one. A
worker still running at `--timeout` seconds (counted from the start, pretraining included) is
stopped; the arms it finished are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from crosslm.bench import LLM_ARMS, BenchConfig, add_checks, add_rows, run_seed
from crosslm.data import task_llm_excluded
from crosslm.models import pretrained_llm
from shared.bench import BenchReport
from shared.config import load_config
from shared.io import atomic_write_text
from shared.runtime import pick_device

LLM_KEYS = ("fidelity", "gen_acc", "perplexity")


def job_name(task: str, seed: int) -> str:
    return f"{task}-s{seed}"


def work(cfg: BenchConfig, jobs: list[tuple[str, int]], out: Path) -> None:
    """Run the jobs arm by arm; append each finished arm's row to its job's .jsonl."""
    import torch

    if pick_device(cfg.device).startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True  # the LLM's matmuls (both arms alike)
    torch.set_num_threads(cfg.threads)
    runs = {job: run_seed(cfg, *job) for job in jobs}
    while runs:
        for job, it in list(runs.items()):
            t0 = time.perf_counter()
            try:
                arm, row, _ = next(it)
            except StopIteration:
                del runs[job]
                continue
            row = {"arm": arm, **row, "job_secs": time.perf_counter() - t0}
            with open(out / f"{job_name(*job)}.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")


def read_rows(out: Path, tasks: list[str], seeds: list[int]) -> dict[str, dict[int, dict]]:
    """{task: {seed: {arm: row}}} of every finished arm."""
    rows: dict = {t: {s: {} for s in seeds} for t in tasks}
    for t in tasks:
        for s in seeds:
            f = out / f"{job_name(t, s)}.jsonl"
            if f.is_file():
                for line in f.read_text().splitlines():
                    if line.strip():
                        r = json.loads(line)
                        rows[t][s][r["arm"]] = r
    return rows


def summarise(rows: dict, cfg: BenchConfig) -> str:
    seeds = cfg.seeds
    head = ["| task | arm | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
            "|---|---|" + "---|" * (len(seeds) + 1)]
    acc, margins, llm, missing = list(head), list(head), [], []
    arms = ["standalone", "centralised", *[a for a in cfg.arms if a != "standalone"]]
    for task, per_seed in rows.items():
        for arm in arms:
            vals = [per_seed[s].get(arm, {}).get("acc_mean", np.nan) for s in seeds]
            missing += [f"{task}-s{s}/{arm}" for s, v in zip(seeds, vals) if np.isnan(v)]
            if not all(np.isnan(vals)):
                acc.append(f"| {task} | {arm} | " + " | ".join(f"{v:.3f}" for v in vals)
                           + f" | {np.nanmean(vals):.3f} |")
            if arm in LLM_ARMS:
                done = [per_seed[s][arm] for s in seeds if arm in per_seed[s]]
                if done:
                    llm.append(f"| {task} | {arm} | {len(done)} | " + " | ".join(
                        f"{np.mean([r[k + '_before'] for r in done]):.3f} -> "
                        f"{np.mean([r[k + '_after'] for r in done]):.3f}" for k in LLM_KEYS)
                        + " |")
        for ref in ("standalone", "kd", "kd-nofilter"):
            d = [100 * (per_seed[s].get("crosslm", {}).get("acc_mean", np.nan)
                        - per_seed[s].get(ref, {}).get("acc_mean", np.nan)) for s in seeds]
            if not all(np.isnan(d)):
                margins.append(f"| {task} | CrossLM - {ref} (points) | "
                               + " | ".join(f"{v:+.1f}" for v in d) + f" | {np.nanmean(d):+.1f} |")
    llm_head = ["| task | arm | seeds | fidelity before -> after | generative-classifier acc "
                "| held-out perplexity |", "|---|---|---|---|---|---|"]
    return "\n".join(["Mean client accuracy:", "", *acc, "", *margins, "",
                      "LLM side (mean over the seeds that finished):", "", *llm_head, *llm,
                      "", f"not finished: {', '.join(missing) if missing else 'none'}"])


def report(rows: dict, cfg: BenchConfig, out: Path, argv: list[str]) -> None:
    """bench.json / bench.md over the finished arms (each arm's mean over its seeds)."""
    rep = BenchReport("crosslm", baseline="standalone", command=argv)
    for task, per_seed in rows.items():
        per_arm: dict[str, list[dict]] = {}
        for per_arm_rows in per_seed.values():
            for arm, r in per_arm_rows.items():
                per_arm.setdefault(arm, []).append(
                    {k: v for k, v in r.items() if k not in ("arm", "job_secs")})
        add_rows(rep, task, per_arm)
    add_checks(rep, cfg)
    rep.write(out, plot_metrics=None, config=cfg)


def pretrain(cfg: BenchConfig) -> None:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls for the one pretraining run
    L = cfg.llm
    if not L.path:  # build the cached LLM once, before the workers that read it
        pretrained_llm(L.hidden, L.layers, L.heads, L.intermediate, L.pretrain_steps,
                       L.pretrain_batch, L.pretrain_seq, L.pretrain_lr, task_llm_excluded(),
                       device=pick_device(cfg.device))


def launch(args, jobs: list[tuple[str, int]], out: Path, workers: int) -> list:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    procs = []
    for w in range(workers):
        mine = jobs[w::workers]
        cmd = [sys.executable, "-m", "crosslm.experiments.device_bench", "--config",
               args.config, "--out", str(out), "--worker",
               ",".join(f"{t}:{s}" for t, s in mine)] + [a for s in args.sets
                                                         for a in ("--set", s)]
        log = open(out / f"{'+'.join(job_name(*j) for j in mine)}.log", "w")
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
    return procs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="configs/crosslm/device.yaml")
    ap.add_argument("--out", required=True)
    ap.add_argument("--timeout", type=float, default=450.0,
                    help="seconds from the start (pretraining included) to stop the workers")
    ap.add_argument("--workers", type=int, default=0, help="worker processes (0: one per job)")
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)  # task:seed,... (internal)
    ap.add_argument("--set", action="append", default=[], dest="sets")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, BenchConfig, args.sets)
    cfg.validate()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.worker:
        work(cfg, [(t, int(s)) for t, s in (j.split(":") for j in args.worker.split(","))], out)
        return 0
    t0 = time.perf_counter()
    pretrain(cfg)
    print(f"pretrained LLM ready after {time.perf_counter() - t0:.0f} s", flush=True)
    jobs = [(t, s) for s in cfg.seeds for t in cfg.tasks]
    args.threads = cfg.threads
    procs = launch(args, jobs, out, min(args.workers or len(jobs), len(jobs)))
    while any(p.poll() is None for p in procs) and time.perf_counter() - t0 < args.timeout:
        time.sleep(5)
        atomic_write_text(out / "summary.md", summarise(read_rows(out, cfg.tasks, cfg.seeds),
                                                        cfg) + "\n")
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
    rows = read_rows(out, cfg.tasks, cfg.seeds)
    summary = summarise(rows, cfg) + f"\n\nwall {time.perf_counter() - t0:.0f} s\n"
    atomic_write_text(out / "summary.md", summary)
    report(rows, cfg, out, sys.argv)
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
