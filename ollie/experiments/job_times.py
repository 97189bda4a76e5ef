"""Wall time of the bench's jobs on this CPU, one job alone on one thread, for its projection.

    OMP_NUM_THREADS=1 python -m ollie.experiments.job_times [--envs hopper,halfcheetah]
                                                           [--steps 10240] [--set key=value ...]

Per environment: OLLIE's offline job (`bench.run_offline`: offline phase, the online starts, π⁰'s
out-of-family evaluations, the alignment check) and the online job of each variant at `--steps`
online steps (`bench.run_online`), with the online phase timed apart from the final
out-of-family evaluations so that the online phase alone is scaled to the config's budget.
Prints one JSON object.
"""

from __future__ import annotations

import json
import sys
import time

import torch

import ollie.bench as bench
from ollie.config import TrainConfig
from ollie.data import build_data
from shared.cli import build_parser, parse_args, run


def main(argv: list[str] | None = None) -> int:
    p = build_parser("ollie.experiments.job_times", __doc__.split("\n\n")[0])
    p.set_defaults(config=None)
    p.add_argument("--envs", default="hopper,halfcheetah")
    p.add_argument("--steps", type=int, default=10240, help="online steps measured")
    args, _ = parse_args(argv, TrainConfig, prog="ollie.experiments.job_times",
                         description=__doc__, parser=p)
    torch.set_num_threads(1)
    extra, out = list(args.overrides), {}
    timed, ood = {"ood_s": 0.0}, bench.out_of_family

    def ood_timed(*a, **k):
        t = time.perf_counter()
        r = ood(*a, **k)
        timed["ood_s"] += time.perf_counter() - t
        return r

    for s in args.envs.split(","):
        budget = bench.arm_config(s, "ollie", 0, args.quick, extra).online.env_steps
        t0 = time.perf_counter()
        off = bench.run_offline((s, 0, args.quick, extra + [f"online.env_steps={args.steps}"]))
        res = {"offline_job_s": time.perf_counter() - t0, "budget": budget}
        bench.out_of_family = ood_timed
        for arm in bench.VARIANTS:
            timed["ood_s"] = 0.0
            t0 = time.perf_counter()
            bench.run_online((s, 0, arm, args.quick, extra + [f"online.env_steps={args.steps}"],
                              off))
            wall = time.perf_counter() - t0
            online = wall - timed["ood_s"]
            res[arm] = {"job_s": wall, "ood_s": timed["ood_s"], "online_s": online,
                        "projected_job_s": online * budget / args.steps + timed["ood_s"]}
        bench.out_of_family = ood
        res["data_rows"] = len(build_data(bench.arm_config(s, "ollie", 0, args.quick,
                                                           extra).data).union["actions"])
        out[s] = res
        print(json.dumps({s: res}), flush=True)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
