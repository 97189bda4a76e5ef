"""Wall time of the bench's jobs on this CPU, one job alone on one thread, and the bench's wall
time projected from them.

    OMP_NUM_THREADS=1 python -m ollie.experiments.job_times [--envs hopper,halfcheetah]
        [--steps 10240] [--jobs offline,ollie,...] [--slowdown 2.5,3] [--workers 16]
        [--seeds 3] [--set key=value ...]

Runs, per environment and seed 0, each job of the bench (`bench.run_offline`: OLLIE's offline
phase, the online starts, π⁰'s out-of-family evaluations, the alignment check; `bench.run_online`
per OLLIE variant; `bench.run_job` for the other arms) with `--steps` online steps; the online
phase (`fit_online`) is timed apart and scaled to the config's budget, the rest (offline
phase, evaluations of π⁰ and of the final policy, alignment check) counted once. Then the bench's
longest-first schedule (`bench.run_all`'s order) is replayed on `--workers` workers with every
job `--slowdown` times slower: a projection, not a measurement. Prints JSON.
"""

from __future__ import annotations

import heapq
import json
import sys
import time

import torch

import ollie.bench as bench
import ollie.train as train
from ollie.config import TrainConfig
from shared.cli import build_parser, parse_args, run

JOBS = ["offline", *bench.VARIANTS, *(a for a in bench.ARMS if a != "ollie")]


def simulate(est: dict, settings: list[str], seeds: int, workers: int) -> float:
    """Makespan of the bench's schedule with job times `est[(setting, arm)]` (seconds): ready
    jobs longest first, an offline job counted with its online job (`bench.run_all`)."""
    def prio(s, a):
        return est[(s, a)] + (est[(s, "ollie")] if a == "offline" else 0.0)

    ready = [(prio(s, a), k, s, a) for k in range(seeds) for s in settings
             for a in JOBS if a not in bench.VARIANTS]
    running, now = [], 0.0  # heap of (end time, seed, setting, arm)
    while ready or running:
        ready.sort(key=lambda j: (-j[0], j[1]))
        while ready and len(running) < workers:
            _, k, s, a = ready.pop(0)
            heapq.heappush(running, (now + est[(s, a)], k, s, a))
        now, k, s, a = heapq.heappop(running)
        if a == "offline":
            ready += [(prio(s, v), k, s, v) for v in bench.VARIANTS]
    return now


def main(argv: list[str] | None = None) -> int:
    p = build_parser("ollie.experiments.job_times", __doc__.split("\n\n")[0])
    p.set_defaults(config=None)
    p.add_argument("--envs", default="hopper,halfcheetah")
    p.add_argument("--steps", type=int, default=10240, help="online steps measured")
    p.add_argument("--jobs", default=",".join(JOBS))
    p.add_argument("--slowdown", default="2.5,3", help="per-core slowdowns of the projection")
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--seeds", type=int, default=3)
    args, _ = parse_args(argv, TrainConfig, prog="ollie.experiments.job_times",
                         description=__doc__, parser=p)
    torch.set_num_threads(1)
    extra, settings = list(args.overrides), args.envs.split(",")
    short = extra + [f"online.env_steps={args.steps}"]
    online_s, fit_online = [0.0], train.fit_online

    def timed(*a, **k):
        t = time.perf_counter()
        r = fit_online(*a, **k)
        online_s[0] += time.perf_counter() - t
        return r

    train.fit_online = bench.fit_online = timed
    out, est, off = {}, {}, {}
    for s in settings:
        budget = bench.arm_config(s, "ollie", 0, args.quick, extra).online.env_steps
        for a in args.jobs.split(","):
            online_s[0] = 0.0
            t0 = time.perf_counter()
            if a == "offline":
                off[s] = bench.run_offline((s, 0, args.quick, short))
            elif a in bench.VARIANTS:
                v = bench.VARIANTS[a]
                bench.run_online((s, 0, a, args.quick, short,
                                  {**off[s], "starts": {v: off[s]["starts"][v]}}))
            else:  # the offline-only arms keep their online.env_steps=0 (`bench.arm_config`)
                bench.run_job((s, 0, a, args.quick, short))
            wall = time.perf_counter() - t0
            est[(s, a)] = wall + online_s[0] * (budget / args.steps - 1)  # 0 for offline-only
            out[f"{s}/{a}"] = {"wall_s": round(wall, 1), "online_s": round(online_s[0], 1),
                               "projected_here_s": round(est[(s, a)], 1)}
            print(json.dumps({f"{s}/{a}": out[f"{s}/{a}"]}), flush=True)
    if all((s, a) in est for s in settings for a in JOBS):
        out["bench_projection_s"] = {
            f"x{x}": round(simulate({k: v * float(x) for k, v in est.items()}, settings,
                                    args.seeds, args.workers))
            for x in args.slowdown.split(",")}
        out["bench_projection_s"]["x1"] = round(simulate(est, settings, args.seeds,
                                                         args.workers))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
