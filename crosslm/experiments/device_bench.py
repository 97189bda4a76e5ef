"""The full bench in one GPU command: pretrain the LLM once, then one `crosslm.bench` process
per (task, seed), all at once, and a merged per-seed summary.

`python -m crosslm.experiments.device_bench --out <dir>` (default config:
configs/crosslm/device.yaml). Writes `<dir>/<task>-s<seed>/bench.json` (one per process, each a
complete bench run of one task and seed), `<dir>/<task>-s<seed>.log` and `<dir>/summary.md`:
every arm's mean client accuracy per seed and the CrossLM - standalone / - KD margins with
their 3-seed means. A process still running after `--timeout` seconds is stopped, and the
summary lists it as missing.
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

from crosslm.bench import BenchConfig
from crosslm.data import task_llm_excluded
from crosslm.models import pretrained_llm
from shared.config import load_config
from shared.runtime import pick_device


def launch(cfg_path: str, out: Path, tasks: list[str], seeds: list[int], threads: int,
           sets: list[str]) -> dict[tuple[str, int], subprocess.Popen]:
    procs = {}
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    for task in tasks:
        for seed in seeds:
            cmd = [sys.executable, "-m", "crosslm.bench", "--config", cfg_path,
                   "--set", f"tasks=[{task}]", "--set", f"seeds=[{seed}]",
                   "--out", str(out / f"{task}-s{seed}")]
            for s in sets:
                cmd += ["--set", s]
            log = open(out / f"{task}-s{seed}.log", "w")
            procs[(task, seed)] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                   env=env)
    return procs


def summarise(out: Path, tasks: list[str], seeds: list[int]) -> str:
    lines = ["| task | arm | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
             "|---|---|" + "---|" * (len(seeds) + 1)]
    margins = []
    for task in tasks:
        acc: dict[str, dict[int, float]] = {}
        for seed in seeds:
            f = out / f"{task}-s{seed}" / "bench.json"
            if not f.is_file():
                continue
            for row in json.loads(f.read_text())["rows"]:
                acc.setdefault(row["arm"], {})[seed] = row.get("acc_mean", float("nan"))
        for arm, per in acc.items():
            vals = [per.get(s, float("nan")) for s in seeds]
            lines.append(f"| {task} | {arm} | " + " | ".join(f"{v:.3f}" for v in vals)
                         + f" | {np.nanmean(vals):.3f} |")
        for ref in ("standalone", "kd"):
            if "crosslm" in acc and ref in acc:
                d = [100 * (acc["crosslm"].get(s, np.nan) - acc[ref].get(s, np.nan))
                     for s in seeds]
                margins.append(f"| {task} | CrossLM - {ref} (points) | "
                               + " | ".join(f"{v:+.1f}" for v in d)
                               + f" | {np.nanmean(d):+.1f} |")
    missing = [f"{t}-s{s}" for t in tasks for s in seeds
               if not (out / f"{t}-s{s}" / "bench.json").is_file()]
    return "\n".join(lines + [""] + lines[:2] + margins
                     + ([f"\nmissing (timed out or failed): {', '.join(missing)}"]
                        if missing else []))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="configs/crosslm/device.yaml")
    ap.add_argument("--out", required=True)
    ap.add_argument("--timeout", type=float, default=500.0)
    ap.add_argument("--set", action="append", default=[], dest="sets")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, BenchConfig, args.sets)
    cfg.validate()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    L = cfg.llm
    import torch

    torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls for the one pretraining run
    if not L.path:  # build the cached LLM once, before the processes that read it
        pretrained_llm(L.hidden, L.layers, L.heads, L.intermediate, L.pretrain_steps,
                       L.pretrain_batch, L.pretrain_seq, L.pretrain_lr, task_llm_excluded(),
                       device=pick_device(cfg.device))
    print(f"pretrained LLM ready after {time.perf_counter() - t0:.0f} s", flush=True)
    procs = launch(args.config, out, cfg.tasks, cfg.seeds, cfg.threads, args.sets)
    deadline = t0 + args.timeout
    for key, p in procs.items():
        try:
            p.wait(timeout=max(1.0, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        print(f"{key[0]} seed {key[1]}: exit {p.returncode} after "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    summary = summarise(out, cfg.tasks, cfg.seeds)
    (out / "summary.md").write_text(summary + "\n")
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
