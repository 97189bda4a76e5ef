"""CPU cost of each stage of `bench --ensemble`, to plan time-limited device calls.

    python -m offline_il_select.experiments.stage_costs [--setting S] [--disc-steps 2000]

Process CPU seconds on one thread (wall-clock on a shared machine mostly measures the others):
reading a setting's cached data, each arm's preparation at --disc-steps steps per discriminator
(the full bench's 10k: scale linearly, the discriminator steps are nearly all of it), one
member's evaluation (10 episodes in family, 20 out of family). Per training step also the number
of leaf `aten::` ops of BC, ILID, DWBC and the ensemble with 1 and 48 members: a proxy for the
CUDA kernel launches that set a tiny network's step time on a GPU (so a step on the GPU costs
about a measured BC step there times the ratio of op counts). Writes stage_costs.json.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from offline_il_select import bench
from offline_il_select.ensemble import EnsembleBC, Member
from offline_il_select.models import Normalizer, TanhGaussianPolicy
from offline_il_select.wbc import bc_loss, weighted_bc_loss
from shared.cli import build_parser, run
from shared.errors import ConfigError
from shared.il.dwbc import DWBC
from shared.io import atomic_write_json, make_run_dir
from shared.log import get_logger, setup_logging

log = get_logger("offline_il_select.experiments.stage_costs")


def op_count(fn, n: int = 3) -> float:
    """Leaf aten ops per call of fn() (after one untimed call)."""
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as p:
        for _ in range(n):
            fn()
    return sum(e.name.startswith("aten::") and not e.cpu_children for e in p.events()) / n


def step_ops(S: int = 17, A: int = 6, B: int = 128, n_rows: int = 20_000, hidden: int = 256,
             members: tuple[int, ...] = (1, 48)) -> dict[str, float]:
    """Leaf ops of one training step of BC, ILID, DWBC and `EnsembleBC` with `members` members,
    on random data of the bench's shapes."""
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(n_rows, S)).astype(np.float32)
    act = rng.uniform(-0.9, 0.9, (n_rows, A)).astype(np.float32)
    s, a, w = torch.as_tensor(obs), torch.as_tensor(act), torch.ones(n_rows)
    norm = Normalizer(s.mean(0), s.std(0))
    pol = TanhGaussianPolicy(S, A, hidden, norm)
    opt = torch.optim.Adam(pol.parameters(), lr=3e-4, weight_decay=5e-3)
    g = torch.Generator().manual_seed(0)
    dwbc = DWBC({"observations": obs[:1000], "actions": act[:1000]},
                {"observations": obs, "actions": act}, norm, B, 3e-4, 5e-3, 7.5)

    def idx():
        return torch.randint(n_rows, (B,), generator=g)

    def step(loss_fn):
        def go():
            opt.zero_grad(set_to_none=True)
            loss_fn().backward()
            opt.step()
        return go

    def bc():
        i = idx()
        return bc_loss(pol, s[i], a[i])

    def ilid():
        i, j = idx(), idx()
        return weighted_bc_loss(pol, s[i], a[i], w[i], s[j], a[j], w[j])

    out = {"bc": op_count(step(bc)), "ilid": op_count(step(ilid)),
           "dwbc": op_count(step(lambda: dwbc.loss(pol, g)))}
    terms = [(np.arange(n_rows), np.ones(n_rows, np.float32)),
             (np.arange(100), np.ones(100, np.float32))]
    for k in members:
        ms = [Member(0, terms, pol.net.state_dict(), obs.mean(0), obs.std(0))] * k
        out[f"ensemble_{k}"] = op_count(EnsembleBC(ms, [(obs, act)], hidden, B, 3e-4, 5e-3).step)
    return out


def _cpu(fn, *args):
    c0 = time.process_time()
    out = fn(*args)
    return time.process_time() - c0, out


def stage_cpu_s(setting: str, disc_steps: int) -> dict:
    """CPU seconds of the bench's stages on `setting` (seed 0)."""
    steps = disc_steps * bench.DISC_FRACTION
    cfg = bench._arm_cfg(setting, "ilid", 0, False, steps)
    out = {"read_data": _cpu(lambda: bench.build_data(cfg.data))[0], "disc_steps": disc_steps}
    job = (setting, 0, "ilid", False, steps, "cpu")
    for arms in (("bc_expert",), ("iswbc",), ("ilid", "ilid_no_beta"), ("ilid_no_beta",)):
        t, preps = _cpu(bench.prep_job, (job[:2] + (arms[0],) + job[3:], arms))
        out["prep_" + "+".join(arms)] = {"job": t, "prep": preps[0]["prep"]["prep_cpu_s"]}
    p = preps[0]
    task = bench.eval_task(setting, False, steps)
    for kind, episodes in (("in", 10), ("ood", 10)):
        ev = (task, 0, p["init"], p["mean"], p["std"], p["cfg"].policy.hidden, episodes, kind)
        bench.eval_job(ev)  # environments built once
        out[f"eval_{kind}"] = _cpu(bench.eval_job, ev)[0]
    return out


def main(argv: list[str] | None = None) -> int:
    p = build_parser("offline_il_select.experiments.stage_costs", __doc__.split("\n\n")[0])
    p.add_argument("--setting", default="halfcheetah-random+1expert",
                   help="bench setting whose stages are timed")
    p.add_argument("--disc-steps", type=int, default=2000,
                   help="steps per discriminator (the full bench: 10000)")
    p.add_argument("--ops-only", action="store_true", help="only the op counts (no data)")
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    bench.refuse_config(args, "stage_costs")
    if args.setting not in bench.SETTINGS:
        raise ConfigError(f"--setting: unknown '{args.setting}' (known: "
                          f"{', '.join(bench.SETTINGS)})")
    if args.disc_steps < 1:
        raise ConfigError("--disc-steps must be >= 1")
    torch.set_num_threads(1)
    res = {"ops_per_step": step_ops()}
    if not args.ops_only:
        res["cpu_s"] = stage_cpu_s(args.setting, args.disc_steps)
    run_dir = make_run_dir(args.out, "offline_il_select", "stage_costs")
    atomic_write_json(run_dir / "stage_costs.json", res)
    log.info("%s", res)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
