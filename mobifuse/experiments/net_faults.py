"""`python -m mobifuse.experiments.net_faults [--out FILE] [--rounds 3]`: the fusion net's CPU time
and minor page faults per call, traced (as `fuse()` runs it) and eager.

The bench's `dei` fusion net (cached or trained as `python -m mobifuse.bench` finds it), one torch
thread on one pinned core, the bench latency check's 4 + N_ERR random 240x320 input planes:
per round, the median process CPU seconds of `latency_repeats` calls after a warm-up
(`bench.timed_s`) and the minor page faults per call (`bench.minor_faults`) of
`run_net(..., jit=True)` and of the eager forward. Run it once as is and once with
`MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296` in the environment to see
what glibc's mapping of fresh temporaries costs each path. Writes a JSON (default
results/mobifuse/net_faults.json) with the environment's malloc settings recorded.
"""

from __future__ import annotations

import os
import sys

import torch

from mobifuse.bench import (
    BenchConfig,
    minor_faults,
    net_calls,
    pinned_cores,
    timed_s,
    trained_net,
)
from shared.cli import build_parser, parse_args, run
from shared.errors import DataError
from shared.io import atomic_write_json
from shared.log import get_logger

log = get_logger("mobifuse.experiments.net_faults")


def _no_training() -> dict:
    raise DataError("no cached fusion net for this config: run python -m mobifuse.bench first")


def main(argv: list[str] | None = None) -> int:
    p = build_parser("mobifuse.experiments.net_faults", __doc__.split("\n\n")[0],
                     "configs/mobifuse/bench.yaml")
    p.add_argument("--rounds", type=int, default=3, help="timing rounds (default 3)")
    args, cfg = parse_args(argv, BenchConfig, prog="mobifuse.experiments.net_faults",
                           description="", parser=p)
    if args.rounds < 1:
        raise DataError(f"--rounds must be >= 1, got {args.rounds}")
    net = trained_net(cfg.train, _no_training, True).eval()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    traced, eager = net_calls(net)

    n = cfg.latency_repeats
    out = {"malloc_env": {k: os.environ.get(k) for k in ("MALLOC_MMAP_THRESHOLD_",
                                                          "MALLOC_TRIM_THRESHOLD_")},
           "rounds": []}
    with pinned_cores(1) as cores:
        out["cores"] = cores
        for r in range(args.rounds):
            row = {"traced_cpu_s": timed_s(traced, n)[1], "traced_faults": minor_faults(traced, n),
                   "eager_cpu_s": timed_s(eager, n)[1], "eager_faults": minor_faults(eager, n)}
            out["rounds"].append(row)
            log.info("round %d: traced %.4f s, %s faults a call | eager %.4f s, %s faults a call",
                     r, row["traced_cpu_s"], row["traced_faults"], row["eager_cpu_s"],
                     row["eager_faults"])
    atomic_write_json(args.out or "results/mobifuse/net_faults.json", out)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
