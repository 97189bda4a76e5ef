"""CPU cost of each stage of `bench --ensemble`, to plan time-limited device calls.

    python -m offline_il_select.experiments.stage_costs [--setting S] [--disc-steps 2000]

Process CPU seconds on one thread (wall-clock on a shared machine mostly measures the others):
reading a setting's cached data, each arm's preparation at --disc-steps steps per discriminator
(the full bench's 10k: scale linearly, the discriminator steps are nearly all of it), one
member's evaluation (10 episodes in family, 20 out of family). Per training step also the number
of leaf `aten::` ops of BC, ILID, DWBC and the ensemble with 1 and 48 members: a proxy for the
CUDA kernel launches that set a tiny network's step time on a GPU (so a step on the GPU costs
about a measured BC step there times the ratio of op counts). The same counts for one
discriminator step, alone (`train_discriminator`, with and without ISW-BC's gradient penalty) and
in lockstep (`ensemble_prep`: 6 d(s), then 6 D(s, a) beside 6 penalised c(s, a), the bench's
pair of settings x 3 seeds). `--prep-seeds N` also times the preparations of one setting x N
seeds (ILID and ISW-BC) both ways on the CPU: each run's own `prepare` one after another (what
the worker jobs did) and `bench.prepare_units` (the lockstep path). Writes stage_costs.json.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from offline_il_select import bench
from offline_il_select.discriminator import isw_penalty, sample_rows
from offline_il_select.ensemble import DWBCSpec, EnsembleBC, Member
from offline_il_select.ensemble_prep import EnsembleDiscriminator, disc_step
from offline_il_select.models import Discriminator, Normalizer, TanhGaussianPolicy
from offline_il_select.wbc import bc_loss, weighted_bc_loss
from shared.cli import build_parser, run
from shared.errors import ConfigError
from shared.il.dwbc import DWBC
from shared.io import atomic_write_json, make_run_dir
from shared.log import get_logger, setup_logging

log = get_logger("offline_il_select.experiments.stage_costs")


# ops that launch no kernel on a GPU (views, allocation, metadata)
NO_KERNEL = {"aten::" + n for n in (
    "view", "_unsafe_view", "_reshape_alias", "as_strided", "slice", "select", "transpose", "t",
    "expand", "squeeze", "unsqueeze", "permute", "detach", "detach_", "alias", "narrow",
    "unbind", "split", "chunk", "empty", "empty_strided", "empty_like", "resize_", "set_",
    "lift_fresh", "result_type", "is_nonzero", "broadcast_tensors", "view_as", "resolve_conj",
    "resolve_neg", "conj", "to", "scalar_tensor")}
MULTI_TENSOR = ("aten::_foreach_", "aten::_fused_")  # one op for a whole list of tensors
# matrix products: one kernel each, though a CPU profile shows them with children
GEMM = {"aten::" + n for n in ("mm", "bmm", "addmm", "baddbmm", "addbmm", "mv", "addmv")}


def _launches(e) -> int:
    """Kernels a GPU would run for profiler event `e` (see `_ops`)."""
    if e.name.startswith(MULTI_TENSOR) or e.name in GEMM:
        return 1
    if e.name == "aten::to" and e.cpu_parent is not None and e.cpu_parent.name.startswith(
            "aten::"):
        return 0  # a Python scalar made a CPU tensor for the op around it
    inner = sum(_launches(c) for c in e.cpu_children)
    if inner or not e.name.startswith("aten::") or e.name in NO_KERNEL:
        return inner
    return 1  # an op whose children only allocate or view: its own kernel


def _ops(fn, n: int) -> tuple[float, float]:
    """(leaf aten ops, launch proxy) per call of fn() (after one untimed call). The launch proxy
    counts the ops a GPU runs as kernels: the innermost ops that compute (not views,
    allocations or the wrapping of Python scalars), each matrix product once, and a
    multi-tensor (foreach / fused) op once, however many per-tensor ops it runs on a CPU."""
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as p:
        for _ in range(n):
            fn()
    events = p.events()
    leaf = sum(e.name.startswith("aten::") and not e.cpu_children for e in events)
    launch = sum(_launches(e) for e in events if e.cpu_parent is None)
    return leaf / n, launch / n


def op_count(fn, n: int = 3) -> float:
    """Leaf aten ops per call of fn() (after one untimed call)."""
    return _ops(fn, n)[0]


def launch_count(fn, n: int = 3) -> float:
    """The launch proxy per call of fn() (see `_ops`)."""
    return _ops(fn, n)[1]


def step_ops(S: int = 17, A: int = 6, B: int = 128, n_rows: int = 20_000, hidden: int = 256,
             members: tuple[str, ...] = ("1", "48", "0+1", "0+12", "24+6", "48+12")
             ) -> dict[str, dict[str, float]]:
    """Per training step: leaf ops (`op_count`, the measure of the earlier notes) and the launch
    proxy (`launch_count`) of BC, ILID, DWBC and `EnsembleBC` with each `members` entry "F" or
    "F+D" (F weighted-BC members and D DWBC members), on random data of the bench's shapes. The
    single runs are counted with CPU's default Adam (a loop over tensors) and, as `*_foreach`,
    with the multi-tensor Adam that CUDA runs by default."""
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(n_rows, S)).astype(np.float32)
    act = rng.uniform(-0.9, 0.9, (n_rows, A)).astype(np.float32)
    s, a, w = torch.as_tensor(obs), torch.as_tensor(act), torch.ones(n_rows)
    norm = Normalizer(s.mean(0), s.std(0))
    g = torch.Generator().manual_seed(0)

    def idx():
        return torch.randint(n_rows, (B,), generator=g)

    out: dict[str, dict[str, float]] = {"leaf_ops": {}, "launches": {}}

    def count(name, fn):
        out["leaf_ops"][name], out["launches"][name] = _ops(fn, 3)

    for foreach in (None, True):
        pol = TanhGaussianPolicy(S, A, hidden, norm)
        opt = torch.optim.Adam(pol.parameters(), lr=3e-4, weight_decay=5e-3, foreach=foreach)
        dwbc = DWBC({"observations": obs[:1000], "actions": act[:1000]},
                    {"observations": obs, "actions": act}, norm, B, 3e-4, 5e-3, 7.5)
        dwbc.opt = torch.optim.Adam(dwbc.disc.parameters(), lr=3e-4, weight_decay=5e-3,
                                    foreach=foreach)

        def step(loss_fn, opt=opt):
            def go():
                opt.zero_grad(set_to_none=True)
                loss_fn().backward()
                opt.step()
            return go

        def bc(pol=pol):
            i = idx()
            return bc_loss(pol, s[i], a[i])

        def ilid(pol=pol):
            i, j = idx(), idx()
            return weighted_bc_loss(pol, s[i], a[i], w[i], s[j], a[j], w[j])

        tail = "_foreach" if foreach else ""
        count("bc" + tail, step(bc))
        count("ilid" + tail, step(ilid))
        count("dwbc" + tail, step(lambda dwbc=dwbc, pol=pol: dwbc.loss(pol, g)))
    table = torch.cat([s, a], 1)
    for gp in (0.0, 1.0):  # one discriminator, alone: `train_discriminator`'s step, foreach Adam
        disc = Discriminator(S + A, hidden)
        dopt = torch.optim.Adam(disc.parameters(), lr=3e-4, weight_decay=5e-3, foreach=True)

        def alone(disc=disc, dopt=dopt, gp=gp):
            xp, xn = sample_rows(table[:1000], B, g), sample_rows(table, B, g)
            p = disc(torch.cat([xp, xn]))
            loss = -(torch.log(p[:B]).mean() + torch.log(1 - p[B:]).mean())
            if gp:
                w, perm = torch.rand(B, 1, generator=g), torch.randperm(B, generator=g)
                loss = loss + gp * isw_penalty(lambda x: disc.net(disc.norm(x)).squeeze(-1),
                                               xp, xn, xn[perm], w)
            dopt.zero_grad(set_to_none=True)
            loss.backward()
            dopt.step()
        count("disc" + "_gp" * bool(gp), alone)
    for plain, pen in ((6, 0), (6, 6)):  # in lockstep: d(s) of 6 runs; D(s, a) + c(s, a)
        ens = EnsembleDiscriminator([Discriminator(S + A, hidden) for _ in range(plain + pen)])
        dopt = torch.optim.Adam(ens.parameters(), lr=3e-4, weight_decay=5e-3, fused=True)
        lam = torch.tensor([0.0] * plain + [1.0] * pen) if pen else None

        def lockstep(ens=ens, dopt=dopt, lam=lam, K=plain + pen):
            rows = torch.randint(n_rows, (K, 2 * B), generator=g)
            perm = torch.argsort(torch.rand(K, B, generator=g), 1)
            disc_step(ens, dopt, table[rows], torch.rand(K, B, 1, generator=g), perm, lam)
        count(f"disc_lockstep_{plain}+{pen}", lockstep)
    terms = [(np.arange(n_rows), np.ones(n_rows, np.float32)),
             (np.arange(100), np.ones(100, np.float32))]
    n_e = min(1000, n_rows)
    dw_terms = [(np.arange(n_e), np.ones(n_e, np.float32)),
                (np.arange(n_rows), np.ones(n_rows, np.float32))]
    spec = DWBCSpec(dwbc.disc.state_dict(), 7.5)
    for m in members:
        f, d = (int(x) for x in (m + "+0").split("+")[:2])
        ms = [Member(0, terms, pol.net.state_dict(), obs.mean(0), obs.std(0))] * f + [
            Member(0, dw_terms, pol.net.state_dict(), obs.mean(0), obs.std(0), spec)] * d
        count(f"ensemble_{m}", EnsembleBC(ms, [(obs, act)], hidden, B, 3e-4, 5e-3).step)
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


def prep_cpu_s(setting: str, disc_steps: int, seeds: int) -> dict:
    """CPU seconds of the ILID (+ no beta) and ISW-BC preparations of `setting` x `seeds` seeds,
    each run's own `prepare` one after another, then all of them in lockstep
    (`bench.prepare_units` on the CPU), and their ratio."""
    steps = disc_steps * bench.DISC_FRACTION
    units = bench.prep_units([(setting, seed, arm, False, steps, "cpu") for seed in range(seeds)
                              for arm in ("ilid", "iswbc", "ilid_no_beta")])
    bench._data(bench._arm_cfg(setting, "ilid", 0, False, steps))  # read once, untimed

    def own():
        for (job, _) in units:
            cfg = bench._arm_cfg(setting, job[2], job[1], False, steps)
            data = bench._data(cfg)
            _, gen, method, _ = bench.setup(cfg, data)
            method.prepare(gen)

    before = _cpu(own)[0]
    after = _cpu(bench.prepare_units, units, "cpu")[0]
    return {"units": len(units), "disc_steps": disc_steps, "own_cpu_s": before,
            "lockstep_cpu_s": after, "lockstep_over_own": after / before}


def main(argv: list[str] | None = None) -> int:
    p = build_parser("offline_il_select.experiments.stage_costs", __doc__.split("\n\n")[0])
    p.add_argument("--setting", default="halfcheetah-random+1expert",
                   help="bench setting whose stages are timed")
    p.add_argument("--disc-steps", type=int, default=2000,
                   help="steps per discriminator (the full bench: 10000)")
    p.add_argument("--ops-only", action="store_true", help="only the op counts (no data)")
    p.add_argument("--prep-seeds", type=int, default=0,
                   help="also time the preparations of this many seeds, each run's own and in "
                        "lockstep (0: not)")
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    bench.refuse_config(args, "stage_costs")
    if args.setting not in bench.SETTINGS:
        raise ConfigError(f"--setting: unknown '{args.setting}' (known: "
                          f"{', '.join(bench.SETTINGS)})")
    if args.disc_steps < 1 or args.prep_seeds < 0:
        raise ConfigError("--disc-steps must be >= 1 and --prep-seeds >= 0")
    torch.set_num_threads(1)
    res = {"ops_per_step": step_ops()}
    if not args.ops_only:
        res["cpu_s"] = stage_cpu_s(args.setting, args.disc_steps)
    if args.prep_seeds:
        res["prep_cpu_s"] = prep_cpu_s(args.setting, args.disc_steps, args.prep_seeds)
    run_dir = make_run_dir(args.out, "offline_il_select", "stage_costs")
    atomic_write_json(run_dir / "stage_costs.json", res)
    log.info("%s", res)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
